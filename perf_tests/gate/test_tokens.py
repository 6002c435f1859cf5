"""Per-token figures of every variant: reported (summary, report, plot), not judged."""

import pytest

from perf_tests.harness import tokens

pytestmark = pytest.mark.gate


def test_token_timing(gate, variant, shape):
    gate.skip_unrunnable(variant)
    timing = gate.store.token_timing(variant, shape)
    assert timing.tokens_per_s > 0, timing
    if timing.first_token_ms is not None:  # None where the engine reports no decoding step
        assert 0 < timing.first_token_ms < timing.call_ms and timing.per_token_ms > 0, timing


def test_sweep(gate, variant):
    """Batch 1/4/8/16 x source 16/64/128, drawn as latency and tokens per second vs batch."""
    if gate.config.profile.name != "full":
        pytest.skip("the batch x source sweep runs with --perf-profile=full")
    gate.skip_unrunnable(variant)
    for shape in tokens.SWEEP_SHAPES:
        timing = gate.store.token_timing(variant, shape, sweep=True)
        assert timing.tokens_per_s > 0, timing
