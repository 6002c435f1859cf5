"""Latency of one variant at one shape, timed by pytest-benchmark, baseline rounds interleaved.

pytest-benchmark calls ``setup`` before every round, untimed; we run one baseline call there and
time it ourselves, so candidate and baseline rounds alternate (B C B C ...) and drift on a shared
machine hits both alike. The ratio is taken between those paired rounds.
"""

from __future__ import annotations

import time

from perf_tests.harness import workloads
from perf_tests.harness.config import GateConfig, Shape
from perf_tests.harness.pool import VariantPool
from perf_tests.harness.store import LatencyResult


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _workload(pool: VariantPool, config: GateConfig, variant: str, shape: Shape):
    """The engine, its interleaved baseline engine (None for the baseline itself), the inputs and
    the generate settings of one latency test."""
    baseline = None if variant == config.baseline else pool.engine(config.baseline, "perf")
    inputs = workloads.latency_inputs(pool.tokenizer("perf"), pool.specs["perf"].prefix, shape)
    return (pool.engine(variant, "perf"), baseline, inputs,
            workloads.latency_settings(config.new_tokens))


def measure(benchmark, pool: VariantPool, config: GateConfig, variant: str,
            shape: Shape) -> LatencyResult:
    engine, baseline, inputs, settings = _workload(pool, config, variant, shape)

    first_call_s = _timed(lambda: engine.generate(inputs, **settings))  # apart from steady state
    paired: list[float] = []

    def run_baseline_round():
        if baseline is not None:
            paired.append(_timed(lambda: baseline.generate(inputs, **settings)))

    warmup = config.profile.warmup_rounds
    benchmark.pedantic(engine.generate, args=(inputs,), kwargs=settings,
                       setup=run_baseline_round, rounds=config.rounds, warmup_rounds=warmup,
                       iterations=1)
    samples = list(benchmark.stats.stats.data)
    return LatencyResult(variant, shape.id, samples, first_call_s, engine.load_seconds,
                         paired_baseline_s=paired[warmup:])

