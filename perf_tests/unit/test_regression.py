"""History files and the regression check, on synthetic runs (no model is built)."""

import json
import random
from types import SimpleNamespace

import pytest

from perf_tests.harness import history, regression, reporting

pytestmark = pytest.mark.unit


def noisy(median, n, rng, spread=0.05):
    return [median * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def latency_entry(samples, paired=None, **how):
    return {"data": samples, "extra_info": {"paired_baseline_s": paired or [], **how}}


KEY = ("onnx-int8", "b1-s16")


def compare(now, pool, factor=1.10, alpha=0.05):
    return regression.compare_latency({KEY: now}, [{KEY: entry} for entry in pool], factor, alpha,
                                      "the last runs")


def steady_pool(rng, runs=5, candidate=0.120, baseline=0.300):
    return [latency_entry(noisy(candidate, 16, rng), noisy(baseline, 16, rng)) for _ in range(runs)]


def test_clear_slowdown_is_a_regression_with_a_full_message():
    rng = random.Random(1)
    [result] = compare(latency_entry(noisy(0.150, 16, rng), noisy(0.300, 16, rng)),
                       steady_pool(rng))
    assert result.regressed and result.factor > 1.10 and result.ratio_factor > 1.04
    for part in ("onnx-int8 [b1-s16] latency regressed: best round 1", "in the last runs",
                 "limit 1.10", "Mann-Whitney U p=0.0000", "ratio to the interleaved baseline",
                 "below 0.95 the baseline slowed more"):
        assert part in result.message


def test_small_slowdown_is_not_a_regression_even_if_significant():
    rng = random.Random(2)
    pool = [latency_entry(noisy(0.100, 12, rng, 0.01), noisy(0.3, 12, rng, 0.01))]
    [result] = compare(latency_entry(noisy(0.105, 12, rng, 0.01), noisy(0.3, 12, rng, 0.01)), pool)
    assert result.p_value < 0.01 and not result.regressed  # significant, but under the factor


def test_one_odd_run_in_the_pool_is_outvoted():
    """A pool run whose best round was lucky (20 % fast) does not make this run a regression."""
    rng = random.Random(4)
    pool = steady_pool(rng)
    pool[2] = latency_entry(noisy(0.096, 16, rng), noisy(0.300, 16, rng))
    [result] = compare(latency_entry(noisy(0.121, 16, rng), noisy(0.300, 16, rng)), pool)
    assert not result.regressed and result.factor < 1.05


def test_a_a_runs_rarely_trip_the_check():
    """Same distribution every run, 200 times: the false-alarm rate stays near zero."""
    rng = random.Random(3)
    alarms = sum(compare(latency_entry(noisy(0.12, 8, rng, 0.15), noisy(0.3, 8, rng, 0.15)),
                         steady_pool(rng))[0].regressed for _ in range(200))
    assert alarms <= 2


def test_a_faster_baseline_is_not_blamed_on_the_candidate():
    rng = random.Random(5)
    pool = steady_pool(rng, baseline=0.300)
    [result] = compare(latency_entry(noisy(0.120, 16, rng), noisy(0.240, 16, rng)), pool)
    assert result.ratio_factor > 1.15 and not result.regressed


def test_a_slowdown_whose_baseline_slowed_more_is_the_machine():
    """Seen here in an unchanged tox run: onnx-o3's best round +27 %, its ratio -11 %."""
    rng = random.Random(12)
    pool = steady_pool(rng, candidate=0.205, baseline=0.300)
    [result] = compare(latency_entry(noisy(0.260, 16, rng), noisy(0.430, 16, rng)), pool)
    assert result.factor > 1.2 and result.p_value < 0.01 and result.ratio_factor < 0.95
    assert not result.regressed


def test_a_slower_variant_moves_both_and_regresses():
    rng = random.Random(7)
    [result] = compare(latency_entry(noisy(0.150, 8, rng), noisy(0.300, 8, rng)), steady_pool(rng))
    assert result.regressed and result.ratio_factor > 1.2
    assert "onnx-int8 [b1-s16] latency regressed: best round" in result.message


def test_the_baseline_variant_needs_a_larger_factor():
    key = ("pytorch-fp32", "b1-s16")
    pool = [{key: latency_entry([0.60, 0.61, 0.60, 0.59, 0.60])}]
    drifted = latency_entry([0.70, 0.71, 0.70, 0.71, 0.70])   # +17 %: drift seen here
    slower = latency_entry([0.80, 0.81, 0.80, 0.81, 0.80])    # +33 %
    assert not regression.compare_latency({key: drifted}, pool, 1.10, 0.05, "#1")[0].regressed
    assert regression.compare_latency({key: slower}, pool, 1.10, 0.05, "#1")[0].regressed


BASE = ("pytorch-fp32", "b1-s16")


def whole_run(rng, candidate=0.120, partner=0.300, own=0.300):
    """One run's entries: onnx-int8 with its interleaved rounds, and pytorch-fp32's own test."""
    return {KEY: latency_entry(noisy(candidate, 16, rng), noisy(partner, 16, rng)),
            BASE: latency_entry(noisy(own, 16, rng))}


def compare_runs(now, rng, runs=5):
    pool = [whole_run(rng) for _ in range(runs)]
    found = regression.compare_latency(now, pool, 1.10, 0.05, "the last runs")
    return {(c.variant, c.shape): c for c in found}


def test_a_machine_slow_for_the_whole_run_is_not_a_regression():
    """Seen here in an unchanged tox run: onnx-fp32 +39.6 %, pytorch-fp32 +30.8 %, both windows."""
    rng = random.Random(13)
    found = compare_runs(whole_run(rng, candidate=0.168, partner=0.400, own=0.393), rng)
    candidate, baseline = found[KEY], found[BASE]
    assert candidate.factor > 1.3 and not candidate.regressed
    assert candidate.machine_factor > 1.25 and baseline.machine_factor > 1.3
    assert not baseline.regressed
    assert ("the machine slowed (pytorch-fp32 [b1-s16] best round x1.3" in candidate.message
            and "interleaved): judged on factor 1.0" in candidate.message)


def test_a_slow_spell_in_one_reference_does_not_hide_a_regression():
    """pytorch-fp32's own test ran in a slow spell, its rounds beside the candidate did not: the
    lesser drift is taken, and a 25 % slower candidate is still caught."""
    rng = random.Random(14)
    found = compare_runs(whole_run(rng, candidate=0.150, partner=0.300, own=0.390), rng)
    assert found[KEY].regressed and found[KEY].machine_factor is None


def test_a_regression_on_a_slow_machine_is_judged_over_the_drift():
    rng = random.Random(15)
    slower = compare_runs(whole_run(rng, candidate=0.200, partner=0.360, own=0.360), rng)[KEY]
    assert slower.regressed and 1.15 < slower.machine_factor < 1.25  # 1.67 / 1.2 is still 1.39
    drifted = compare_runs(whole_run(rng, candidate=0.150, partner=0.360, own=0.360), rng)[KEY]
    assert not drifted.regressed  # 1.25 / 1.2: about what the machine lost
    # ONNX Runtime loses more than PyTorch on a slow machine: over the drift, 1.20 is the limit
    worse = compare_runs(whole_run(rng, candidate=0.168, partner=0.360, own=0.360), rng)[KEY]
    assert not worse.regressed and "limit 1.20" in worse.message


def test_the_baseline_variant_is_judged_over_the_candidates_drift():
    rng = random.Random(16)
    steady_candidates = compare_runs(whole_run(rng, own=0.420), rng)[BASE]
    assert steady_candidates.regressed and steady_candidates.machine_factor is None


def test_runs_measured_another_way_are_not_compared():
    """A pool run with other threads or another model is no baseline for this one."""
    rng = random.Random(8)
    other = [latency_entry(noisy(0.060, 16, rng), noisy(0.150, 16, rng), threads=4)]
    now = latency_entry(noisy(0.120, 16, rng), noisy(0.300, 16, rng), threads=2)
    assert compare(now, other) == []
    same = [latency_entry(noisy(0.120, 16, rng), noisy(0.300, 16, rng), threads=2)]
    assert len(compare(now, same)) == 1


def summary_with(bleu, peak, disk=100.0, sentences=300, shape="b8-s64"):
    return {"variants": {"onnx-int8": {"memory": {"peak_above_baseline_mb": peak, "shape": shape},
                                       "disk_mb": disk,
                                       "quality": {"bleu": bleu, "chrf": 90.0,
                                                   "sentences": sentences,
                                                   "test_set": "embedded-test"}}}}


def test_quality_drop_and_memory_growth_are_regressions():
    found = regression.compare_summaries(summary_with(95.0, 130.0), summary_with(96.0, 100.0),
                                         "#2")
    regressed = {c.kind for c in found if c.regressed}
    assert regressed == {"BLEU", "peak memory"}
    unchanged = regression.compare_summaries(summary_with(96.0, 103.0), summary_with(96.0, 100.0),
                                             "#2")
    assert not any(c.regressed for c in unchanged)


def test_figures_measured_another_way_are_not_compared():
    """A full run scores every sentence and a smoke run 300: their BLEU is not a regression."""
    found = regression.compare_summaries(summary_with(90.0, 200.0, sentences=600, shape="b8-s128"),
                                         summary_with(96.0, 100.0), "#2")
    assert [c.kind for c in found] == ["size on disk"]


def write_run(folder, number, run_id, datetime="2026-11-24T10:00:00"):
    path = folder / "Linux-CPython-3.11-64bit" / f"{number:04d}_abc_{datetime}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    bench = {"extra_info": {"variant": "onnx-int8", "shape": "b1-s16", "median_ms": 100.0},
             "stats": {"data": [0.1, 0.1], "median": 0.1}}
    path.write_text(json.dumps({"datetime": datetime, "benchmarks": [bench],
                                "perf_gate": {"run_id": run_id}}))
    return path


