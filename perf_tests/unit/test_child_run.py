"""A child stopped at its timeout goes with every process it started, and says so."""

import os
import sys
import time

import pytest

from perf_tests.harness import child_run

pytestmark = pytest.mark.unit

# what a gate child does: start processes of its own (memory probes, a second builder), then hang
HANGING = """
import subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(helper.pid))
print("the child got this far", flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # killed, and not yet reaped by init: gone
        return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"


def test_a_child_stopped_at_its_timeout_takes_what_it_started_along(tmp_path):
    pid_file = tmp_path / "helper.pid"
    started = time.monotonic()
    done = child_run.run([sys.executable, "-c", HANGING, str(pid_file)], timeout=5)
    # the child alone killed, its helper would hold the output pipe open for its 120 s
    assert time.monotonic() - started < 60
    assert done.returncode == -9 and done.stdout == "the child got this far\n"
    assert done.stderr.endswith("child_run: stopped after 5 s, with every process it started\n")
    helper = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(helper), "a process the child started outlived it"
