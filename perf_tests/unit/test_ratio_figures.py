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
