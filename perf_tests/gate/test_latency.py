"""Latency of every variant at every shape; candidates are judged against the baseline, and
their rounds over the interleaved baseline rounds are saved as a benchmark group of their own."""

import pytest

from perf_tests.harness import latency
from perf_tests.harness.judge import judge

pytestmark = pytest.mark.gate


def test_latency(benchmark, gate, variant, shape):
    gate.skip_unrunnable(variant)
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled (--benchmark-disable): no latency to judge")
    config = gate.config
    benchmark.group = f"latency {shape.id}"
    result = latency.measure(benchmark, gate.pool, config, variant, shape)
    gate.store.latency[(variant, shape.id)] = result
    benchmark.extra_info.update(
        variant=variant, shape=shape.id, arch=config.arch, preset=config.preset,
        threads=config.threads, new_tokens=config.new_tokens, model=gate.specs["perf"].name,
        artifact=gate.pool.artifact(variant, "perf").name,
        paired_baseline_s=result.paired_baseline_s, **result.as_dict())
    limit = gate.limits.find("latency", variant, config.baseline)
    if limit is None:
        return
    baseline_ms = result.as_dict()["paired_baseline_median_ms"]
    gate.check(judge(limit, result.ratio, result.median_ms, baseline_ms, config.arch_preset,
                     shape.id))


RATIO_CLOCK = latency.RoundClock()


@pytest.mark.benchmark(timer=RATIO_CLOCK)
def test_latency_ratio(benchmark, gate, candidate, shape):
    """Each round of a candidate over the baseline round interleaved with it, saved as its own
    benchmark group: a figure from which a shared runner's mood largely cancels, for
    ``--benchmark-compare`` (README). Measured here when its latency test did not run."""
    gate.skip_unrunnable(candidate)
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled (--benchmark-disable)")
    config = gate.config
    result = (gate.store.latency.get((candidate, shape.id))
              or latency.interleaved(gate.pool, config, candidate, shape))
    ratios = [c / b for c, b in zip(result.samples_s, result.paired_baseline_s)]
    benchmark.group = f"latency ratio {shape.id}"
    benchmark.extra_info.update(variant=candidate, shape=shape.id, figure="ratio_to_baseline",
                                baseline=config.baseline, threads=config.threads,
                                new_tokens=config.new_tokens, unit="x (shown as seconds)")
    latency.record_figures(benchmark, RATIO_CLOCK, ratios)
