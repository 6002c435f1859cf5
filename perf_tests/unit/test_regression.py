"""History files and the regression check, on synthetic runs (no model is built)."""

import json
import math
import random
import warnings
from types import SimpleNamespace

import pytest

from perf_tests.harness import history, plots, regression, report, reporting
from perf_tests.harness.store import LatencyResult

pytestmark = pytest.mark.unit


USUAL = {"pytorch-fp32": 0.300, "onnx-fp32": 0.150, "onnx-o3": 0.140, "onnx-int8": 0.090}
KEY = ("onnx-int8", "b1-s16")
RULE = regression.Rule()


def noisy(median, n, rng, spread=0.05):
    return [median * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def gate_run(rng, machine=1.0, sd=0.02, slower=None, shapes=("b1-s16",), **how):
    """One run's latency entries: each variant's rounds and, for candidates, the interleaved
    baseline rounds; ``machine`` slows everything, ``slower`` one variant's own rounds."""
    how = {"threads": 2, "new_tokens": 32, **how}
    run = {}
    for shape in shapes:
        for variant, seconds in USUAL.items():
            own = machine * (slower or {}).get(variant, 1.0) * math.exp(rng.gauss(0, sd))
            partner = machine * math.exp(rng.gauss(0, sd))
            paired = ([] if variant == "pytorch-fp32" else
                      [USUAL["pytorch-fp32"] * partner * (1 + rng.uniform(0, 0.05))
                       for _ in range(8)])
            run[(variant, shape)] = {
                "data": [seconds * own * (1 + rng.uniform(0, 0.05)) for _ in range(8)],
                "extra_info": {"paired_baseline_s": paired, **how}}
    return run


def history_of(rng, runs=20, **kwargs):
    return [gate_run(rng, machine=math.exp(rng.gauss(0, 0.08)), **kwargs) for _ in range(runs)]


def judged(now, pool, key=KEY, rule=RULE, **kwargs):
    found = regression.compare_latency(now, pool, rule, "the last runs", **kwargs)
    return next(c for c in found if (c.variant, c.shape) == key)


def test_an_unchanged_run_passes_and_says_what_it_could_catch():
    rng = random.Random(1)
    result = judged(gate_run(rng), history_of(rng))
    assert not result.regressed and result.detectable < 1.25
    for part in ("onnx-int8 [b1-s16] latency unchanged: best round", "what the last runs predict",
                 "noise over 20 runs", "false-alarm rate 0.0025 per figure",
                 "which catches x1."):
        assert part in result.message


def test_a_slower_variant_is_a_regression_with_a_full_message():
    rng = random.Random(2)
    result = judged(gate_run(rng, slower={"onnx-int8": 1.25}), history_of(rng))
    assert result.regressed and 1.18 < result.factor < 1.33 and result.p_value < 0.001
    assert result.message.startswith("onnx-int8 [b1-s16] latency regressed: best round")


def test_a_whole_run_on_a_slower_machine_is_no_regression():
    rng = random.Random(3)
    found = regression.compare_latency(gate_run(rng, machine=1.30), history_of(rng), RULE, "#1")
    assert not any(c.regressed for c in found)
    assert all(1.2 < c.machine_factor < 1.4 for c in found)


def test_the_baseline_variant_is_judged_against_the_candidates_mood():
    rng = random.Random(4)
    pool = history_of(rng)
    key = ("pytorch-fp32", "b1-s16")
    slower_alone = gate_run(rng, slower={"pytorch-fp32": 1.25})
    assert judged(slower_alone, pool, key).regressed
    assert not judged(gate_run(rng, machine=1.3), pool, key).regressed


def test_a_figure_measured_beside_a_neighbour_is_not_judged_and_says_why():
    """PyTorch 25 % slower while other processes took 15 % of the CPUs: a neighbour slows
    PyTorch more than the engines the mood is read from, so the check says it cannot judge
    instead of failing; the same slowdown on a quiet machine fails."""
    rng = random.Random(12)
    pool = history_of(rng)
    key = ("pytorch-fp32", "b1-s16")
    busy = judged(gate_run(rng, slower={"pytorch-fp32": 1.25}, others_cpu_share=0.15), pool, key)
    assert not busy.regressed and busy.busy == pytest.approx(0.15) and busy.factor > 1.15
    assert "latency not judged (other processes or guests took 15% of the CPUs" in busy.message
    lines = report.comparison_lines([busy], "the last runs")
    assert any(line.endswith("not judged: busy") for line in lines), lines
    assert "regression check: 0 ok, 0 regressed, 1 not judged (busy machine)" in lines, lines
    quiet = judged(gate_run(rng, slower={"pytorch-fp32": 1.25}, others_cpu_share=0.01,
                             steal_share=0.01), pool, key)
    assert quiet.regressed and quiet.busy is None


def test_figures_measured_beside_a_neighbour_are_no_evidence_of_the_noise():
    rng = random.Random(13)
    quiet = history_of(rng)
    busy = [gate_run(rng, sd=0.3, steal_share=0.08) for _ in range(10)]
    now = gate_run(rng)
    assert judged(now, quiet + busy).detectable == judged(now, quiet).detectable


def test_a_noisy_machine_cannot_catch_a_small_regression_and_says_so():
    rng = random.Random(5)
    pool = history_of(rng, sd=0.12)
    result = judged(gate_run(rng, sd=0.0, slower={"onnx-int8": 1.25}), pool)
    assert not result.regressed and result.detectable > 1.25


def test_the_smallest_change_that_counts_holds_on_a_steady_machine():
    rng = random.Random(6)
    pool = history_of(rng, sd=0.002)
    assert not judged(gate_run(rng, sd=0.002, slower={"onnx-int8": 1.06}), pool).regressed
    assert judged(gate_run(rng, sd=0.002, slower={"onnx-int8": 1.14}), pool).regressed
    assert 1.10 < judged(gate_run(rng), pool).detectable < 1.12  # the floor, plus a little noise


def test_more_figures_share_the_false_alarm_rate():
    rng = random.Random(7)
    one = judged(gate_run(rng), history_of(rng))
    two = judged(gate_run(rng, shapes=("b1-s16", "b8-s64")),
                 history_of(rng, shapes=("b1-s16", "b8-s64")))
    assert "rate 0.0025 per figure" in one.message and "rate 0.0008 per figure" in two.message


def test_too_few_runs_judge_nothing():
    rng = random.Random(8)
    pool = history_of(rng, runs=regression.MIN_POOL - 1)
    assert regression.compare_latency(gate_run(rng), pool, RULE, "#1") == []
    assert regression.compare_latency(gate_run(rng), pool + history_of(rng, runs=1), RULE, "#1")


def test_a_pinned_run_is_the_centre_and_the_pool_the_noise():
    rng = random.Random(9)
    pool = history_of(rng)
    fast_reference = gate_run(rng, sd=0.0, slower={"onnx-int8": 0.80})
    result = judged(gate_run(rng), pool, reference=fast_reference)
    assert result.regressed and 1.15 < result.factor < 1.4


@pytest.mark.parametrize("unusable", [
    {"threads": 4},  # measured another way
    {"others_cpu_share": 0.20},  # beside a neighbour
])
def test_a_pinned_figure_the_pool_would_leave_out_is_not_the_centre(unusable):
    """The pinned run's figure is held to the pool's rules: one measured another way or beside
    a neighbour gives way to the pool's mean, and the message says so."""
    rng = random.Random(9)
    pool = history_of(rng)
    fast_reference = gate_run(rng, sd=0.0, slower={"onnx-int8": 0.80}, **unusable)
    result = judged(gate_run(rng), pool, reference=fast_reference, pool_label="the pool")
    assert not result.regressed and "what the pool predict" in result.message
    lacking = {key: entry for key, entry in fast_reference.items() if key != KEY}
    result = judged(gate_run(rng), pool, reference=lacking, pool_label="the pool")
    assert not result.regressed and "what the pool predict" in result.message
    plain = judged(gate_run(random.Random(10)), pool)
    again = judged(gate_run(random.Random(10)), pool, reference=lacking)
    assert again.detectable == plain.detectable  # the pool's spread, not a pinned run's


def test_a_figure_new_to_the_history_is_said_not_passed_over():
    rng = random.Random(11)
    pool = history_of(rng)
    for run in pool[:-3]:  # onnx-o3 measured in the last 3 runs only
        del run[("onnx-o3", "b1-s16")]
    now = gate_run(rng, slower={"onnx-o3": 2.0})
    assert not any(c.variant == "onnx-o3" for c in regression.compare_latency(now, pool, RULE,
                                                                               "#1"))
    assert regression.too_few_runs(now, pool) == [
        "onnx-o3 [b1-s16] latency not judged: 3 comparable earlier run(s), the check needs 5"]


def test_a_pool_that_never_moved_gives_no_p_value():
    noise = regression.Noise(mean=0.0, sd=0.0, runs=5)
    assert noise.p_value(0.01) is None


def test_runs_measured_another_way_are_not_compared():
    rng = random.Random(10)
    pool = history_of(rng, threads=1)
    assert regression.compare_latency(gate_run(rng, threads=2), pool, RULE, "#1") == []
    assert regression.compare_latency(gate_run(rng, threads=1), pool, RULE, "#1")


def summary_with(bleu, peak, disk=100.0, sentences=300, shape="b8-s64"):
    return {"variants": {"onnx-int8": {"memory": {"peak_above_baseline_mb": peak, "shape": shape},
                                       "disk_mb": disk,
                                       "quality": {"bleu": bleu, "chrf": 90.0,
                                                   "sentences": sentences,
                                                   "test_set": "embedded-test"}}}}


def compared(current, *earlier):
    """The comparisons of ``current`` against earlier summaries (oldest first), labelled #1..."""
    found, _ = regression.compare_summaries(
        current, [(summary, f"#{number}") for number, summary in enumerate(earlier, start=1)])
    return found


def test_quality_drop_and_memory_growth_are_regressions():
    found = compared(summary_with(95.0, 130.0), summary_with(96.0, 100.0))
    regressed = {c.kind for c in found if c.regressed}
    assert regressed == {"BLEU", "peak memory"}
    unchanged = compared(summary_with(96.0, 103.0), summary_with(96.0, 100.0))
    assert not any(c.regressed for c in unchanged)


def test_figures_measured_another_way_are_not_compared():
    """A full run scores every sentence and a smoke run 300: their BLEU is not a regression."""
    current = summary_with(90.0, 200.0, sentences=600, shape="b8-s128")
    found, notes = regression.compare_summaries(current, [(summary_with(96.0, 100.0), "#2")])
    assert [c.kind for c in found] == ["size on disk"]
    assert notes == [
        "peak memory not compared: no earlier run in the pool measured it the same way "
        "(onnx-int8)",
        "BLEU not compared: no earlier run in the pool measured it the same way (onnx-int8)",
        "chrF not compared: no earlier run in the pool measured it the same way (onnx-int8)"]


def test_a_run_that_measured_latency_alone_hides_no_regression_of_the_others():
    """Each figure is compared with the newest earlier run that measured it: a run of the
    latency tests alone in between (its summary has no memory, disk or scores) changes nothing."""
    latency_only = {"variants": {"onnx-int8": {"latency": {}}}}
    found = compared(summary_with(88.0, 300.0, disk=140.0), summary_with(95.2, 140.0),
                     summary_with(95.0, 141.0), latency_only)
    assert {(c.kind, c.regressed, c.baseline) for c in found} == {
        ("peak memory", True, 141.0), ("size on disk", True, 100.0), ("BLEU", True, 95.0),
        ("chrF", False, 90.0)}
    assert all("in #2" in c.message for c in found)


def test_a_figure_an_earlier_run_lacks_is_not_compared(tmp_path):
    """A summary written before a figure existed (or with it lost) compares what both runs
    have, and the trends plot draws what each run has."""
    earlier = summary_with(96.0, 100.0)
    del earlier["variants"]["onnx-int8"]["memory"]["peak_above_baseline_mb"]
    found = compared(summary_with(95.9, 130.0), earlier)
    assert [c.kind for c in found] == ["size on disk", "BLEU", "chrF"]
    runs = []
    for number, summary in enumerate((earlier, summary_with(95.9, 130.0)), start=1):
        path = write_run(tmp_path, number, f"r{number}", f"2026-11-24T1{number}:00:00")
        path.write_text(json.dumps({**json.loads(path.read_text()),
                                    "perf_gate": {"run_id": f"r{number}", **summary}}))
        runs.append(history.read_run(path, number))
    assert plots.trends(runs, tmp_path / "trends.png").stat().st_size > 10_000


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


def test_a_damaged_latency_entry_is_skipped_with_the_file_named(tmp_path):
    path = write_run(tmp_path, 1, "a")
    data = json.loads(path.read_text())
    data["benchmarks"][0]["stats"]["data"] = [0.1, "fast", -1]
    path.write_text(json.dumps(data))
    with pytest.warns(history.HistoryWarning, match=f"damaged latency entry .* in history file {path}"):
        [run] = history.load_runs(tmp_path)
    assert read_quietly(run) == {}
    assert json.loads(path.read_text()) == data  # never rewritten


def read_quietly(run):
    """The run's latency entries, read the way the plots and the second measurement read them
    after the history was loaded: a warning there would be an error (pytest's filterwarnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return run.latency()


GOOD_SUMMARY = {"run_id": "b", "libraries": {"torch": "2.13.0"}, "models": {"perf": {}},
                "variants": {"onnx-int8": {"disk_mb": 94.3, "memory": {
                    "shape": "b8-s64", "peak_above_baseline_mb": 140.0},
                    "quality": {"bleu": 95.2, "chrf": 98.1}}}}


@pytest.mark.parametrize("change, problem", [
    (lambda d: [d], "not a JSON object"),
    (lambda d: {**d, "benchmarks": {}}, "no list of benchmarks"),
    (lambda d: {**d, "datetime": None}, "its datetime is not text"),
    (lambda d: {**d, "commit_info": ["abc"]}, "its commit_info is not an object"),
    (lambda d: {**d, "perf_gate": []}, "perf_gate is not an object"),
    (lambda d: {**d, "perf_gate": {**GOOD_SUMMARY, "run_id": 7}}, "perf_gate.run_id is not text"),
    (lambda d: {**d, "perf_gate": {**GOOD_SUMMARY, "models": {"perf": "t5"}}},
     "perf_gate.models holds an entry that is not an object"),
    (lambda d: {**d, "perf_gate": {**GOOD_SUMMARY, "variants": {"onnx-int8": []}}},
     "perf_gate.variants.onnx-int8 is not an object"),
    (lambda d: {**d, "perf_gate": {**GOOD_SUMMARY, "variants": {"onnx-int8": {"memory": 140}}}},
     "perf_gate.variants.onnx-int8.memory is not an object"),
    (lambda d: {**d, "perf_gate": {**GOOD_SUMMARY, "variants": {"onnx-int8": {
        "memory": {"peak_above_baseline_mb": "140 MB"}}}}},
     "perf_gate.variants.onnx-int8.memory.peak_above_baseline_mb is not a number"),
    (lambda d: {**d, "perf_gate": {**GOOD_SUMMARY, "variants": {"onnx-int8": {
        "quality": {"bleu": True}}}}}, "perf_gate.variants.onnx-int8.quality.bleu is not a number"),
    # null is no missing figure: the comparisons would do arithmetic on it
    (lambda d: {**d, "perf_gate": {**GOOD_SUMMARY, "variants": {"onnx-int8": {
        **GOOD_SUMMARY["variants"]["onnx-int8"], "disk_mb": None}}}},
     "perf_gate.variants.onnx-int8.disk_mb is not a number"),
    (lambda d: {**d, "perf_gate": {**GOOD_SUMMARY, "variants": {"onnx-int8": {
        "quality": {"chrf": float("nan")}}}}},
     "perf_gate.variants.onnx-int8.quality.chrf is not a number"),
])
def test_a_history_file_of_the_wrong_shape_is_skipped_with_its_name_and_why(tmp_path, change,
                                                                           problem):
    """Any file whose parts the gate reads have other types than it writes is skipped whole,
    named, with what is wrong, and never rewritten; the other runs are read."""
    write_run(tmp_path, 1, "a")
    path = write_run(tmp_path, 2, "b")
    text = json.dumps(change({**json.loads(path.read_text()), "perf_gate": GOOD_SUMMARY}))
    path.write_text(text)
    with pytest.warns(history.HistoryWarning) as caught:
        runs = history.load_runs(tmp_path)
    assert [str(w.message) for w in caught] == [
        f"skipping unreadable history file {path}: {problem}"]
    assert [run.number for run in runs] == [1]
    assert path.read_text() == text


@pytest.mark.parametrize("bench", [
    "onnx-int8 b1-s16",
    {"extra_info": {"variant": "onnx-int8", "shape": "b1-s16"}, "stats": []},
    {"extra_info": [], "stats": {"data": [0.1]}},
    {"extra_info": {"variant": ["onnx-int8"], "shape": "b1-s16"}, "stats": {"data": [0.1]}},
    {"extra_info": {"variant": "ct2-int8", "shape": "b1-s16", "others_cpu_share": None},
     "stats": {"data": [0.1]}},
    {"extra_info": {"variant": "ct2-int8", "shape": "b1-s16", "measured_again": {
        "data": [0.1], "steal_share": "0.01"}}, "stats": {"data": [0.1]}},
])
def test_a_damaged_benchmark_entry_is_dropped_and_the_rest_of_its_run_kept(tmp_path, bench):
    path = write_run(tmp_path, 1, "a")
    data = json.loads(path.read_text())
    data["benchmarks"].append(bench)
    path.write_text(json.dumps(data))
    with pytest.warns(history.HistoryWarning, match=f"skipping a .* in history file {path}"):
        [run] = history.load_runs(tmp_path)
    assert list(read_quietly(run)) == [("onnx-int8", "b1-s16")]
    assert json.loads(path.read_text()) == data


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


def fake_gate(tmp_path, baseline_run="latest", runs=20):
    config = SimpleNamespace(baseline_run=baseline_run, baseline_runs=runs, threads=2,
                             new_tokens=32, regression_factor=1.10, false_alarm_rate=0.01,
                             baseline="pytorch-fp32", measure_again="regressed")
    rng = random.Random(9)
    result = LatencyResult("onnx-int8", "b1-s16", noisy(0.100, 8, rng), 0.1, 1.0)
    return SimpleNamespace(config=config, run_id="now", check_notes=[], store=SimpleNamespace(
        latency={("onnx-int8", "b1-s16"): result}, latency_again={}))


def test_latency_waits_for_five_earlier_runs(tmp_path):
    for number, run_id in enumerate("abcd", start=1):
        write_run(tmp_path, number, run_id, f"2026-11-24T1{number}:00:00")
    runs = history.load_runs(tmp_path)
    found = reporting.compare_with_history(fake_gate(tmp_path), {"variants": {}}, runs)
    assert found.comparisons == [] and found.label == "the last 4 runs, #0001-#0004"
    assert found.notes == ["latency not judged yet: 4 comparable earlier run(s) of 4, the check "
                           "needs 5 to measure this machine's noise"]
    write_run(tmp_path, 5, "e", "2026-11-24T15:00:00")
    found = reporting.compare_with_history(fake_gate(tmp_path), {"variants": {}},
                                           history.load_runs(tmp_path))
    assert [c.kind for c in found.comparisons] == ["latency"] and not found.notes
    for path in sorted(tmp_path.rglob("*.json")):  # the same runs, measured with one thread
        data = json.loads(path.read_text())
        data["benchmarks"][0]["extra_info"]["threads"] = 1
        path.write_text(json.dumps(data))
    found = reporting.compare_with_history(fake_gate(tmp_path), {"variants": {}},
                                           history.load_runs(tmp_path))
    assert found.notes[0].startswith("latency not judged yet: 0 comparable earlier run(s) of 5")


def measured_again(run: dict, key, again: dict) -> dict:
    """``run`` with the test ``key`` measured a second time, as confirm.py records it."""
    info = {**run[key]["extra_info"], "measured_again": {
        "data": again["data"], "paired_baseline_s": again["extra_info"]["paired_baseline_s"]}}
    return {**run, key: {**run[key], "extra_info": info}}


def test_a_stall_measured_again_is_judged_on_the_second_measurement():
    """One test 60 % slower while the rest of the run is as usual (the host stalled for it):
    measured again it is as usual, and the night passes, saying what the first rounds were."""
    rng = random.Random(14)
    pool = history_of(rng)
    stalled = gate_run(rng, slower={"onnx-int8": 1.6})
    first = judged(stalled, pool)
    assert first.regressed and first.first_factor is None
    assert regression.measure_again([first], stalled) == [KEY]
    second = judged(measured_again(stalled, KEY, gate_run(rng)[KEY]), pool)
    assert not second.regressed and second.first_factor == pytest.approx(first.factor)
    assert f"measured again (the first rounds were x{first.factor:.3f}): best round" \
        in second.message
    assert ("measured again, as their first measurement regressed against the history or "
            f"failed a limit (the verdict is the second's): onnx-int8 [b1-s16] first "
            f"+{(first.factor - 1) * 100:.1f}%, then "
            in " ".join(report.comparison_lines([second], "the last runs")))
    real = gate_run(rng, slower={"onnx-int8": 1.6})
    again = gate_run(rng, slower={"onnx-int8": 1.6})[KEY]  # a real change is there again
    assert judged(measured_again(real, KEY, again), pool).regressed


def test_every_shape_of_a_variant_judged_over_all_its_shapes_is_measured_again():
    rng = random.Random(15)
    shapes = ("b1-s16", "b8-s64")
    now = gate_run(rng, shapes=shapes, slower={"onnx-int8": 1.5})
    found = regression.compare_latency(now, history_of(rng, shapes=shapes), RULE, "#1")
    assert {c.shape for c in found if c.variant == "onnx-int8" and c.regressed} >= {
        regression.ALL_SHAPES}
    assert regression.measure_again(found, now) == [("onnx-int8", "b1-s16"),
                                                    ("onnx-int8", "b8-s64")]
    assert regression.measure_again([c for c in found if c.variant != "onnx-int8"], now) == []


def test_a_stalled_run_measured_again_leaves_the_noise_of_later_nights_alone():
    """Without the second measurement, one stalled run in the pool widens what the check can
    catch for as long as it stays there; with it, the pool is as if the stall never happened."""
    rng = random.Random(16)
    pool = history_of(rng)
    now = gate_run(rng)
    usual = pool[7][KEY]
    stalled = {**pool[7], KEY: {**usual, "data": [x * 1.6 for x in usual["data"]]}}
    kept_stall = pool[:7] + [stalled] + pool[8:]
    confirmed = pool[:7] + [measured_again(stalled, KEY, usual)] + pool[8:]
    assert judged(now, confirmed).detectable == pytest.approx(judged(now, pool).detectable)
    assert judged(now, kept_stall).detectable > judged(now, pool).detectable + 0.05


def test_the_smallest_change_caught_is_caught_by_both_measurements_in_95pc_of_runs():
    """The report's 'catches': a change that large exceeds the bound on the first measurement
    and on the second in 95 % of runs (each of them a t-distributed prediction, as the bound
    assumes); with 95 % for each, it would be caught in about 90 %."""
    from scipy.stats import t as student_t

    noise = regression.Noise(0.0, 0.05, 20)
    alpha, spread = 0.0025, math.sqrt(1 + 1 / 20)
    change, bound = noise.detectable(alpha, 1.10), noise.bound(alpha, 1.10)
    draws = student_t.rvs(19, size=(2, 40_000), random_state=17) * 0.05 * spread + change
    caught = ((draws[0] > bound) & (draws[1] > bound)).mean()
    assert 0.945 < caught < 0.96, caught


def test_a_damaged_second_measurement_skips_the_entry_with_the_file_named(tmp_path):
    path = write_run(tmp_path, 1, "a")
    data = json.loads(path.read_text())
    data["benchmarks"][0]["extra_info"]["measured_again"] = {"data": ["slow"]}
    path.write_text(json.dumps(data))
    with pytest.warns(history.HistoryWarning, match=f"damaged latency entry .* in history file {path}"):
        [run] = history.load_runs(tmp_path)
    assert read_quietly(run) == {}


def test_the_trends_plot_draws_the_rounds_judged(tmp_path):
    """A test measured again is judged on its second rounds; the trend shows those."""
    path = write_run(tmp_path, 1, "a")
    data = json.loads(path.read_text())
    data["benchmarks"][0]["extra_info"].update(
        paired_baseline_s=[0.4, 0.4], measured_again={"data": [0.05, 0.05],
                                                      "paired_baseline_s": [0.5, 0.5]})
    path.write_text(json.dumps(data))
    [run] = history.load_runs(tmp_path)
    series = plots.trend_series([run])
    assert series["latency"] == {"onnx-int8 b1-s16": {0: 50.0}}
    assert series["ratio"] == {"onnx-int8 b1-s16": {0: 0.1}}
