"""Run history: pytest-benchmark's storage, one folder per CPU arch, read defensively.

pytest-benchmark keys its storage by OS / Python / "64bit" only, so x86_64 and aarch64 runs would
mix; the suite points ``--benchmark-storage`` at ``results/history/<arch>`` unless the user gave
one. Every gate run is autosaved with its raw samples; the run's summary (memory, BLEU, ratios,
verdicts) rides along under the ``perf_gate`` key, so each file holds every figure of its run.
A file that cannot be read, or whose parts the gate reads have other types than it writes, is
skipped with a warning naming it and saying what is wrong; a damaged benchmark entry is dropped
alone, the rest of its run kept. Never fatal, and never rewritten. The gate saves a run under a
lock (plugin.py), since pytest-benchmark numbers it after the files already there.
"""

from __future__ import annotations

import json
import math
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
        figure that is no latency (``figure`` in extra_info: the ratio group) is left out. The
        entries are sound: read_run dropped the damaged ones."""
        found = {}
        for bench in self.data.get("benchmarks", []):
            info = bench.get("extra_info", {})
            if "variant" in info and "shape" in info and "figure" not in info:
                stats = bench.get("stats", {})
                found[(info["variant"], info["shape"])] = {
                    "data": stats.get("data") or [], "median": stats.get("median"),
                    "extra_info": info}
        return found


def _damage(bench) -> str | None:
    """What is wrong with one benchmark entry of a history file, or None when it is sound."""
    if not isinstance(bench, dict) or not all(
            isinstance(bench.get(part, {}), dict) for part in ("extra_info", "stats")):
        return "a benchmark entry that is not an object with extra_info and stats objects"
    info = bench.get("extra_info", {})
    if "variant" not in info or "shape" not in info or "figure" in info:
        return None  # not a latency entry: the gate does not read it
    what = f"a damaged latency entry ({info['variant']} [{info['shape']}])"
    if not (isinstance(info["variant"], str) and isinstance(info["shape"], str)):
        return what
    data, paired = bench.get("stats", {}).get("data") or [], info.get("paired_baseline_s") or []
    if not (_timings(data) and _timings(paired, empty=True) and _again(info)):
        return what
    # the shares of the CPUs others took (regression.busy_share adds them): absent in runs
    # recorded before the gate measured them, numbers where present
    if not all(_finite(info[key]) for key in SHARES if key in info):
        return what
    return None


SHARES = ("others_cpu_share", "steal_share")  # store.LatencyResult.shares


def _again(info: dict) -> bool:
    """No second measurement (regression.as_judged, confirm.py), or ones of sound timings."""
    return all(isinstance(again, dict) and _timings(again.get("data"))
               and _timings(again.get("paired_baseline_s", []), empty=True)
               and all(_finite(again[key]) for key in SHARES if key in again)
               for again in (info.get(key) for key in ("measured_again", "recorded_again"))
               if again is not None)


def _timings(values, empty: bool = False) -> bool:
    """A list of positive finite numbers (or, where allowed, nothing)."""
    if not isinstance(values, list):
        return False
    if not values:
        return empty
    return all(_number(x) and 0 < x < float("inf") for x in values)


def storage_folder(results_dir: Path, arch: str) -> Path:
    return Path(results_dir) / "history" / arch


def run_files(folder: Path, number: int) -> list[Path]:
    """The history files of one run number (more than one where pytest-benchmark's folders of
    two Python versions both reached it)."""
    return sorted(Path(folder).glob(f"*/{number:04d}_*.json"))


def run_numbers(folder: Path) -> list[int]:
    """The run numbers stored under a storage folder, read from file names only (cheap)."""
    return sorted({int(path.name[:4])
                   for path in Path(folder).glob("*/[0-9][0-9][0-9][0-9]_*.json")})


def _problem(data) -> str | None:
    """What makes a history file unusable to the gate, or None: the parts it reads (the run's
    date, commit and summary) must have the types the gate wrote."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if not isinstance(data.get("benchmarks"), list):
        return "no list of benchmarks"
    if not isinstance(data.get("datetime", ""), str):
        return "its datetime is not text"
    if not isinstance(data.get("commit_info") or {}, dict):
        return "its commit_info is not an object"
    gate = data.get("perf_gate", {})
    if not isinstance(gate, dict):
        return "perf_gate is not an object"
    for key, kind in (("run_id", str), ("libraries", dict), ("models", dict), ("variants", dict)):
        if not isinstance(gate.get(key, kind()), kind):
            return f"perf_gate.{key} is not {'text' if kind is str else 'an object'}"
    if not isinstance(gate.get("plant") or "", str):
        return "perf_gate.plant is not text"
    if not all(isinstance(model, dict) for model in gate.get("models", {}).values()):
        return "perf_gate.models holds an entry that is not an object"
    for name, variant in gate.get("variants", {}).items():
        problem = _variant_problem(variant)
        if problem:
            return f"perf_gate.variants.{name}{problem}"
    return None


def _variant_problem(variant) -> str | None:
    """What is wrong with one variant's summary in a history file, or None."""
    if not isinstance(variant, dict):
        return " is not an object"
    parts = {part: variant.get(part, {}) for part in ("memory", "quality")}
    for part, entry in parts.items():
        if not isinstance(entry, dict):
            return f".{part} is not an object"
    # a figure may be missing (an earlier schema, a run that did not measure it), but one that
    # is there must be a number: the comparisons do arithmetic on it (null included)
    figures = (("disk_mb", variant, "disk_mb"),
               ("memory.peak_above_baseline_mb", parts["memory"], "peak_above_baseline_mb"),
               ("quality.bleu", parts["quality"], "bleu"),
               ("quality.chrf", parts["quality"], "chrf"))
    for where, entry, key in figures:
        if key in entry and not _finite(entry[key]):
            return f".{where} is not a number"
    return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value) -> bool:
    return _number(value) and math.isfinite(value)


def read_run(path: Path, number: int) -> Run:
    """One history file as a Run. A file the gate cannot use raises OSError or ValueError saying
    why; a damaged benchmark entry is dropped from the copy read (the file is never rewritten),
    with a warning naming the file, so that nothing read later trips on it."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    problem = _problem(data)
    if problem:
        raise ValueError(problem)
    sound = []
    for bench in data["benchmarks"]:
        damage = _damage(bench)
        if damage:
            warnings.warn(f"skipping {damage} in history file {path}", HistoryWarning,
                          stacklevel=3)
        else:
            sound.append(bench)
    data["benchmarks"] = sound
    return Run(Path(path), number, data)


def load_runs(folder: Path) -> list[Run]:
    """Every readable run under the storage folder, oldest first."""
    runs = []
    for path in sorted(Path(folder).glob("*/[0-9][0-9][0-9][0-9]_*.json")):
        try:
            runs.append(read_run(path, int(path.name[:4])))
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
    if choice.isascii() and choice.isdigit():
        return [run for run in earlier if run.number == int(choice)][-1:]
    path = Path(choice)
    match = [run for run in earlier if run.path.resolve() == path.resolve()]
    if match or not path.is_file():
        return match[-1:]
    return [read_run(path, 0)]  # a pinned file outside the storage (config.py checked it)


def pool_label(pool: list[Run]) -> str:
    if len(pool) == 1:
        return pool[0].label
    return f"the last {len(pool)} runs, #{pool[0].number:04d}-#{pool[-1].number:04d}"
