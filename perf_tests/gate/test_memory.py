"""Peak memory and size on disk, each variant in a fresh process; ratios judged per pair."""

import pytest

pytestmark = pytest.mark.gate


def test_peak_memory(gate, variant):
    gate.skip_unrunnable(variant)
    memory = gate.store.memory(variant)
    assert memory["peak_above_baseline_mb"] > 0, f"{variant}: no memory above baseline measured"
    assert memory["disk_mb"] > 0, f"{variant}: loaded no file from disk"


@pytest.mark.judges("peak_memory")
def test_peak_memory_ratio(gate, limit):
    gate.judge_pair(limit, lambda variant: gate.store.memory(variant)["peak_above_baseline_mb"])


@pytest.mark.judges("disk")
def test_disk_ratio(gate, limit):
    gate.judge_pair(limit, lambda variant: gate.store.memory(variant)["disk_mb"])
