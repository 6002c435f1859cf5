"""Latency of every variant at every shape; candidates are judged against the baseline."""

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

