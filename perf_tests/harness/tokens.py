"""Per-token figures: where a generate() call's time goes, for every engine alike.

Measured apart from the judged latency workload (its own calls, after it), on the same inputs
and settings: greedy with exactly ``new_tokens`` new tokens. Each call carries a step clock
(``engines.StepClock``) that the engine ticks after every decoding step, so

- time to first token: from the call to the first tick (encoder, plus the first decoder step);
- per-token time: the median gap between later ticks (one decoder step with its cache);
- tokens per second: batch x new tokens / the median call (what a user sees, end to end);
- encoder time: the encoder alone, where the engine has a call for it (CTranslate2's Python
  API has none: None). An engine whose whole loop is one native call (ORT's BeamSearch graph)
  reports no step: its first-token and per-token times are None, tokens per second stays.

The clock costs one Python call per step, which is why the judged latency rounds run without it.
The full profile adds a sweep over batch 1/4/8/16 x source 16/64/128 with the same figures.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from perf_tests.harness.config import Shape
from perf_tests.harness.engines import StepClock

SWEEP_BATCHES = (1, 4, 8, 16)
SWEEP_SOURCES = (16, 64, 128)
SWEEP_SHAPES = tuple(Shape(b, s) for s in SWEEP_SOURCES for b in SWEEP_BATCHES)


@dataclass(frozen=True)
class TokenTiming:
    variant: str
    shape: Shape
    calls: int
    new_tokens: int
    call_ms: float
    first_token_ms: float | None  # None: the engine reports no decoding step (one native call)
    per_token_ms: float | None
    encoder_ms: float | None

    @property
    def tokens_per_s(self) -> float:
        return self.shape.batch * self.new_tokens / (self.call_ms / 1000)

    def as_dict(self) -> dict:
        return {"calls": self.calls, "new_tokens": self.new_tokens,
                "call_ms": round(self.call_ms, 2), "first_token_ms": _round(self.first_token_ms, 2),
                "per_token_ms": _round(self.per_token_ms, 3),
                "tokens_per_s": round(self.tokens_per_s, 1),
                "encoder_ms": _round(self.encoder_ms, 2)}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _ms(seconds: float) -> float:
    return seconds * 1000


def _encoder_ms(engine, inputs: dict, calls: int) -> float | None:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        if not engine.encode(inputs):
            return None
        samples.append(time.perf_counter() - started)
    return _ms(statistics.median(samples))


def measure(engine, inputs: dict, settings: dict, shape: Shape, calls: int,
            warm: bool = False) -> TokenTiming:
    """``calls`` timed calls, after one untimed warm-up call unless the engine is ``warm``
    (it has just run the judged rounds on the same inputs)."""
    if not warm:
        engine.generate(inputs, **settings)
    call_s, first_s, gaps = [], [], []
    for _ in range(calls):
        clock = StepClock() if engine.steps_reported else None
        started = time.perf_counter()
        engine.generate(inputs, clock=clock, **settings)
        call_s.append(time.perf_counter() - started)
        if clock is None:
            continue
        if not clock.ticks:
            raise RuntimeError(f"{engine.variant}: the engine reported no decoding step")
        first_s.append(clock.ticks[0] - clock.started)
        gaps += [later - earlier for earlier, later in zip(clock.ticks, clock.ticks[1:])]
    return TokenTiming(engine.variant, shape, calls, settings["max_new_tokens"],
                       _ms(statistics.median(call_s)),
                       _ms(statistics.median(first_s)) if first_s else None,
                       _ms(statistics.median(gaps)) if gaps else None,
                       _encoder_ms(engine, inputs, calls))
