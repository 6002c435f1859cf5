"""Change points over a synthetic history: steps found with their cause, noise and slow nights not."""

import json
import math
import random

import pytest

from perf_tests.harness import changepoints, history
from perf_tests.unit.test_regression import gate_run

pytestmark = pytest.mark.unit


def write_history(folder, runs, libraries=None, commits=None):
    """runs: latency entries per run (oldest first) -> history files; libraries and commits:
    run index -> what that run was measured with."""
    for number, entries in enumerate(runs, start=1):
        stamp = f"2026-11-{1 + number // 24:02d}T{number % 24:02d}:00:00"
        benches = [{"extra_info": {"variant": v, "shape": s, "artifact": f"{v}-key", **e["extra_info"]},
                    "stats": {"data": e["data"]}} for (v, s), e in entries.items()]
        gate = {"run_id": str(number),
                "libraries": {"onnxruntime": (libraries or {}).get(number, "1.32.0")}}
        path = folder / "machine" / f"{number:04d}_c_{stamp}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"datetime": stamp, "benchmarks": benches, "perf_gate": gate,
                                    "commit_info": {"id": (commits or {}).get(number, "aaa")}}))
    return history.load_runs(folder)


def runs_with(seed, count, slower_from=None, factor=1.10, machine_from=None, variant="onnx-int8"):
    rng = random.Random(seed)
    out = []
    for index in range(1, count + 1):
        slower = {variant: factor} if slower_from and index >= slower_from else None
        machine = 1.3 if machine_from and index >= machine_from else 1.0
        out.append(gate_run(rng, machine=machine * rng.uniform(0.95, 1.05), sd=0.02,
                            slower=slower))
    return out


def test_an_unchanged_history_has_no_confirmed_change_point(tmp_path):
    found = changepoints.find(write_history(tmp_path, runs_with(1, 24)))
    assert not [cp for cp in found if cp.confirmed]


def first_failing(runs):
    """The first run that fails on a change point, as night after night would see it."""
    for count in range(6, len(runs) + 1):
        failing = [cp for cp in changepoints.find(runs[:count]) if cp.fails]
        if failing:
            return count, failing
    return None, []


def test_a_sustained_slowdown_is_found_with_its_cause_and_fails_once(tmp_path):
    later = {n: "1.33.0" for n in range(16, 21)}
    commits = {n: "bbb" for n in range(16, 21)}
    runs = write_history(tmp_path, runs_with(2, 20, slower_from=16), later, commits)
    count, [cp] = first_failing(runs)
    assert count <= 18, "not found within 3 runs of the step"
    assert (cp.variant, cp.shape) == ("onnx-int8", "b1-s16") and 1.06 < cp.shift < 1.15
    assert cp.before.label.startswith("#0015") and cp.after.label.startswith("#0016")
    assert cp.causes() == ["commit aaa -> bbb", "onnxruntime 1.32.0 -> 1.33.0"]
    assert "(slower) between #0015" in cp.message and "confirmed; changed: commit" in cp.message
    kept = changepoints.find(runs[:count + 1])  # the failing run was kept (accepted)
    assert [c.fails for c in kept if c.confirmed] == [False]


def test_a_step_with_two_runs_after_it_is_not_confirmed_yet(tmp_path):
    runs = write_history(tmp_path, runs_with(3, 20, slower_from=19, factor=1.3))
    assert not any(cp.fails for cp in changepoints.find(runs))


def test_a_speedup_is_listed_but_does_not_fail(tmp_path):
    runs = write_history(tmp_path, runs_with(4, 20, slower_from=14, factor=0.85))
    found = [cp for cp in changepoints.find(runs) if cp.confirmed]
    assert found and all(cp.shift < 1 and not cp.fails for cp in found)
    assert "(faster)" in found[0].message


def test_a_machine_slower_for_the_last_runs_is_no_change_point(tmp_path):
    runs = write_history(tmp_path, runs_with(5, 20, machine_from=14))
    assert not [cp for cp in changepoints.find(runs) if cp.confirmed]


def test_a_flat_or_short_series_has_no_break():
    assert changepoints.breaks([0.0] * 12) == []
    assert changepoints.breaks([0.0, 0.1, 0.0, 0.1, 0.0]) == []


def test_a_slowdown_with_nothing_recorded_changed_is_the_machine_and_only_reported(tmp_path):
    runs = write_history(tmp_path, runs_with(2, 20, slower_from=16))
    assert first_failing(runs) == (None, [])
    [cp] = [cp for cp in changepoints.find(runs) if cp.confirmed]
    assert cp.lasting_slowdown and "changed: nothing recorded changed" in cp.message


@pytest.mark.parametrize("seed", range(5))
def test_the_cumulative_cost_is_ruptures_least_squares_cost(seed):
    """Same segment costs as ruptures' own l2 cost, and so the same change points, on residual-like
    series (near 0, steps of a few per cent) and on one far from 0, where an uncentred sum of
    squares would cancel."""
    import numpy
    import ruptures

    rng = random.Random(seed)
    for offset in (0.0, 1e4):
        series = [offset + rng.gauss(0.08 if i >= 20 else 0.0, 0.03) for i in range(40)]
        signal = numpy.asarray(series).reshape(-1, 1)
        ours, theirs = changepoints.CumulativeL2().fit(signal), ruptures.costs.CostL2().fit(signal)
        for start, end in ((0, 40), (0, 3), (5, 29), (20, 40), (37, 40)):
            assert ours.error(start, end) == pytest.approx(theirs.error(start, end), rel=1e-9,
                                                           abs=1e-12)
        assert changepoints.breaks(series) == ruptures.Pelt(
            model="l2", min_size=changepoints.MIN_SEGMENT, jump=1).fit(signal).predict(
            pen=changepoints.PENALTY * changepoints.noise_sd(series) ** 2 * math.log(40))[:-1]
