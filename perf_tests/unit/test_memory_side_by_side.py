"""Memory probes side by side: every wanted variant measured on the first miss, and a probe
that fails is reported by its own variant's test, never by another's."""

import json
import subprocess
from types import SimpleNamespace

import pytest

from perf_tests.harness import store
from perf_tests.harness.config import Shape

pytestmark = pytest.mark.unit

VARIANTS = ("pytorch-fp32", "onnx-int8", "ct2-int8")


def fake_store(monkeypatch, failing=()):
    probed = []

    def probe(request):
        name = request["declaration"]["name"]
        probed.append(name)
        if name in failing:
            return subprocess.CompletedProcess([], 1, "", "Traceback...\nOSError: no such file")
        return subprocess.CompletedProcess([], 0, json.dumps({"variant": name}) + "\n", "")

    monkeypatch.setattr(store, "run_memory_probe", probe)
    config = SimpleNamespace(variants=VARIANTS, shapes=(Shape.parse("b1-s16"),), threads=2,
                             new_tokens=32, profile=SimpleNamespace(memory_calls=2))
    pool = SimpleNamespace(skip_reason=lambda v: "", artifact=lambda v, role: f"/cache/{v}",
                           spec=lambda v: SimpleNamespace(as_dict=lambda: {"name": v}),
                           specs={"perf": SimpleNamespace(prefix="")})
    return store.ResultStore(config, pool, frozenset({"onnx-int8", "pytorch-fp32"})), probed


def test_the_first_miss_measures_every_wanted_variant_once(monkeypatch):
    results, probed = fake_store(monkeypatch)
    assert results.memory("onnx-int8") == {"variant": "onnx-int8"}
    assert sorted(probed) == ["onnx-int8", "pytorch-fp32"]  # on the first miss; ct2-int8 unwanted
    assert results.memory("pytorch-fp32") == {"variant": "pytorch-fp32"}
    assert sorted(probed) == ["onnx-int8", "pytorch-fp32"]  # and never again


def test_a_failed_probe_fails_its_own_variant_only(monkeypatch):
    results, probed = fake_store(monkeypatch, failing={"pytorch-fp32"})
    assert results.memory("onnx-int8") == {"variant": "onnx-int8"}
    with pytest.raises(store.MeasurementError,
                       match="memory probe for pytorch-fp32 exited 1: OSError: no such file"):
        results.memory("pytorch-fp32")
    assert probed.count("pytorch-fp32") == 2  # asked again by its own test


def test_a_probe_that_times_out_or_cannot_start_is_a_failed_probe_not_an_exception(
        monkeypatch):
    """A probe runs through child_run, which stops one at its timeout with every process it
    started (test_child_run.py); what comes back is a failed probe with no figures."""
    asked = []

    def stopped(command, timeout):
        asked.append(timeout)
        return subprocess.CompletedProcess(command, -9, "", "\nchild_run: stopped after 900 s, "
                                           "with every process it started\n")

    monkeypatch.setattr(store.child_run, "run", stopped)
    probe = store.run_memory_probe({"declaration": {"name": "ct2-int8"}})
    assert asked == [store.PROBE_TIMEOUT_S] and store.probe_figures(probe) is None

    def missing(command, timeout):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(store.child_run, "run", missing)
    probe = store.run_memory_probe({"declaration": {"name": "ct2-int8"}})
    assert probe.returncode == -1 and probe.stderr.startswith("could not start (")


def test_a_probe_that_prints_no_figures_fails_its_own_variant_only(monkeypatch):
    results, _ = fake_store(monkeypatch)

    def garbled(request):
        name = request["declaration"]["name"]
        out = "Killed\n" if name == "pytorch-fp32" else json.dumps({"variant": name}) + "\n"
        return subprocess.CompletedProcess([], 0, out, "")

    monkeypatch.setattr(store, "run_memory_probe", garbled)
    assert results.memory("onnx-int8") == {"variant": "onnx-int8"}
    with pytest.raises(store.MeasurementError,
                       match="memory probe for pytorch-fp32 exited 0: no figures printed"):
        results.memory("pytorch-fp32")
