"""The second measurement of a latency figure that regressed (confirm.py), on synthetic runs:
which tests are measured again, where the second measurement goes, and the verdict it gives."""

import json
import math
import random
from types import SimpleNamespace

import pytest

from perf_tests.harness import confirm, history, plugin, reporting
from perf_tests.harness.judge import Limit
from perf_tests.harness.store import LatencyResult
from perf_tests.harness.workloads import Shape
from perf_tests.unit.test_regression import KEY, gate_run

pytestmark = pytest.mark.unit


def write_history(folder, runs: list[dict]) -> None:
    """Each run's latency entries as a pytest-benchmark history file of its own."""
    storage = folder / "Linux-CPython-3.11-64bit"
    storage.mkdir(parents=True)
    for number, run in enumerate(runs, start=1):
        benches = [{"extra_info": {"variant": v, "shape": s, **entry["extra_info"]},
                    "stats": {"data": entry["data"]}} for (v, s), entry in run.items()]
        (storage / f"{number:04d}_abc_2026-11-24T10:{number:02d}:00.json").write_text(json.dumps(
            {"datetime": f"2026-11-24T10:{number:02d}:00", "benchmarks": benches,
             "perf_gate": {"run_id": f"run-{number}"}}))


def result_of(key, entry) -> LatencyResult:
    return LatencyResult(key[0], key[1], entry["data"], 0.1, 1.0,
                         entry["extra_info"]["paired_baseline_s"], others_cpu=0.01, steal=0.0)


class FakeGate(SimpleNamespace):
    """What confirm.measure_again reads: the config, the store, a run id (no pool is used: the
    measuring is replaced)."""

    def __init__(self, tmp_path, tonight: dict, measure_again="regressed"):
        config = SimpleNamespace(
            results_dir=tmp_path, arch="x86_64", baseline_run="latest", baseline_runs=20,
            regression_factor=1.10, false_alarm_rate=0.01, threads=2, new_tokens=32,
            baseline="pytorch-fp32", shapes=(Shape.parse("b1-s16"),), measure_again=measure_again)
        store = SimpleNamespace(latency={key: result_of(key, e) for key, e in tonight.items()},
                                latency_again={})
        super().__init__(config=config, store=store, run_id="tonight", pool=None)


@pytest.fixture
def measuring(monkeypatch):
    """Replace the measuring: each test measured again runs as usual; the calls are listed."""
    rng, calls = random.Random(21), []

    def interleaved(pool, config, variant, shape):
        calls.append((variant, shape.id))
        return result_of((variant, shape.id), gate_run(rng)[(variant, shape.id)])

    monkeypatch.setattr(confirm.latency, "interleaved", interleaved)
    return calls


def benchmarks_of(tonight: dict) -> list:
    tests = [SimpleNamespace(extra_info={"variant": v, "shape": s}) for v, s in tonight]
    ratio = SimpleNamespace(extra_info={"variant": KEY[0], "shape": KEY[1],
                                        "figure": "ratio_to_baseline"})
    return tests + [ratio]


@pytest.fixture
def stalled_night(tmp_path):
    """Ten usual runs in the history, and tonight with onnx-int8 60 % slower in its test."""
    rng = random.Random(22)
    write_history(tmp_path / "history" / "x86_64",
                  [gate_run(rng, machine=math.exp(rng.gauss(0, 0.05))) for _ in range(10)])
    return gate_run(rng, slower={"onnx-int8": 1.6})


def test_a_stalled_test_is_measured_again_and_the_night_judged_on_it(tmp_path, stalled_night,
                                                                      measuring):
    gate, benches = FakeGate(tmp_path, stalled_night), benchmarks_of(stalled_night)
    runs = history.load_runs(tmp_path / "history" / "x86_64")
    _, before, _ = reporting.latency_check(gate, runs, reporting.current_latency(gate))
    assert [c.variant for c in before if c.regressed] == ["onnx-int8"]
    assert confirm.measure_again(gate, benches) == [KEY] and measuring == [KEY]
    assert set(gate.store.latency_again) == {KEY}
    saved = [b.extra_info for b in benches if "measured_again" in b.extra_info]
    assert [(info["variant"], info["shape"]) for info in saved] == [KEY]  # not the ratio group's
    again = saved[0]["measured_again"]
    assert again["data"] == gate.store.latency_again[KEY].samples_s and again["paired_baseline_s"]
    assert again["others_cpu_share"] == 0.01
    current = reporting.current_latency(gate)
    assert current[KEY]["extra_info"]["others_cpu_share"] == 0.01  # tonight's share is judged
    _, after, _ = reporting.latency_check(gate, runs, current)
    [judged] = [c for c in after if (c.variant, c.shape) == KEY]
    assert not judged.regressed and judged.first_factor > 1.4


