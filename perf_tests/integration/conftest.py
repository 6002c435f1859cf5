"""What several integration tests read: optimum-cli's export of the embedded tiny model, made once.

optimum-cli runs in a subprocess, as the article's recipe runs it; exporting takes about 5 s and
quantizing 2 s on a 2-core machine (each more again to import optimum), so the tests that need
either share one session's folders, made in the background (background.py).
"""

import sys
from pathlib import Path

from perf_tests.harness import child_run, models
from perf_tests.harness.engines.onnxruntime import EXPORT_TASK
from perf_tests.integration.background import BackgroundRuns, background_run

CLI = [sys.executable, "-m", "optimum.commands.optimum_cli"]
CLI_TIMEOUT_S = 300  # each takes 5-15 s here, imports included


def optimum_cli(*args: str) -> None:
    """One optimum-cli command; one that fails or hangs fails the tests that read it with the
    end of what it printed (its own reason), not only its exit status."""
    done = child_run.run([*CLI, *args], CLI_TIMEOUT_S)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"optimum-cli {args[0]} {args[1]} exited {done.returncode}:\n{tail}")


@background_run()
def cli_export(runs: BackgroundRuns) -> Path:
    """What `optimum-cli export onnx` writes for the tiny model (encoder and merged decoder)."""
    out = runs.mktemp("optimum-cli") / "export"
    optimum_cli("export", "onnx", "--model", str(models.TINY_DIR), "--task", EXPORT_TASK,
                str(out))
    return out


@background_run("cli_export")
def cli_int8(runs: BackgroundRuns) -> Path:
    """The article's recipe on that export: `optimum-cli onnxruntime quantize --avx2`."""
    export = runs.result("cli_export")
    out = export.parent / "int8"
    optimum_cli("onnxruntime", "quantize", "--onnx_model", str(export), "--avx2", "-o",
                str(out))
    return out
