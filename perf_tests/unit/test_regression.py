"""History files and the regression check, on synthetic runs (no model is built)."""

import json
import random

import pytest

from perf_tests.harness import history, regression

pytestmark = pytest.mark.unit


def noisy(median, n, rng, spread=0.05):
    return [median * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def test_clear_slowdown_is_a_regression_with_a_full_message():
    rng = random.Random(1)
    before, after = noisy(0.100, 5, rng), noisy(0.125, 5, rng)
    result = regression.compare_samples("latency", "onnx-int8", "b1-s16", after, before,
                                        1.10, 0.01, " ms", 1000, "#0003")
    assert result.regressed and result.factor > 1.10 and result.p_value < 0.01
    for part in ("onnx-int8", "[b1-s16]", "regressed", "factor 1.2", "p=0.0040", "#0003"):
        assert part in result.message


def test_small_slowdown_is_not_a_regression_even_if_significant():
    rng = random.Random(2)
    before, after = noisy(0.100, 12, rng, 0.01), noisy(0.105, 12, rng, 0.01)
    result = regression.compare_samples("latency", "onnx-fp32", "b8-s64", after, before,
                                        1.10, 0.01, " ms", 1000, "#1")
    assert result.p_value < 0.01 and not result.regressed  # significant, but under the factor


def test_large_but_noisy_change_is_not_a_regression():
    before = [0.10, 0.30, 0.11, 0.29, 0.12]
    after = [0.12, 0.31, 0.13, 0.28, 0.14]
    result = regression.compare_samples("latency", "onnx-o3", "b1-s16", after, before,
                                        1.10, 0.01, " ms", 1000, "#1")
    assert result.factor > 1.10 and not result.regressed


def test_a_a_runs_rarely_trip_the_check():
    """Same distribution twice, 200 times: the false-alarm rate stays near zero."""
    rng = random.Random(3)
    alarms = sum(regression.compare_samples("latency", "v", "s", noisy(0.1, 5, rng, 0.15),
                                            noisy(0.1, 5, rng, 0.15), 1.10, 0.01, "", 1,
                                            "x").regressed for _ in range(200))
    assert alarms <= 2


def summary_with(bleu, peak, disk=100.0):
    return {"variants": {"onnx-int8": {"memory": {"peak_above_baseline_mb": peak},
                                       "disk_mb": disk,
                                       "quality": {"bleu": bleu, "chrf": 90.0}}}}


def test_quality_drop_and_memory_growth_are_regressions():
    found = regression.compare_summaries(summary_with(95.0, 130.0), summary_with(96.0, 100.0),
                                         "#2")
    regressed = {c.kind for c in found if c.regressed}
    assert regressed == {"BLEU", "peak memory"}
    unchanged = regression.compare_summaries(summary_with(96.0, 103.0), summary_with(96.0, 100.0),
                                             "#2")
    assert not any(c.regressed for c in unchanged)


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


def test_baseline_selection(tmp_path):
    write_run(tmp_path, 1, "a", "2026-11-24T10:00:00")
    write_run(tmp_path, 2, "b", "2026-11-24T11:00:00")
    runs = history.load_runs(tmp_path)
    assert history.select_baseline(runs, "latest", "b").number == 1  # never the run itself
    assert history.select_baseline(runs, "latest", "new").number == 2
    assert history.select_baseline(runs, "1", "new").number == 1
    assert history.select_baseline(runs, str(runs[0].path), "new").number == 1
    assert history.select_baseline([], "latest", "new") is None
    assert runs[0].latency()[("onnx-int8", "b1-s16")]["data"] == [0.1, 0.1]


def latency_entry(samples, paired=None):
    return {"data": samples, "extra_info": {"paired_baseline_s": paired or []}}


def test_a_faster_baseline_is_not_blamed_on_the_candidate():
    before = latency_entry([0.150, 0.151, 0.149, 0.150, 0.152], [0.60, 0.61, 0.60, 0.59, 0.60])
    after = latency_entry([0.149, 0.150, 0.148, 0.150, 0.149], [0.50, 0.51, 0.50, 0.49, 0.50])
    [result] = regression.compare_latency({("onnx-int8", "b1-s16"): after},
                                          {("onnx-int8", "b1-s16"): before}, 1.10, 0.01, "#1")
    assert result.ratio_factor > 1.15 and not result.regressed


def test_machine_drift_alone_is_not_a_regression():
    """Seen here in an A/A run: onnx-int8 16 % slower in absolute time, but so was its round
    partner pytorch-fp32, so the ratio did not move."""
    before = latency_entry([0.378, 0.380, 0.375, 0.381, 0.379], [1.00, 1.01, 0.99, 1.00, 1.02])
    after = latency_entry([0.438, 0.440, 0.436, 0.441, 0.439], [1.16, 1.17, 1.15, 1.16, 1.18])
    [result] = regression.compare_latency({("onnx-int8", "b8-s64"): after},
                                          {("onnx-int8", "b8-s64"): before}, 1.10, 0.01, "#2")
    assert result.factor > 1.15 and result.p_value < 0.01 and not result.regressed
    assert result.ratio_factor < 1.02


def test_a_slower_variant_moves_both_and_regresses():
    before = latency_entry([0.150, 0.152, 0.149, 0.151, 0.150], [0.60, 0.61, 0.60, 0.59, 0.60])
    after = latency_entry([0.188, 0.190, 0.187, 0.189, 0.188], [0.60, 0.60, 0.61, 0.60, 0.59])
    [result] = regression.compare_latency({("onnx-int8", "b1-s16"): after},
                                          {("onnx-int8", "b1-s16"): before}, 1.10, 0.01, "#1")
    assert result.regressed and result.ratio_factor > 1.2
    assert "onnx-int8 [b1-s16] latency regressed: median 188.0 ms vs 150.0 ms" in result.message
    assert "ratio to the interleaved baseline" in result.message and "p=0.00" in result.message


def test_the_baseline_variant_needs_a_larger_factor():
    before = latency_entry([0.60, 0.61, 0.60, 0.59, 0.60])
    drifted = latency_entry([0.70, 0.71, 0.70, 0.71, 0.70])   # +17 %: drift seen here
    slower = latency_entry([0.80, 0.81, 0.80, 0.81, 0.80])    # +33 %
    key = ("pytorch-fp32", "b1-s16")
    assert not regression.compare_latency({key: drifted}, {key: before}, 1.10, 0.01, "#1")[0].regressed
    assert regression.compare_latency({key: slower}, {key: before}, 1.10, 0.01, "#1")[0].regressed