def test_a_night_that_passes_measures_nothing_again(tmp_path, measuring):
    rng = random.Random(23)
    write_history(tmp_path / "history" / "x86_64", [gate_run(rng) for _ in range(10)])
    tonight = gate_run(rng)
    assert confirm.measure_again(FakeGate(tmp_path, tonight), benchmarks_of(tonight)) == []
    assert measuring == []


def test_all_records_a_second_measurement_of_every_test_and_never_none(tmp_path, stalled_night,
                                                                       measuring):
    gate, benches = FakeGate(tmp_path, stalled_night, "all"), benchmarks_of(stalled_night)
    assert confirm.measure_again(gate, benches) == [KEY]
    assert sorted(measuring) == sorted(stalled_night)
    tests = [b.extra_info for b in benches if "figure" not in b.extra_info]
    assert [(i["variant"], i["shape"]) for i in tests if "measured_again" in i] == [KEY]
    assert all("recorded_again" in i for i in tests if (i["variant"], i["shape"]) != KEY)
    assert set(gate.store.latency_again) == {KEY}  # the verdict is the second one's only there
    measuring.clear()
    gate = FakeGate(tmp_path, stalled_night, "never")
    assert confirm.measure_again(gate, benchmarks_of(stalled_night)) == [] and measuring == []


def test_the_second_measurement_is_taken_before_pytest_benchmark_saves_the_run(request):
    """pluggy calls the last implementation first: the gate's wrapper must come before
    pytest-benchmark's, which saves the run before it yields."""
    impls = request.config.pluginmanager.hook.pytest_sessionfinish.get_hookimpls()
    order = [impl.function for impl in reversed(impls)]
    benchmark = next(f for f in order if f.__module__ == "pytest_benchmark.plugin")
    assert order.index(plugin.pytest_sessionfinish) < order.index(benchmark)


LIMIT = Limit("latency", "torch-int8", "pytorch-fp32", "max", 0.75)


def rounds(candidate_ms: float, baseline_ms: float) -> LatencyResult:
    return LatencyResult("torch-int8", "b1-s16", [candidate_ms / 1000] * 8, 0.1, 1.0,
                         [baseline_ms / 1000] * 8)


@pytest.fixture
def limit_gate(monkeypatch):
    """A gate whose second measurement of a test gives the rounds set in ``gate.again``."""
    gate = SimpleNamespace(config=SimpleNamespace(measure_again="regressed",
                                                  arch_preset="x86_64/avx512_vnni"),
                           store=SimpleNamespace(latency_again={}), pool=None, calls=[])

    def interleaved(pool, config, variant, shape):
        gate.calls.append((variant, shape.id))
        return gate.again

    monkeypatch.setattr(confirm.latency, "interleaved", interleaved)
    return gate


def test_a_latency_limit_that_fails_is_judged_again_on_a_second_measurement(limit_gate):
    """The eleventh session's recording: torch-int8 0.755 against a limit of 0.75 in one run of
    20, and 0.603 measured again."""
    shape, bench = Shape.parse("b1-s16"), SimpleNamespace(extra_info={})
    limit_gate.again = rounds(301.5, 500.0)
    verdict = confirm.latency_limit(limit_gate, LIMIT, "torch-int8", shape, rounds(377.5, 500.0),
                                    bench)
    assert verdict.passed and limit_gate.calls == [("torch-int8", "b1-s16")]
    assert verdict.message.endswith("; measured again, the first measurement 0.755")
    assert bench.extra_info["measured_again"]["data"] == [0.3015] * 8
    assert limit_gate.store.latency_again[("torch-int8", "b1-s16")] is limit_gate.again
    limit_gate.again = rounds(380.0, 500.0)  # a real change is there again
    assert not confirm.latency_limit(limit_gate, LIMIT, "torch-int8", shape,
                                     rounds(377.5, 500.0), bench).passed


