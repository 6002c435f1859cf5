"""The live trial of the gate against itself: whole gate runs judged by the gate's own check.

`tox -e fidelity` runs it (perf_tests/fidelity/), never the default test run: its outcome depends
on the machine. The trial is written against one callable, ``gate_run(results, *options)``,
which runs the gate with a results folder and returns the ``regression`` part of the summary it
wrote; the fidelity test passes one that runs pytest in a fresh process, and the unit tests one
that returns recorded verdicts, so the counting below is tested in the default run.

POOL unchanged runs make the history; then ``tries`` runs of each kind:

- A/A: an unchanged run, appended to the history (so the pool moves on as it does at night);
- planted: the figure's variant 25 % slower (``--perf-plant <variant>:slowdown=0.25``) on a copy
  of the history, so it never becomes another try's baseline; a try whose ``catches`` is above
  1.25 is one the machine's noise hides, counted apart; and 40 % slower, the change the README
  promises to catch on a shared 2-core runner;
- slow machine: every variant 30 % slower (``all:slowdown=0.30``), on a copy;
- drift: the variant DRIFT slower for good, FOUND_WITHIN runs in a row on a copy; the
  change-point detector must confirm it by the last of them where the run's ``drift_reach``
  for the figure says it can; a drift the noise hides is counted apart.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from perf_tests.harness.changepoints import FOUND_WITHIN
from perf_tests.harness.replay import Tally

POOL = 10
DRIFT_TRIES = 2
PLANTS = (0.25, 0.40)  # what the issue asks to catch; what a shared 2-core runner promises
SLOW_MACHINE = 0.30
DRIFT = 0.10  # the lasting slowdown, as the recorded histories are replayed with
FIGURE = ("onnx-int8", "b1-s16")  # (variant, shape) the plants are judged on
# The variants of each trial run besides the baseline. The machine's mood in a run is read off
# the other variants' figures, so the fewer there are the noisier the judged figure. Replaying
# the Emerald Rapids recording cut down to b1-s16 (tenth session): with onnx-fp32 and onnx-int8
# alone, onnx-int8's figure catches x1.18-x1.37 (3 of 21 plants of 25 % within reach, as the
# ninth session's live trial found: none within reach); with torch-int8 and onnx-int8-tuned as
# well, x1.13-x1.26 (20 of 21 within reach, all 20 caught; A/A 0/21; a 10 % drift found).
# Cut down to b8-s64 instead, three variants catch no better (x1.27-x1.43).
VARIANTS = ("onnx-fp32", "onnx-int8", "torch-int8", "onnx-int8-tuned")

GateRun = Callable[..., dict]  # gate_run(results: Path, *options: str) -> summary["regression"]


def tripped(check: dict) -> bool:
    """The run failed on latency: a figure regressed or a confirmed change point fails it."""
    return (any(c["regressed"] for c in check["comparisons"] if c["kind"] == "latency")
            or any(cp["fails"] for cp in check["change_points"]))


def judged(check: dict, figure=FIGURE) -> dict | None:
    return next((c for c in check["comparisons"]
                 if (c["variant"], c["shape"]) == figure and c["kind"] == "latency"), None)


def row(kind: str, check: dict, figure=FIGURE) -> str:
    found = judged(check, figure)
    if found is None:
        return f"{kind}: not judged ({'; '.join(check['notes'])})"
    again = (f"; measured again, the first x{found['first_factor']:.3f}"
             if found.get("first_factor") else "")
    return (f"{kind}: {figure[0]} x{found['factor']:.3f} (machine x{found['machine_factor']:.3f}, "
            f"catches x{found['detectable_factor']:.3f}{again})"
            f"{'  TRIPPED' if tripped(check) else ''}")


def _copy(history: Path, folder: Path) -> Path:
    shutil.copytree(history, folder)
    return folder


def _planted(tally: Tally, check: dict, figure, plant: float) -> None:
    found = judged(check, figure)
    if found and found["detectable_factor"] > 1 + plant:  # the noise hides it
        tally.hidden += 1
        tally.hidden_caught += found["regressed"]
    else:
        tally.add(bool(found and found["regressed"]), row("planted", check, figure))


def _drift(tally: Tally, check: dict, figure) -> None:
    found = any(cp["confirmed"] and cp["shift"] > 1 and (cp["variant"], cp["shape"]) == figure
                for cp in check["change_points"])
    reach = next((r["factor"] for r in check.get("drift_reach", [])
                  if (r["variant"], r["shape"]) == figure), float("inf"))
    line = (f"drift: {'found' if found else 'MISSED'} after {FOUND_WITHIN} runs "
            f"(found from x{reach:.3f})")
    if reach > 1 + DRIFT:  # the noise hides it
        tally.hidden += 1
        tally.hidden_caught += found
        tally.lines.append(line + " (the noise hides it)")
    else:
        tally.add(found, line)


def run(gate_run: GateRun, workdir: Path, tries: int, figure=FIGURE) -> list[Tally]:
    """The trial's tallies: A/A false alarms, each plant caught, slow-machine false alarms,
    drifts found. ``workdir`` holds the trial's history and its copies."""
    variant = figure[0]
    results = workdir / "results"
    for _ in range(POOL):
        gate_run(results)
    aa = Tally("A/A false alarms")
    planted = [Tally(f"planted {plant:.0%} slowdown caught") for plant in PLANTS]
    slow = Tally(f"{SLOW_MACHINE:.0%} slower machine false alarms")
    drift = Tally(f"{DRIFT:.0%} drift found")
    for attempt in range(tries):
        check = gate_run(results)
        aa.add(tripped(check), row("A/A", check, figure))
        for plant, tally in zip(PLANTS, planted):
            check = gate_run(_copy(results, workdir / f"planted-{plant:g}-{attempt}"),
                             f"--perf-plant={variant}:slowdown={plant}")
            _planted(tally, check, figure, plant)
        check = gate_run(_copy(results, workdir / f"slow-{attempt}"),
                         f"--perf-plant=all:slowdown={SLOW_MACHINE}")
        slow.add(tripped(check), row("slow machine", check, figure))
    for attempt in range(DRIFT_TRIES):
        drifted = _copy(results, workdir / f"drift-{attempt}")
        for _ in range(FOUND_WITHIN):
            check = gate_run(drifted, f"--perf-plant={variant}:slowdown={DRIFT}")
        _drift(drift, check, figure)
    return [aa, *planted, slow, drift]
