"""Replay a history of unchanged runs through the regression check: how noisy is this machine?

    python -m perf_tests.harness.replay results/history/x86_64 [--variant onnx-int8]
        [--shape b1-s16] [--slowdown 0.25] [--pool 5]

Every run from the (pool+1)-th on is judged against the runs before it, as the gate judges a new
run: once as it is (an A/A try: a regression here is a false alarm) and once with its rounds
made ``1 + slowdown`` times slower, as ``--perf-plant <variant>:slowdown=`` makes them (a planted
try: it should be caught; only the variant's own rounds are slowed, so the machine's drift is read
off the others as in the gate). Many more tries than the fidelity test can afford, from runs a user
already has; the history is only read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perf_tests.harness import history, regression


def _slowed(entry: dict, factor: float) -> dict:
    return {**entry, "data": [sample * factor for sample in entry["data"]]}


def replay(runs: list[history.Run], key: tuple[str, str], slowdown: float, pool_size: int,
           factor: float, alpha: float) -> tuple[list[str], int, int, int]:
    entries = [run.latency() for run in runs]
    lines, false_alarms, caught, tries = [], 0, 0, 0
    for index in range(pool_size, len(runs)):
        if key not in entries[index]:
            continue
        pool = entries[index - pool_size:index]
        label = f"the last {pool_size} runs"
        # the whole run is compared, as the gate compares it: the machine's drift is read off
        # the other variants; the plant slows the variant's own rounds only
        now = entries[index]
        unchanged = regression.compare_key(now, key, pool, factor, alpha, label)
        planted = regression.compare_key({**now, key: _slowed(now[key], 1 + slowdown)}, key, pool,
                                         factor, alpha, label)
        if not (unchanged and planted):
            continue  # nothing comparable in the pool
        tries += 1
        false_alarms += unchanged.regressed
        caught += planted.regressed
        lines.append(f"#{runs[index].number:04d}  A/A {_row(unchanged)}   planted "
                     f"{_row(planted)}")
    return lines, false_alarms, caught, tries


def _row(comparison: regression.Comparison) -> str:
    ratio = "-" if comparison.ratio_factor is None else f"{comparison.ratio_factor:.3f}"
    machine = "-" if comparison.machine_factor is None else f"{comparison.machine_factor:.3f}"
    verdict = "REGRESSED" if comparison.regressed else "ok"
    return (f"best x{comparison.factor:.3f} ratio x{ratio} machine x{machine} "
            f"p={regression.format_p(comparison.p_value)} {verdict:<9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", type=Path, help="a storage folder, e.g. results/history/x86_64")
    parser.add_argument("--variant", default="onnx-int8")
    parser.add_argument("--shape", default="b1-s16")
    parser.add_argument("--slowdown", type=float, default=0.25)
    parser.add_argument("--pool", type=int, default=regression.POOL_SIZE)
    parser.add_argument("--factor", type=float, default=regression.DEFAULT_FACTOR)
    parser.add_argument("--alpha", type=float, default=regression.DEFAULT_ALPHA)
    args = parser.parse_args(argv)
    if not args.history.is_dir():
        print(f"replay: {args.history} is not a folder: pass a history storage folder such as "
              "results/history/x86_64", file=sys.stderr)
        return 2
    runs = history.load_runs(args.history)
    lines, false_alarms, caught, tries = replay(runs, (args.variant, args.shape), args.slowdown,
                                                args.pool, args.factor, args.alpha)
    if not tries:
        print(f"replay: fewer than {args.pool + 1} comparable runs of {args.variant} "
              f"[{args.shape}] in {args.history}: nothing to replay", file=sys.stderr)
        return 2
    print("\n".join(lines))
    print(f"{args.variant} [{args.shape}], {len(runs)} runs, pool {args.pool}: A/A false alarms "
          f"{false_alarms}/{tries}, planted {args.slowdown:.0%} slowdown caught {caught}/{tries}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
