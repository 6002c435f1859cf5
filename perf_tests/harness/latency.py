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


class MachineShare:
    """What the rest of the machine did while a test's rounds ran: the share of all CPUs' time
    that other processes used (busy time from /proc/stat less this process's own), and the
    share the hypervisor gave to other guests (steal). A neighbour slows some engines far more
    than others (PyTorch's many short OpenMP regions), so the report says when one was there."""

    def __enter__(self) -> MachineShare:
        import psutil

        self._process = psutil.Process()
        self._start = (time.perf_counter(), psutil.cpu_times(), self._process.cpu_times())
        self.others = self.steal = 0.0
        return self

    def __exit__(self, *exc) -> None:
        import psutil

        wall = time.perf_counter() - self._start[0]
        machine, own = psutil.cpu_times(), self._process.cpu_times()
        capacity = wall * (psutil.cpu_count() or 1)
        if capacity <= 0:
            return
        busy = sum(getattr(machine, f) - getattr(self._start[1], f) for f in BUSY_FIELDS)
        mine = (own.user - self._start[2].user) + (own.system - self._start[2].system)
        self.others = min(max(busy - mine, 0.0) / capacity, 1.0)
        self.steal = max(getattr(machine, "steal", 0.0) - getattr(self._start[1], "steal", 0.0),
                         0.0) / capacity


# the CPU time /proc/stat counts as work (guest time is inside user); idle and iowait are not
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")


TIMER = time.perf_counter  # pytest-benchmark's default timer: the candidate rounds' too
TIMER_NAME = f"{TIMER.__module__}.{TIMER.__name__}"  # as --benchmark-timer names it


def _timed(call) -> float:
    started = TIMER()
    call()
    return TIMER() - started


def _workload(pool: VariantPool, config: GateConfig, variant: str, shape: Shape):
    """The engine, its interleaved baseline engine (None for the baseline itself), the inputs and
    the generate settings of one latency test."""
    baseline = None if variant == config.baseline else pool.engine(config.baseline, "perf")
    inputs = workloads.latency_inputs(pool.tokenizer("perf"), pool.specs["perf"].prefix, shape)
    return (pool.engine(variant, "perf", timed=True), baseline, inputs,
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
    with MachineShare() as share:
        benchmark.pedantic(engine.generate, args=(inputs,), kwargs=settings,
                           setup=run_baseline_round, rounds=config.rounds,
                           warmup_rounds=warmup, iterations=1)
    samples = list(benchmark.stats.stats.data)
    # one baseline round before each timed round; --benchmark-cprofile calls the setup once
    # more after them, for the profile, with no timed round beside it
    paired = paired[warmup:warmup + len(samples)]
    return LatencyResult(variant, shape.id, samples, first_call_s, engine.load_seconds,
                         paired_baseline_s=paired, others_cpu=share.others, steal=share.steal)


def interleaved(pool: VariantPool, config: GateConfig, variant: str,
                shape: Shape) -> LatencyResult:
    """The same interleaved rounds as ``measure`` (B C B C ...), timed here rather than by
    pytest-benchmark: for the ratio figures asked for without their latency test
    (``-k latency_ratio``, the README's compare recipe)."""
    engine, baseline, inputs, settings = _workload(pool, config, variant, shape)
    first_call_s = _timed(lambda: engine.generate(inputs, **settings))
    samples: list[float] = []
    paired: list[float] = []
    with MachineShare() as share:
        for number in range(config.profile.warmup_rounds + config.rounds):
            partner = (_timed(lambda: baseline.generate(inputs, **settings)) if baseline
                       else None)
            took = _timed(lambda: engine.generate(inputs, **settings))
            if number >= config.profile.warmup_rounds:
                samples.append(took)
                if partner is not None:
                    paired.append(partner)
    return LatencyResult(variant, shape.id, samples, first_call_s, engine.load_seconds, paired,
                         others_cpu=share.others, steal=share.steal)


class RoundClock:
    """A timer for pytest-benchmark that reads figures instead of time: a round lasts whatever
    ``advance`` moved it by, so a figure that is no time (a candidate's round over the baseline
    round interleaved with it) is stored, shown and compared by pytest-benchmark as a timing.

    pytest-benchmark has no public way to store values measured elsewhere; a timer is public
    (``@pytest.mark.benchmark(timer=...)``), and timing the rounds again would double the cost."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, value: float) -> None:
        self.now += value


def record_figures(benchmark, clock: RoundClock, values: list[float]) -> None:
    """One pytest-benchmark round per value; the benchmark must be marked with ``timer=clock``."""
    pending = iter(values)
    # a call after the rounds (--benchmark-cprofile profiles one more) records nothing
    benchmark.pedantic(lambda: clock.advance(next(pending, 0.0)), rounds=len(values),
                       iterations=1)