def test_history_skips_a_corrupted_file_with_a_warning(tmp_path):
    write_run(tmp_path, 1, "a", "2026-11-24T10:00:00")
    broken = write_run(tmp_path, 2, "b", "2026-11-24T11:00:00")
    broken.write_text('{"benchmarks": [')  # an interrupted writer
    write_run(tmp_path, 3, "c", "2026-11-24T12:00:00")
    with pytest.warns(history.HistoryWarning, match=f"skipping unreadable history file {broken}"):
        runs = history.load_runs(tmp_path)
    assert [run.number for run in runs] == [1, 3]
    assert broken.read_text() == '{"benchmarks": ['  # never rewritten


def test_baseline_pool_selection(tmp_path):
    for number, run_id in enumerate("abcdefg", start=1):
        write_run(tmp_path, number, run_id, f"2026-11-24T1{number}:00:00")
    runs = history.load_runs(tmp_path)
    pool = history.select_pool(runs, "latest", "g", 5)
    assert [run.number for run in pool] == [2, 3, 4, 5, 6]  # never the run itself
    assert history.pool_label(pool) == "the last 5 runs, #0002-#0006"
    assert [run.number for run in history.select_pool(runs, "latest", "new", 3)] == [5, 6, 7]
    assert [run.number for run in history.select_pool(runs, "1", "new", 5)] == [1]
    assert [run.number for run in history.select_pool(runs, str(runs[0].path), "new", 5)] == [1]
    assert history.select_pool([], "latest", "new", 5) == []
    assert history.pool_label([runs[0]]).startswith("#0001 2026-11-24T11:00")
    assert runs[0].latency()[("onnx-int8", "b1-s16")]["data"] == [0.1, 0.1]


