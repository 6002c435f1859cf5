"""Peak memory and size on disk, each variant in a fresh process; ratios judged per pair."""

import pytest

from perf_tests.harness.judge import judge

pytestmark = pytest.mark.gate


def test_peak_memory(gate, variant):
    reason = gate.pool.skip_reason(variant)
    if reason:
        pytest.skip(reason)
    memory = gate.store.memory(variant)
    assert memory["peak_above_baseline_mb"] > 0, f"{variant}: no memory above baseline measured"
    assert memory["disk_mb"] > 0, f"{variant}: loaded no file from disk"


@pytest.mark.judges("peak_memory")
def test_peak_memory_ratio(gate, limit):
    _judge_memory(gate, limit, "peak_above_baseline_mb")


@pytest.mark.judges("disk")
def test_disk_ratio(gate, limit):
    _judge_memory(gate, limit, "disk_mb")


def _judge_memory(gate, limit, key):
    reason = gate.pool.skip_reason(limit.candidate)
    if reason:
        pytest.skip(reason)
    candidate = gate.store.memory(limit.candidate)[key]
    baseline = gate.store.memory(limit.baseline)[key]
    gate.check(judge(limit, candidate / baseline, candidate, baseline, gate.config.arch_preset))
