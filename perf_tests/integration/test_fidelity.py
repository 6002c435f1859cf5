"""The gate tests itself: planted regressions must fail it, unchanged runs must not.

Each try is a whole gate run in a fresh process, with a results folder (and so a history) of the
test's own, sharing the session's artifact cache (nothing is exported again).
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from perf_tests.harness.config import ROOT
from perf_tests.harness.regression import POOL_SIZE

pytestmark = pytest.mark.integration

TRIES = 5
LATENCY = ["perf_tests/gate/test_latency.py", "--perf-variants=onnx-int8",
           "--perf-shapes=b1-s16", "--perf-rounds=16"]
QUALITY = ["perf_tests/gate/test_quality.py", "-k", "bleu_ratio", "--perf-variants=onnx-int8"]
REGRESSED = re.compile(r"onnx-int8 \[b1-s16\] latency regressed: best round [\d.]+ ms vs [\d.]+ ms "
                       r"in the last 5 runs[^(]*; both windows \(factor (\d\.\d+), limit 1\.[12]0\), "
                       r"Mann-Whitney U p=(0\.\d+)")
LATENCY_ROW = re.compile(r"^onnx-int8 latency b1-s16 .*$", re.MULTILINE)
SECOND_WINDOW = re.compile(r"^onnx-int8 \[b1-s16\]: second window .*$", re.MULTILINE)
MACHINE = re.compile(r"^onnx-int8 latency b1-s16 .* \+\d+\.\d%  ok$", re.MULTILINE)  # drift shown
PASSED_CHECK = re.compile(r"^regression check: (\d+ ok, 0 regressed|no baseline yet)", re.MULTILINE)


@pytest.fixture
def gate_run(gate):
    def run(results, *args):
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                   f"--perf-cache-dir={gate.config.cache_dir}", f"--perf-results-dir={results}",
                   f"--perf-threads={gate.config.threads}", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)

    return run


def _row(output: str) -> str:
    """The run's comparison row for onnx-int8, and its second window's line if it had one."""
    found = LATENCY_ROW.search(output)
    if not found:
        return output[-3000:]
    second = SECOND_WINDOW.search(output)
    return found[0] + (f"\n    {second[0]}" if second else "")


@pytest.mark.skipif(os.environ.get("PERF_FIDELITY") == "0",
                    reason="PERF_FIDELITY=0: the 25 gate runs (7 to 14 min) were asked off")
def test_planted_slowdown_fails_unchanged_and_slow_machine_runs_pass(gate_run, tmp_path, record_property):
    history = tmp_path / "results"
    for _ in range(POOL_SIZE):  # the baseline pool: 5 unchanged runs
        pooled = gate_run(history, *LATENCY)
        assert "regression check:" in pooled.stdout, pooled.stdout[-3000:]
    false_alarms = []
    for _ in range(TRIES):  # A/A: each unchanged run against the 5 before it
        again = gate_run(history, *LATENCY)
        # the regression check only: the latency limit has a verdict of its own
        tripped = PASSED_CHECK.search(again.stdout) is None
        false_alarms.append(tripped)
        print(f"A/A {'TRIPPED' if tripped else 'ok'}: {_row(again.stdout)}")
    detections = []
    for attempt in range(TRIES):  # a 25 % slower onnx-int8 against the unplanted runs only
        planted = gate_run(_copy(history, tmp_path / f"planted-{attempt}"), *LATENCY,
                           "--perf-plant=onnx-int8:slowdown=0.25")
        caught = planted.returncode == 1 and REGRESSED.search(planted.stdout) is not None
        detections.append(caught)
        print(f"planted {'caught' if caught else 'MISSED'}: {_row(planted.stdout)}")
    slow_machine_alarms = []
    for attempt in range(TRIES):  # every variant 30 % slower: a slow machine, not a regression
        slow = gate_run(_copy(history, tmp_path / f"slow-machine-{attempt}"), *LATENCY,
                        "--perf-plant=all:slowdown=0.30")
        tripped = PASSED_CHECK.search(slow.stdout) is None
        unseen = MACHINE.search(slow.stdout) is None  # passed, but not for the machine's drift
        slow_machine_alarms.append(tripped or unseen)
        verdict = "TRIPPED" if tripped else "DRIFT NOT SEEN" if unseen else "ok"
        print(f"slow machine {verdict}: {_row(slow.stdout)}")
    rates = {"false_alarms": false_alarms, "detections": detections,
             "slow_machine_false_alarms": slow_machine_alarms}
    for name, tries in rates.items():
        record_property(name, f"{sum(tries)}/{TRIES}")
    print(f"A/A false alarms {sum(false_alarms)}/{TRIES}, planted 25% slowdown detected "
          f"{sum(detections)}/{TRIES}, 30% slower machine false alarms "
          f"{sum(slow_machine_alarms)}/{TRIES}")
    assert sum(false_alarms) == 0, f"{sum(false_alarms)} of {TRIES} unchanged runs tripped the check"
    assert sum(detections) == TRIES, f"the planted slowdown was caught in {sum(detections)} of {TRIES}"
    assert sum(slow_machine_alarms) == 0, (f"{sum(slow_machine_alarms)} of {TRIES} runs on a "
                                           "slower machine tripped the check")


def _copy(history, folder):
    """A copy of the unplanted history: a planted run must not become another try's baseline."""
    shutil.copytree(history, folder)
    return folder


def test_planted_quality_loss_fails_bleu_parity(gate_run, tmp_path):
    clean = gate_run(tmp_path / "clean", *QUALITY)
    assert clean.returncode == 0, clean.stdout[-3000:]
    planted = gate_run(tmp_path / "planted", *QUALITY, "--perf-plant=onnx-int8:noise=0.3")
    assert planted.returncode == 1, planted.stdout[-3000:]
    verdict = re.search(r"onnx-int8 vs pytorch-fp32 \[\w+/\w+\] BLEU ratio 0\.\d+ < min 0\.99 .*",
                        planted.stdout)
    assert verdict, planted.stdout[-3000:]
    print(f"planted noise 0.3: {verdict[0]}")