def fake_gate(tmp_path, baseline_run="latest", runs=5):
    config = SimpleNamespace(baseline_run=baseline_run, baseline_runs=runs, threads=2,
                             new_tokens=32, regression_factor=1.10, regression_alpha=0.05,
                             baseline="pytorch-fp32")
    rng = random.Random(9)
    result = SimpleNamespace(samples_s=noisy(0.120, 8, rng), paired_baseline_s=noisy(0.3, 8, rng))
    return SimpleNamespace(config=config, run_id="now",
                           store=SimpleNamespace(latency={("onnx-int8", "b1-s16"): result}))


def test_latency_waits_for_three_earlier_runs_unless_one_is_pinned(tmp_path):
    for number, run_id in enumerate("ab", start=1):
        write_run(tmp_path, number, run_id, f"2026-11-24T1{number}:00:00")
    runs = history.load_runs(tmp_path)
    found = reporting.compare_with_history(fake_gate(tmp_path), {"variants": {}}, runs)
    assert found.comparisons == [] and found.label == "the last 2 runs, #0001-#0002"
    assert found.notes == ["latency not judged yet: 2 earlier run(s), the check needs 3 (one run "
                           "is too noisy a baseline on a shared machine)"]
    again = lambda variant, shape: {"data": [0.1] * 8, "paired_baseline_s": []}  # noqa: E731
    pinned = reporting.compare_with_history(fake_gate(tmp_path, "2"), {"variants": {}}, runs, again)
    assert [c.kind for c in pinned.comparisons] == ["latency"]
    assert not any(note.startswith("latency not judged") for note in pinned.notes)
    write_run(tmp_path, 3, "c", "2026-11-24T13:00:00")
    found = reporting.compare_with_history(fake_gate(tmp_path), {"variants": {}},
                                           history.load_runs(tmp_path), again)
    assert [c.kind for c in found.comparisons] == ["latency"]


