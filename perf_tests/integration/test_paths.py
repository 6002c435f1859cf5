"""Path options in both forms, for folders anywhere on disk, from the repository root.

``--perf-model /elsewhere/model`` (space form) used to stop with "unrecognized arguments": pytest's
early pass took the folder for a test path (see perf_tests/harness/early_args.py). Each test reads
a run of ``python -m pytest --co`` in a subprocess, as a user would run it (in the background:
background.py): it collects the gate and builds nothing.
"""

import json
import shutil
import subprocess
from importlib import metadata

import pytest

from perf_tests.harness import models
from perf_tests.harness.child_run import run_pytest
from perf_tests.harness.config import ROOT
from perf_tests.integration.background import BackgroundRuns, background_run

pytestmark = pytest.mark.integration

ENTRY_POINT = "perf_gate_early_args"
installed = any(ep.name == ENTRY_POINT for ep in metadata.entry_points(group="pytest11"))


def elsewhere(runs: BackgroundRuns, name: str) -> dict:
    """A model folder, a limits file and a pinned history file outside the repository."""
    folder = runs.mktemp(name)
    model = shutil.copytree(models.TINY_DIR, folder / "models" / "my-t5")
    limits = shutil.copy(ROOT / "perf_tests" / "limits.toml", folder / "team-limits.toml")
    pinned = folder / "pinned-run.json"
    pinned.write_text(json.dumps({"benchmarks": []}))
    return {"model": model, "limits": limits, "cache-dir": folder / "cache",
            "results-dir": folder / "results", "baseline": pinned}


def collect(options: list[str]) -> subprocess.CompletedProcess:
    # The gate's folder is named: collecting every folder would import the harness's own tests
    # (torch, ruptures: 5 s) for nothing. A test path does not hide the bug: the early pass
    # still took a folder option's value for a second test path beside it.
    return run_pytest("--co", "perf_tests/gate", "-m", "gate", *options, timeout=300)


def assert_collected_with(done: subprocess.CompletedProcess, paths: dict) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert f"rootdir: {ROOT}" in output and "configfile: pyproject.toml" in output, output[:2000]
    assert f"latency/memory model {paths['model']}, quality model {paths['model']}" in output
    assert f"limits {paths['limits']}" in output and f"results {paths['results-dir']}" in output
    assert "<Function test_latency[onnx-int8-b1-s16]>" in output
    assert not paths["cache-dir"].exists(), "collecting built something"


@background_run()
def space_form_run(runs: BackgroundRuns) -> tuple[subprocess.CompletedProcess, dict]:
    """``--perf-model /elsewhere/my-t5``, and so on for each path option."""
    paths = elsewhere(runs, "space-form")
    options = [item for name, path in paths.items() for item in (f"--perf-{name}", str(path))]
    return collect(options), paths


@background_run()
def equals_form_run(runs: BackgroundRuns) -> tuple[subprocess.CompletedProcess, dict]:
    """``--perf-model=/elsewhere/my-t5``, and so on."""
    paths = elsewhere(runs, "equals-form")
    return collect([f"--perf-{name}={path}" for name, path in paths.items()]), paths


@pytest.mark.skipif(not installed, reason="the project is not installed (pip install -r "
                    "requirements.txt): its pytest11 entry point makes the space form work")
def test_space_form_with_folders_outside_the_repository(space_form_run):
    assert_collected_with(*space_form_run)


def test_equals_form_with_folders_outside_the_repository(equals_form_run):
    assert_collected_with(*equals_form_run)
