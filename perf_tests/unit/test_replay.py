"""The replay tool, on a synthetic history of steady runs (no model is built)."""

import json
import random

import pytest

from perf_tests.harness import replay

pytestmark = pytest.mark.unit


def write_history(folder, runs, rng, slow_runs=()):
    """Steady runs of onnx-int8 (with its interleaved rounds) and pytorch-fp32; in ``slow_runs``
    the whole machine is 35 % slower."""
    def rounds(median, machine):
        return [median * machine * (1 + rng.uniform(0, 0.05)) for _ in range(16)]

    for number in range(1, runs + 1):
        machine = 1.35 if number in slow_runs else 1.0
        common = {"shape": "b1-s16", "threads": 2, "new_tokens": 32}
        benches = [{"extra_info": {"variant": "onnx-int8", "paired_baseline_s": rounds(0.300, machine),
                                   **common}, "stats": {"data": rounds(0.120, machine)}},
                   {"extra_info": {"variant": "pytorch-fp32", **common},
                    "stats": {"data": rounds(0.300, machine)}}]
        path = folder / "machine" / f"{number:04d}_abc_2026-11-24T10:{number:02d}:00.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"datetime": f"2026-11-24T10:{number:02d}:00",
                                    "benchmarks": benches, "perf_gate": {"run_id": str(number)}}))


def test_steady_runs_raise_no_alarm_and_a_planted_slowdown_is_caught(tmp_path, capsys):
    write_history(tmp_path, 9, random.Random(1))
    assert replay.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "A/A false alarms 0/4, planted 25% slowdown caught 4/4" in out
    assert out.count("REGRESSED") == 4


def test_a_run_on_a_slow_machine_is_no_false_alarm(tmp_path, capsys):
    write_history(tmp_path, 9, random.Random(3), slow_runs={8})
    assert replay.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    slow = next(line for line in out.splitlines() if line.startswith("#0008"))
    assert "A/A best x1.3" in slow and "machine x1.3" in slow
    assert "A/A false alarms 0/4, planted 25% slowdown caught 4/4" in out


def test_too_short_or_missing_history_is_one_line(tmp_path, capsys):
    write_history(tmp_path, 3, random.Random(2))
    assert replay.main([str(tmp_path)]) == 2
    assert "fewer than 6 comparable runs of onnx-int8 [b1-s16]" in capsys.readouterr().err
    assert replay.main([str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
