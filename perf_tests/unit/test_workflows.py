"""The workflows' cache of built variants: saved by the nightly gate alone, under a key that names
the CPU's preset and the run, and restored by every other job from the newest of that preset."""

import pytest

from perf_tests.harness.config import ROOT

pytestmark = pytest.mark.unit
yaml = pytest.importorskip("yaml")  # a dependency of transformers, not of this suite's own code

WORKFLOWS = ROOT / ".github" / "workflows"


def cache_steps() -> dict[tuple[str, str], list[dict]]:
    """(workflow file, job) -> the steps that restore or save the built variants' cache."""
    found = {}
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job, spec in yaml.safe_load(path.read_text())["jobs"].items():
            steps = [step for step in spec["steps"] if step.get("uses", "").startswith(
                "actions/cache") and ".perf-cache" in step.get("with", {}).get("path", "")]
            if steps:
                found[(path.name, job)] = steps
    return found


def test_only_the_nightly_gate_saves_the_built_variants():
    """A job that builds some of the variants (the fidelity trial, a pull request's smoke run)
    would save a partial cache that every later run restores for a whole one."""
    savers = {where for where, steps in cache_steps().items()
              if any(not step["uses"].startswith("actions/cache/restore@") for step in steps)}
    assert savers == {("nightly.yml", "gate")}
    assert ("nightly.yml", "fidelity") in cache_steps()


def test_the_key_names_the_preset_and_is_saved_as_restored():
    """An artifact's key holds the preset and the libraries' versions: the cache is kept per
    preset and saved anew each night, under the key the restore computed before the run left
    __pycache__ folders under the hashed sources."""
    for (workflow, job), steps in cache_steps().items():
        restore = steps[0]["with"]
        assert "steps.arch.outputs.cpu" in restore["key"], (workflow, job)
        assert restore["key"].startswith(restore["restore-keys"]), (workflow, job)
    gate = cache_steps()[("nightly.yml", "gate")]
    assert "github.run_id" in gate[0]["with"]["key"]
    assert gate[1]["with"]["key"] == "${{ steps." + gate[0]["id"] + ".outputs.cache-primary-key }}"
