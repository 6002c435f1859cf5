"""``python -m pytest`` in a fresh process, as the trials, the recorder and the integration tests
start the gate: one place says how.

A child runs from the repository root with this interpreter, with pytest's cache provider off
(a child would write its own last-failed list over the user's in the checkout's .pytest_cache,
which ``--lf`` reads, and children run side by side), and with its output captured for the
caller to read. It runs in a session of its own, so that a timeout, or this process stopping
(Ctrl-C, an error), stops it with every process it started (its memory probes, its second
builder); a child that hangs is stopped at the timeout and its caller fails with the child's
output instead of holding up the night.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from perf_tests.harness.config import ROOT

TIMEOUT_S = 900  # seconds: far above what any of these children takes, even in a slow spell


def run_pytest(*args: str, results: Path | None = None, cache: Path | None = None,
               timeout: float | None = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``python -m pytest`` with ``args`` to its end and return what it printed and its exit
    code; ``results`` and ``cache`` become the gate's folder options when given. A child stopped
    at the timeout returns what it printed until then, and a last line that says so."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    if cache is not None:
        command.append(f"--perf-cache-dir={cache}")
    if results is not None:
        command.append(f"--perf-results-dir={results}")
    return run([*command, *args], timeout)


def run(command: list[str], timeout: float | None) -> subprocess.CompletedProcess:
    """``command`` from the repository root in a session of its own, its output captured."""
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(child)
            out, err = child.communicate()
            err += (f"\nchild_run: stopped after {timeout:g} s, with every process it "
                    "started\n")
        except BaseException:  # Ctrl-C here: in a session of its own, the child would go on
            _stop(child)
            raise
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _stop(child: subprocess.Popen) -> None:
    """Kill the child's whole process group (its session's), not the child alone."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended meanwhile
