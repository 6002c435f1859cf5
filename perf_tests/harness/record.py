"""Record unchanged gate runs as test data for the regression check and the change-point detector.

    python -m perf_tests.harness.record --runs 20 --label amd-epyc-zen4 [--contention 0.3]
    python -m perf_tests.harness.record --trim-only results/history/x86_64 --label my-runner

Each run is the gate's latency tests in a fresh process with a history of its own (nothing under
results/ is touched); ``--contention F`` keeps a memory-streaming neighbour busy for a fraction F
of the time while the runs go on, so the recording holds a machine that is slow for whole runs.
The runs are then trimmed to what the check reads (rounds, interleaved rounds, how they were
measured, what was measured: commit, libraries, model fingerprint, artifact keys) and written to
perf_tests/unit/data/histories/<label>/, where the deterministic fidelity tests replay them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from perf_tests.harness import history
from perf_tests.harness.child_run import run_pytest
from perf_tests.harness.config import ROOT
from perf_tests.harness.parsing import Range, argument, path_argument

DATA = ROOT / "perf_tests" / "unit" / "data" / "histories"
KEPT_INFO = ("variant", "shape", "threads", "new_tokens", "arch", "preset", "model", "artifact",
             "paired_baseline_s", "others_cpu_share", "steal_share", "measured_again",
             "recorded_again")
KEPT_GATE = ("run_id", "libraries", "machine")


def _rounded(samples: list[float]) -> list[float]:
    return [float(f"{x:.6g}") for x in samples]


def trim(run: history.Run) -> dict:
    """The parts of a history file the regression check and change-point report read."""
    benches = []
    for bench in run.data.get("benchmarks", []):
        if "figure" in bench.get("extra_info", {}):
            continue  # a figure that is no latency (the ratio group): the replay derives it
        info = {k: v for k, v in bench.get("extra_info", {}).items() if k in KEPT_INFO}
        if "paired_baseline_s" in info:
            info["paired_baseline_s"] = _rounded(info["paired_baseline_s"])
        for again in ("measured_again", "recorded_again"):  # confirm.py's second measurement
            if again in info:
                info[again] = {k: _rounded(v) if isinstance(v, list) else v
                               for k, v in info[again].items()}
        benches.append({"name": bench.get("name"), "group": bench.get("group"),
                        "extra_info": info,
                        "stats": {"data": _rounded(bench.get("stats", {}).get("data") or [])}})
    gate = run.gate
    kept = {k: gate[k] for k in KEPT_GATE if k in gate}
    kept["models"] = {role: {"name": m.get("name"), "fingerprint": m.get("fingerprint")}
                      for role, m in gate.get("models", {}).items()}
    return {"datetime": run.data.get("datetime"),
            "commit_info": {"id": run.data.get("commit_info", {}).get("id")},
            "machine_info": {"cpu": {"brand_raw": run.data.get("machine_info", {})
                                     .get("cpu", {}).get("brand_raw")}},
            "benchmarks": benches, "perf_gate": kept}


def write_trimmed(storage: Path, label: str, out_root: Path = DATA) -> Path:
    out = out_root / label
    for run in history.load_runs(storage):
        target = out / run.path.parent.name / run.path.name  # history.load_runs reads this layout
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(trim(run), separators=(",", ":")) + "\n", encoding="utf-8")
        tmp.replace(target)
    return out


def _neighbour(duty: float, stop) -> None:
    """Stream over a buffer larger than the caches for ``duty`` of every 100 ms, idle the rest."""
    import numpy

    source = numpy.ones(64 * 1024 * 1024 // 8)
    target = numpy.empty_like(source)
    while not stop.is_set():
        until = time.perf_counter() + 0.1 * duty
        while time.perf_counter() < until:
            numpy.copyto(target, source)
        time.sleep(0.1 * (1 - duty))


def record(runs: int, results: Path, pytest_args: list[str]) -> None:
    for number in range(1, runs + 1):
        started = time.perf_counter()
        done = run_pytest("-m", "gate", "-k", "test_latency", "-q", *pytest_args,
                          results=results, timeout=None)
        last = (done.stdout.strip().splitlines() or ["no output"])[-1]
        print(f"+ run {number}/{runs}: exit {done.returncode} in "
              f"{time.perf_counter() - started:.0f} s: {last}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf_tests.harness.record",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="folder name under the test data")
    parser.add_argument("--runs", type=argument(int, Range(1, 1000)), default=20)
    parser.add_argument("--contention", type=float, default=0.0,
                        help="fraction of the time a neighbour streams memory (default: none)")
    parser.add_argument("--results", type=path_argument("results folder"),
                        help="keep the runs' results folder here (runs are added to its "
                        "history; default: a temporary folder)")
    parser.add_argument("--trim-only", type=path_argument("history folder"), metavar="STORAGE",
                        help="trim an existing history storage folder instead of recording")
    parser.add_argument("pytest_args", nargs="*", help="extra gate options, after --")
    args = parser.parse_args(argv)
    if args.trim_only:
        if not args.trim_only.is_dir():
            parser.error(f"--trim-only {args.trim_only} is not a folder: pass a history storage "
                         "folder such as results/history/x86_64")
        print(write_trimmed(args.trim_only, args.label))
        return 0
    if not 0.0 <= args.contention < 1.0:
        print("record: --contention takes a fraction in [0, 1)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="perf-record-") as scratch:
        results = args.results or Path(scratch) / "results"
        stop = multiprocessing.Event()
        neighbour = multiprocessing.Process(target=_neighbour, args=(args.contention, stop))
        if args.contention:
            neighbour.start()
        try:
            record(args.runs, results, args.pytest_args)
        finally:
            stop.set()
            if args.contention:
                neighbour.join()
        saved = sorted((results / "history").glob("*"))
        if not saved:
            print(f"record: the runs saved no history in {results}: see their lines above",
                  file=sys.stderr)
            return 1
        print(write_trimmed(saved[0], args.label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
