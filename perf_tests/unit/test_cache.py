"""The artifact cache: build once, reuse, and never expose a half-written artifact."""

import json
import os

import pytest

from perf_tests.harness.cache import MARKER, ArtifactCache, content_key

pytestmark = pytest.mark.unit


def write_weights(out):
    (out / "weights.bin").write_bytes(b"\x00" * 1024)
    return {"files": 1}


def test_builds_once_then_reuses(tmp_path):
    logged = []
    cache = ArtifactCache(tmp_path, log=logged.append)
    calls = []
    first = cache.get_or_build("onnx-int8", {"model": "m"}, lambda out: calls.append(out) or
                               write_weights(out))
    second = cache.get_or_build("onnx-int8", {"model": "m"}, lambda out: calls.append(out))
    assert first == second and len(calls) == 1
    assert json.loads((first / MARKER).read_text())["details"] == {"files": 1}
    assert cache.built == ["onnx-int8"] and cache.reused == ["onnx-int8"]
    assert "reusing onnx-int8" in logged[0] and "nothing rebuilt" in logged[0]


def test_key_changes_with_any_part(tmp_path):
    assert content_key({"a": 1, "versions": {"torch": "2.13"}}) != content_key(
        {"a": 1, "versions": {"torch": "2.14"}})
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})


def test_failed_build_leaves_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)

    def broken(out):
        (out / "half.onnx").write_bytes(b"partial")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("onnx-fp32", {"model": "m"}, broken)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != ".locks"]
    assert leftovers == []


def test_killed_build_is_cleaned_and_rebuilt(tmp_path):
    """A folder without its marker (a kill between writes) or a temp folder is never loaded."""
    cache = ArtifactCache(tmp_path)
    final = cache.folder("onnx-o3", {"model": "m"})
    final.mkdir()
    (final / "encoder_model.onnx").write_bytes(b"truncated")
    stale = tmp_path / f".tmp-{final.name}-99999"
    stale.mkdir()
    folder = cache.get_or_build("onnx-o3", {"model": "m"}, write_weights)
    assert folder == final and not (final / "encoder_model.onnx").exists()
    assert (final / MARKER).is_file() and not stale.exists()
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


def test_concurrent_runs_share_one_build(tmp_path):
    """Two processes asking for the same artifact: one builds, the other waits and reuses."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.map(_build_in_child, [str(tmp_path)] * 2)
    assert sorted(results) == ["built", "reused"]


def _build_in_child(root):
    import time

    cache = ArtifactCache(root, log=lambda line: None)
    cache.get_or_build("slow", {"k": 1}, lambda out: time.sleep(1.0) or write_weights(out))
    return "built" if cache.built else "reused"


def test_marker_is_written_last(tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path)
    seen = {}

    def build(out):
        write_weights(out)
        seen["marker_during_build"] = (out / MARKER).exists()

    cache.get_or_build("x", {}, build)
    assert seen["marker_during_build"] is False
    assert os.listdir(tmp_path / ".locks")
