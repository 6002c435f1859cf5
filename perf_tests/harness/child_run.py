"""``python -m pytest`` in a fresh process, as the trials, the recorder and the integration tests
start the gate: one place says how.

A child runs from the repository root with this interpreter, with pytest's cache provider off
(a child would write its own last-failed list over the user's in the checkout's .pytest_cache,
which ``--lf`` reads, and children run side by side), and with its output captured for the
caller to read. A child that hangs is stopped at the timeout, with every process it started (its
memory probes, its second builder: they would hold its output open and run on), and its caller
fails with the child's output instead of holding up the night. Children stay in this process's
group, so the terminal's Ctrl-C reaches them as it reaches this process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

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
    """``command`` from the repository root, its output captured."""
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(child)
            out, err = child.communicate()
            err += (f"\nchild_run: stopped after {timeout:g} s, with every process it "
                    "started\n")
        except BaseException:  # Ctrl-C or an error here: nothing it started outlives it
            _stop(child)
            raise
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _stop(child: subprocess.Popen) -> None:
    """Kill the child and every process below it, found before the child goes (after, they
    belong to init and can no longer be told from other processes)."""
    try:
        below = psutil.Process(child.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        below = []
    child.kill()
    for process in below:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass  # it ended meanwhile
