"""Figures that are no time go through pytest-benchmark exactly: the ratio benchmark group."""

import pytest

from perf_tests.harness import history
from perf_tests.harness.config import ROOT

pytestmark = pytest.mark.unit

A_FIGURE_TEST = """
import pytest
from perf_tests.harness.latency import RoundClock, record_figures

CLOCK = RoundClock()

@pytest.mark.benchmark(timer=CLOCK, group="latency ratio b1-s16")
def test_figures(benchmark):
    benchmark.extra_info.update(variant="onnx-int8", shape="b1-s16", figure="ratio_to_baseline")
    record_figures(benchmark, CLOCK, [0.5, 0.25, 0.75])
    assert benchmark.stats.stats.data == [0.5, 0.25, 0.75]
"""


def test_a_round_clock_makes_pytest_benchmark_store_the_figures(pytester, tmp_path):
    pytester.makepyfile(test_figures=A_FIGURE_TEST)
    pytester._monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           f"--benchmark-storage=file://{tmp_path}",
                                           "--benchmark-autosave", "--benchmark-save-data")
    result.assert_outcomes(passed=1)
    [run] = history.load_runs(tmp_path)
    [bench] = run.data["benchmarks"]
    assert bench["stats"]["data"] == [0.5, 0.25, 0.75] and bench["stats"]["median"] == 0.5
    assert run.latency() == {}, "a ratio is no latency for the regression check"


A_PROFILED_TEST = A_FIGURE_TEST + """

from types import SimpleNamespace

from perf_tests.harness import latency, workloads
from perf_tests.harness.config import Shape


class Engine:
    load_seconds = 0.0

    def generate(self, inputs, **settings):
        return None


def test_paired_rounds(benchmark, monkeypatch):
    monkeypatch.setattr(workloads, "latency_inputs", lambda tokenizer, prefix, shape: {})
    pool = SimpleNamespace(engine=lambda variant, role, timed=False: Engine(),
                           tokenizer=lambda role: None, specs={"perf": SimpleNamespace(prefix="")})
    config = SimpleNamespace(baseline="pytorch-fp32", rounds=4, new_tokens=8,
                             profile=SimpleNamespace(warmup_rounds=1))
    result = latency.measure(benchmark, pool, config, "onnx-int8", Shape.parse("b1-s16"))
    assert len(result.samples_s) == len(result.paired_baseline_s) == 4
"""


def test_a_profiled_run_pairs_each_round_with_one_baseline_round(pytester, tmp_path):
    """--benchmark-cprofile calls the setup and the target once more after the rounds, for the
    profile: that call is no round, so it pairs with no baseline round and records no figure."""
    pytester.makepyfile(test_profiled=A_PROFILED_TEST)
    pytester._monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           f"--benchmark-storage=file://{tmp_path}",
                                           "--benchmark-cprofile=tottime")
    result.assert_outcomes(passed=2)