def write_steady_history(folder, runs, rng):
    for number in range(1, runs + 1):
        info = {"variant": "onnx-int8", "shape": "b1-s16", "threads": 2, "new_tokens": 32,
                "paired_baseline_s": noisy(0.300, 8, rng)}
        bench = {"extra_info": info, "stats": {"data": noisy(0.120, 8, rng)}}
        path = folder / "machine" / f"{number:04d}_abc_2026-11-24T10:{number:02d}:00.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"datetime": f"2026-11-24T10:{number:02d}:00",
                                    "benchmarks": [bench], "perf_gate": {"run_id": str(number)}}))
    return history.load_runs(folder)


@pytest.mark.parametrize("second_best, confirmed", [(0.120, False), (0.156, True)])
def test_a_suspect_is_judged_with_a_second_window(tmp_path, second_best, confirmed):
    """A slow first window (a slow spell of the machine, or a real regression) is a suspect; the
    second window decides."""
    rng = random.Random(10)
    runs = write_steady_history(tmp_path, 5, rng)
    gate = fake_gate(tmp_path)
    gate.store.latency[("onnx-int8", "b1-s16")] = SimpleNamespace(
        samples_s=noisy(0.156, 8, rng), paired_baseline_s=noisy(0.300, 8, rng))
    asked = []

    def second_window(variant, shape):
        asked.append((variant, shape))
        return {"data": noisy(second_best, 8, rng), "paired_baseline_s": noisy(0.300, 8, rng)}

    found = reporting.compare_with_history(gate, {"variants": {}}, runs, second_window)
    [result] = found.comparisons
    assert asked == [("onnx-int8", "b1-s16")]
    assert result.regressed is confirmed
    assert "both windows" in result.message
    verdict = "regression confirmed" if confirmed else "not confirmed"
    assert found.notes[-1].startswith("onnx-int8 [b1-s16]: second window best round")
    assert found.notes[-1].endswith(verdict)


def test_no_second_window_without_a_suspect(tmp_path):
    runs = write_steady_history(tmp_path, 5, random.Random(11))
    found = reporting.compare_with_history(fake_gate(tmp_path), {"variants": {}}, runs,
                                           lambda *key: pytest.fail("measured again"))
    assert [c.regressed for c in found.comparisons] == [False] and not found.notes
