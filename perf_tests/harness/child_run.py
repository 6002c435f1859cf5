"""``python -m pytest`` in a fresh process, as the trials, the recorder and the integration tests
start the gate: one place says how.

A child runs from the repository root with this interpreter, with pytest's cache provider off
(a child would write its own last-failed list over the user's in the checkout's .pytest_cache,
which ``--lf`` reads, and children run side by side), and with its output captured for the
caller to read. A timeout stops a child that hangs
so its caller fails with the child's output instead of holding up the night.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from perf_tests.harness.config import ROOT

TIMEOUT_S = 900  # seconds: far above what any of these children takes, even in a slow spell


def run_pytest(*args: str, results: Path | None = None, cache: Path | None = None,
               timeout: float | None = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``python -m pytest`` with ``args`` to its end and return what it printed and its exit
    code; ``results`` and ``cache`` become the gate's folder options when given."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    if cache is not None:
        command.append(f"--perf-cache-dir={cache}")
    if results is not None:
        command.append(f"--perf-results-dir={results}")
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
