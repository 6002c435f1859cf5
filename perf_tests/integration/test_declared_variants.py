"""Variants declared without code: a folder written by optimum-cli runs through the gate and is
judged, and a team's recipe builds. Both are declared in one run of ``python -m pytest
perf_tests/gate -m gate`` in a subprocess, as a user would run it, on the embedded tiny model with
one short shape and the test set's first 100 sentences, sharing the session's artifact cache (the
tiny model's export is made once); each test reads what it asserts from that run. One run, not
one per test: a run's imports and its baseline's quality take 10 s or more. The gate's folder is
named so that the harness's own tests (which import torch and ruptures, 5 s) are not collected."""

import json
from pathlib import Path

import pytest

from perf_tests.harness.child_run import run_pytest
from perf_tests.integration.background import BackgroundRuns, background_run

pytestmark = pytest.mark.integration

LIMITS = """
[default.latency.cli-int8-vs-pytorch-fp32]
max = 2.0   # the tiny model: ONNX Runtime's per-call overhead is a large share of a call
[default.disk.cli-int8-vs-pytorch-fp32]
max = 0.6
[default.bleu.cli-int8-vs-pytorch-fp32]
min = 0.9
[default.bleu.int8-per-channel-vs-pytorch-fp32]
min = 0.9
"""

RECIPE = {"quantize": "avx2", "per_channel": True}


def run_gate(folder: Path, cache: Path, declarations: str, limits: str, variants: str):
    (folder / "variants.toml").write_text(declarations)
    (folder / "limits.toml").write_text(limits)
    done = run_pytest(
        "perf_tests/gate", "-m", "gate", "-q",
        "-k", "not peak_memory",  # what is asserted here needs two memory probes, not three
        "--perf-model=t5-tiny-enfr", f"--perf-variants={variants}",
        f"--perf-variants-file={folder / 'variants.toml'}",
        f"--perf-limits={folder / 'limits.toml'}", "--perf-shapes=b1-s16",
        "--perf-rounds=3", "--perf-threads=1", "--perf-sentences=100",
        results=folder / "results", cache=cache)
    summary = folder / "results" / "latest" / "summary.json"
    return done, json.loads(summary.read_text()) if summary.is_file() else None


@background_run("cli_int8")
def declared_run(runs: BackgroundRuns) -> dict:
    """One gate run of both declared variants: what optimum-cli wrote, and a recipe of a team's."""
    folder = runs.result("cli_int8")
    declarations = ('[pytorch-fp32]\nengine = "pytorch"\n\n'
                    f'[cli-int8]\nengine = "onnxruntime"\nfolder = "{folder}"\n\n'
                    '[int8-per-channel]\nengine = "onnxruntime"\n'
                    'recipe = { quantize = "avx2", per_channel = true }\n')
    done, summary = run_gate(runs.mktemp("declared"), runs.gate.config.cache_dir,
                             declarations, LIMITS, "cli-int8,int8-per-channel")
    # The latency verdict is judged but not asserted: 3 rounds of the tiny model on a shared
    # machine may land on either side of any bound. Size and BLEU do not depend on timing.
    assert done.returncode in (0, 1) and summary, (done.stdout + done.stderr)[-3000:]
    failed_tests = [line for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    assert all("test_latency" in line for line in failed_tests), failed_tests
    return summary


def test_folder_written_by_optimum_cli_is_judged(declared_run, gate, cli_int8):
    summary = declared_run
    judged = {v["message"].split("]")[1].split()[0]: v["passed"] for v in summary["verdicts"]
              if v["message"].startswith("cli-int8 ")}
    assert set(judged) >= {"median", "size", "BLEU"}, judged
    failed = [v["message"] for v in summary["verdicts"]
              if not v["passed"] and " median latency ratio " not in v["message"]]
    assert not failed, failed
    loaded = summary["variants"]["cli-int8"]
    assert loaded["declaration"]["folder"] == str(cli_int8)
    assert loaded["disk_mb"] < summary["variants"]["pytorch-fp32"]["disk_mb"]
    assert not list(gate.config.cache_dir.glob("cli-int8-*")), "a declared folder was built"


def test_a_teams_own_recipe_builds_and_runs(declared_run, gate):
    summary = declared_run
    name = f"int8-per-channel-{summary['models']['perf']['name']}"
    artifacts = summary["artifacts"]
    assert name in artifacts["built"] + artifacts["reused"], artifacts  # built, or by a run before
    records = [json.loads((folder / "artifact.json").read_text())
               for folder in gate.config.cache_dir.glob(f"{name}-*")]
    assert records and all(record["parts"]["recipe"] == RECIPE for record in records), records
    assert summary["variants"]["int8-per-channel"]["quality"]["sentences"] == 100
    assert any(v["passed"] and v["message"].startswith("int8-per-channel vs pytorch-fp32")
               and " BLEU ratio " in v["message"] for v in summary["verdicts"])
