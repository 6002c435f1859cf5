"""What several integration tests read: optimum-cli's export of the embedded tiny model, made once.

optimum-cli runs in a subprocess, as the article's recipe runs it; exporting takes about 5 s and
quantizing 2 s on a 2-core machine, so the tests that need either share one session's folders.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from perf_tests.harness import models
from perf_tests.harness.engines.onnxruntime import EXPORT_TASK

CLI = [sys.executable, "-m", "optimum.commands.optimum_cli"]


@pytest.fixture(scope="session")
def cli_export(tmp_path_factory) -> Path:
    """What `optimum-cli export onnx` writes for the tiny model (encoder and merged decoder)."""
    out = tmp_path_factory.mktemp("optimum-cli") / "export"
    subprocess.run([*CLI, "export", "onnx", "--model", str(models.TINY_DIR), "--task",
                    EXPORT_TASK, str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def cli_int8(cli_export: Path) -> Path:
    """The article's recipe on that export: `optimum-cli onnxruntime quantize --avx2`."""
    out = cli_export.parent / "int8"
    subprocess.run([*CLI, "onnxruntime", "quantize", "--onnx_model", str(cli_export), "--avx2",
                    "-o", str(out)], check=True, capture_output=True)
    return out
