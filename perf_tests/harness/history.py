"""Run history: pytest-benchmark's storage, one folder per CPU arch, read defensively.

pytest-benchmark keys its storage by OS / Python / "64bit" only, so x86_64 and aarch64 runs would
mix; the suite points ``--benchmark-storage`` at ``results/history/<arch>`` unless the user gave
one. Every gate run is autosaved with its raw samples; the run's summary (memory, BLEU, ratios,
verdicts) rides along under the ``perf_gate`` key, so each file holds every figure of its run.
An unreadable file is skipped with a warning naming it, never fatal and never rewritten.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STORAGE = "file://./.benchmarks"


class HistoryWarning(UserWarning):
    """A history file was skipped; the run goes on."""


@dataclass(frozen=True)
class Run:
    path: Path
    number: int
    data: dict

    @property
    def gate(self) -> dict:
        return self.data.get("perf_gate", {})

    @property
    def run_id(self) -> str:
        return self.gate.get("run_id", "")

    @property
    def label(self) -> str:
        return f"#{self.number:04d} {self.data.get('datetime', '')[:16]}"

    def latency(self) -> dict[tuple[str, str], dict]:
        """(variant, shape) -> {"data": raw samples in s, "median": s, "extra_info": {...}}; a
        damaged entry is skipped with a warning naming the file, and a figure that is no
        latency (``figure`` in extra_info: the ratio group) is left out."""
        found = {}
        for bench in self.data.get("benchmarks", []):
            info = bench.get("extra_info", {}) if isinstance(bench, dict) else {}
            if "variant" in info and "shape" in info and "figure" not in info:
                stats = bench.get("stats", {})
                data, paired = stats.get("data") or [], info.get("paired_baseline_s") or []
                if not (_timings(data) and _timings(paired, empty=True) and _again(info)):
                    warnings.warn(f"skipping a damaged latency entry ({info['variant']} "
                                  f"[{info['shape']}]) in history file {self.path}",
                                  HistoryWarning, stacklevel=2)
                    continue
                found[(info["variant"], info["shape"])] = {
                    "data": data, "median": stats.get("median"), "extra_info": info}
        return found


def _again(info: dict) -> bool:
    """No second measurement (regression.as_judged, confirm.py), or ones of sound timings."""
    return all(isinstance(again, dict) and _timings(again.get("data"))
               and _timings(again.get("paired_baseline_s", []), empty=True)
               for again in (info.get(key) for key in ("measured_again", "recorded_again"))
               if again is not None)


def _timings(values, empty: bool = False) -> bool:
    """A list of positive finite numbers (or, where allowed, nothing)."""
    if not isinstance(values, list):
        return False
    if not values:
        return empty
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < float("inf")
               for x in values)


def storage_folder(results_dir: Path, arch: str) -> Path:
    return Path(results_dir) / "history" / arch


def run_numbers(folder: Path) -> list[int]:
    """The run numbers stored under a storage folder, read from file names only (cheap)."""
    return sorted({int(path.name[:4])
                   for path in Path(folder).glob("*/[0-9][0-9][0-9][0-9]_*.json")})


def load_runs(folder: Path) -> list[Run]:
    """Every readable run under the storage folder, oldest first."""
    runs = []
    for path in sorted(Path(folder).glob("*/[0-9][0-9][0-9][0-9]_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data.get("benchmarks"), list):
                raise ValueError("no list of benchmarks")
            runs.append(Run(path, int(path.name[:4]), data))
        except (OSError, ValueError) as error:
            warnings.warn(f"skipping unreadable history file {path}: {error}", HistoryWarning,
                          stacklevel=2)
    return sorted(runs, key=lambda run: (run.data.get("datetime", ""), run.number))


def select_pool(runs: list[Run], choice: str, current_run_id: str, size: int) -> list[Run]:
    """The runs to compare with, oldest first: "latest" gives the last ``size`` runs before this
    one; a run number or a file path pins that one run."""
    earlier = [run for run in runs if run.run_id != current_run_id]
    if choice == "latest":
        return earlier[-size:]
    if choice.isdigit():
        return [run for run in earlier if run.number == int(choice)][-1:]
    path = Path(choice)
    match = [run for run in earlier if run.path.resolve() == path.resolve()]
    if match or not path.is_file():
        return match[-1:]
    data = json.loads(path.read_text(encoding="utf-8"))  # a pinned file outside the storage
    return [Run(path, 0, data)]


def pool_label(pool: list[Run]) -> str:
    if len(pool) == 1:
        return pool[0].label
    return f"the last {len(pool)} runs, #{pool[0].number:04d}-#{pool[-1].number:04d}"