def test_a_latency_limit_that_holds_or_never_is_measured_once(limit_gate):
    shape, bench = Shape.parse("b1-s16"), SimpleNamespace(extra_info={})
    assert confirm.latency_limit(limit_gate, LIMIT, "torch-int8", shape, rounds(300.0, 500.0),
                                 bench).passed
    limit_gate.config.measure_again = "never"
    assert not confirm.latency_limit(limit_gate, LIMIT, "torch-int8", shape,
                                     rounds(377.5, 500.0), bench).passed
    assert limit_gate.calls == [] and bench.extra_info == {}


PAIR = Limit("latency", "onnx-int8-tuned", "ct2-int8", "max", 0.70)


def measured(variant: str, median_ms: float) -> LatencyResult:
    return LatencyResult(variant, "b1-s16", [median_ms / 1000] * 8, 0.1, 1.0, [0.5] * 8)


@pytest.fixture
def pair_gate(monkeypatch):
    """A gate whose second measurement of a variant gives the rounds set in ``gate.again``."""
    gate = SimpleNamespace(config=SimpleNamespace(measure_again="regressed",
                                                  arch_preset="x86_64/avx512_vnni"),
                           store=SimpleNamespace(latency={}, latency_again={}), pool=None,
                           calls=[], again={})

    def interleaved(pool, config, variant, shape):
        gate.calls.append(variant)
        return gate.again[variant]

    monkeypatch.setattr(confirm.latency, "interleaved", interleaved)
    return gate


def test_a_limit_between_candidates_that_fails_measures_both_again(pair_gate):
    shape = Shape.parse("b1-s16")
    pair_gate.store.latency = {("onnx-int8-tuned", "b1-s16"): measured("onnx-int8-tuned", 150.0),
                               ("ct2-int8", "b1-s16"): measured("ct2-int8", 200.0)}
    pair_gate.again = {"onnx-int8-tuned": measured("onnx-int8-tuned", 90.0),
                       "ct2-int8": measured("ct2-int8", 190.0)}
    verdict = confirm.latency_between(pair_gate, PAIR, shape)
    assert verdict.passed and pair_gate.calls == ["onnx-int8-tuned", "ct2-int8"]
    assert verdict.measured == pytest.approx(90 / 190)
    assert verdict.message.endswith("; measured again, the first measurement 0.750")
    assert set(pair_gate.store.latency_again) == {("onnx-int8-tuned", "b1-s16"),
                                                  ("ct2-int8", "b1-s16")}
    # the history keeps them: written into those tests' benchmarks before the run is saved
    benches = [SimpleNamespace(extra_info={"variant": v, "shape": "b1-s16"})
               for v in ("onnx-int8-tuned", "ct2-int8", "onnx-int8")]
    pair_gate.config.measure_again = "never"
    assert confirm.measure_again(pair_gate, benches) == []
    assert [b.extra_info["measured_again"]["data"][0] for b in benches[:2]] == [0.09, 0.19]
    assert "measured_again" not in benches[2].extra_info


def test_a_limit_between_candidates_uses_a_second_measurement_already_taken(pair_gate):
    """onnx-int8-tuned was measured again in its own test; a pair verdict that still fails
    measures ct2-int8 alone, and one with both measured again is not measured a third time."""
    shape = Shape.parse("b1-s16")
    pair_gate.store.latency = {("onnx-int8-tuned", "b1-s16"): measured("onnx-int8-tuned", 300.0),
                               ("ct2-int8", "b1-s16"): measured("ct2-int8", 200.0)}
    pair_gate.store.latency_again = {("onnx-int8-tuned", "b1-s16"):
                                     measured("onnx-int8-tuned", 150.0)}
    pair_gate.again = {"ct2-int8": measured("ct2-int8", 205.0)}
    verdict = confirm.latency_between(pair_gate, PAIR, shape)
    assert not verdict.passed and pair_gate.calls == ["ct2-int8"]
    assert verdict.measured == pytest.approx(150 / 205)
    assert not confirm.latency_between(pair_gate, PAIR, shape).passed
    assert pair_gate.calls == ["ct2-int8"]
    pair_gate.store.latency_again.clear()
    pair_gate.config.measure_again = "never"
    assert confirm.latency_between(pair_gate, PAIR, shape).measured == pytest.approx(1.5)
    assert pair_gate.calls == ["ct2-int8"]
