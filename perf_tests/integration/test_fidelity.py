"""The gate tests itself on a planted quality loss: deterministic, so it runs by default.

The latency trials, whose outcome depends on the machine, live in perf_tests/fidelity/ (`tox -e
fidelity`); their rules are tested on recorded histories in perf_tests/unit/test_fidelity_replay.py.
Each try is a whole gate run in a fresh process with a results folder of its own, sharing the
session's artifact cache (nothing is exported again).
"""

import re
import subprocess

import pytest

from perf_tests.harness.child_run import run_pytest
from perf_tests.integration.background import BackgroundRuns, background_run

pytestmark = pytest.mark.integration

QUALITY = ["perf_tests/gate/test_quality.py", "-k", "bleu_ratio", "--perf-variants=onnx-int8",
           "--perf-sentences=100"]


@background_run()
def planted_quality_run(runs: BackgroundRuns) -> subprocess.CompletedProcess:
    """A gate run of the quality test with noise planted in onnx-int8's weights. One thread: the
    verdict does not depend on timing, and the run shares the CPUs with others (background.py)."""
    results = runs.mktemp("planted") / "results"
    return run_pytest("-q", "--perf-threads=1", *QUALITY, "--perf-plant=onnx-int8:noise=0.3",
                      results=results, cache=runs.gate.config.cache_dir)


def test_planted_quality_loss_fails_bleu_parity(planted_quality_run):
    """No clean run beside it: the gate's own test_bleu_ratio[onnx-int8-vs-pytorch-fp32] judges
    the unplanted variant, and the verdict asserted here names the plant's figure."""
    planted = planted_quality_run
    assert planted.returncode == 1, planted.stdout[-3000:]
    verdict = re.search(r"onnx-int8 vs pytorch-fp32 \[\w+/\w+\] BLEU ratio 0\.\d+ < min 0\.99 .*",
                        planted.stdout)
    assert verdict, planted.stdout[-3000:]
    assert "perf-gate summary" in planted.stdout, planted.stdout[-3000:]
    summary = planted.stdout[planted.stdout.index("perf-gate summary"):]  # closes the output
    assert re.search(r"verdicts: \d+ passed, 1 failed\n  FAILED onnx-int8 vs pytorch-fp32 .* BLEU",
                     summary), summary[-3000:]
    print(f"planted noise 0.3: {verdict[0]}")
