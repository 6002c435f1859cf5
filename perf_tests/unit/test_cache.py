"""The artifact cache: build once, reuse, and never expose a half-written artifact."""

import json
import os
import time
from types import SimpleNamespace

import pytest

from perf_tests.harness import integrity
from perf_tests.harness.cache import MARKER, ArtifactCache, ArtifactError, content_key

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
    again = cache.get_or_build("onnx-int8", {"model": "m"}, lambda out: calls.append(out))
    # asked again in the same session (the export, by each ONNX recipe): built this session,
    # so not counted as reused, and not hashed again
    assert again == first and cache.reused == [] and cache.verified_bytes == 0
    later = ArtifactCache(tmp_path, log=logged.append)  # the next run
    second = later.get_or_build("onnx-int8", {"model": "m"}, lambda out: calls.append(out))
    assert first == second and len(calls) == 1
    assert json.loads((first / MARKER).read_text())["details"] == {"files": 1}
    assert cache.built == ["onnx-int8"] and later.reused == ["onnx-int8"]
    assert later.verified_bytes > 0
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


# ---------------------------------------------------------------- integrity

def write_model(out):
    (out / "model.onnx_data").write_bytes(bytes(range(256)) * 64)  # 16 KB of weights
    (out / "sub").mkdir()
    (out / "sub" / "config.json").write_text("{}")


def build_counting(cache, calls, name="onnx-int8"):
    return cache.get_or_build(name, {"model": "m"}, lambda out: calls.append(1) or write_model(out))


def test_manifest_records_size_and_hash_of_every_file(tmp_path):
    folder = build_counting(ArtifactCache(tmp_path, log=lambda line: None), [])
    files = json.loads((folder / MARKER).read_text())["integrity"]["files"]
    assert sorted(files) == ["model.onnx_data", "sub/config.json"]
    assert files["model.onnx_data"]["size"] == 16384
    assert files["model.onnx_data"][integrity.ALGORITHM] == integrity.file_hash(
        folder / "model.onnx_data")


@pytest.mark.parametrize("damage, problem", [
    (lambda path: _flip_byte(path, 4000), "model.onnx_data's content differs from its sha256 at build time"),
    (lambda path: os.truncate(path, 8000), "model.onnx_data has 8000 bytes, 16384 expected"),
    (lambda path: path.unlink(), "model.onnx_data is missing"),
])
def test_damaged_artifact_is_reported_in_one_line_and_rebuilt(tmp_path, damage, problem):
    logged, calls = [], []
    cache = ArtifactCache(tmp_path, log=logged.append)
    folder = build_counting(cache, calls)
    build_counting(cache, calls)  # wanted again by the run that built it: not verified
    damage(folder / "model.onnx_data")
    again = ArtifactCache(tmp_path, log=logged.append)
    assert build_counting(again, calls) == folder and len(calls) == 2
    assert again.rebuilt == ["onnx-int8"] and again.built == ["onnx-int8"]
    assert [line for line in logged if line.startswith("!")] == [
        f"! onnx-int8 (artifact {folder.name}) is damaged: {problem}: building it again"]
    assert (folder / "model.onnx_data").read_bytes() == bytes(range(256)) * 64
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    build_counting(again, calls)  # the rebuilt artifact passes
    assert len(calls) == 2


def test_flipped_byte_with_its_times_restored_is_still_found(tmp_path):
    """Setting mtime back (touch -d, rsync -t) changes ctime, which cannot be set back: a stamp
    taken and trusted before the damage no longer matches, and the file is hashed again."""
    folder = build_counting(ArtifactCache(tmp_path, log=lambda line: None), [])
    files = json.loads((folder / MARKER).read_text())["integrity"]["files"]
    later = time.time_ns() + 10**10  # reuses 10 s after the build, past the racy window
    assert integrity.check(folder, files, clock=lambda: later) == ("", 16386)  # stamps taken
    assert integrity.check(folder, files, clock=lambda: later + 1) == ("", 0)  # and trusted
    weights = folder / "model.onnx_data"
    before = weights.stat()
    _past_its_last_change(weights)
    _flip_byte(weights, 100)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    problem, hashed = integrity.check(folder, files, clock=lambda: later + 2)
    assert "content differs" in problem and hashed == 16384


def test_unchanged_files_are_not_hashed_again(tmp_path, monkeypatch):
    """Once a file's stamp is older than the racy window, a reuse only stats it."""
    cache = ArtifactCache(tmp_path, log=lambda line: None)
    folder = build_counting(cache, [])
    files = json.loads((folder / MARKER).read_text())["integrity"]["files"]
    later = time.time_ns() + 10**10  # as if this reuse came 10 s after the build
    assert integrity.check(folder, files, clock=lambda: later) == ("", 16386)
    assert integrity.check(folder, files, clock=lambda: later + 1) == ("", 0)
    _past_its_last_change(folder / "model.onnx_data")
    _flip_byte(folder / "model.onnx_data", 5)
    problem, hashed = integrity.check(folder, files, clock=lambda: later + 2)
    assert "content differs" in problem and hashed == 16384


def test_fresh_stamps_are_not_trusted(tmp_path):
    """A write in the same clock tick as the stamp could leave every time unchanged."""
    folder = build_counting(ArtifactCache(tmp_path, log=lambda line: None), [])
    files = json.loads((folder / MARKER).read_text())["integrity"]["files"]
    # a millisecond after the newest change, whatever the time the build and this test took
    now = max((folder / name).stat().st_ctime_ns for name in files) + 10**6
    assert integrity.check(folder, files, clock=lambda: now)[1] == 16386
    assert integrity.check(folder, files, clock=lambda: now)[1] == 16386


def test_artifact_without_hashes_is_rebuilt_once(tmp_path):
    logged, calls = [], []
    folder = build_counting(ArtifactCache(tmp_path, log=lambda line: None), calls)
    record = json.loads((folder / MARKER).read_text())
    del record["integrity"]  # as written before sizes and hashes were recorded
    (folder / MARKER).write_text(json.dumps(record))
    cache = ArtifactCache(tmp_path, log=logged.append)
    build_counting(cache, calls)
    build_counting(cache, calls)
    assert len(calls) == 2 and cache.rebuilt == ["onnx-int8"]
    assert logged[0] == (f"! onnx-int8 (artifact {folder.name}) was built before sizes and sha256 "
                         "hashes were recorded, so it cannot be verified: building it again")


@pytest.mark.parametrize("damage, problem", [
    (lambda record: [record], "has a damaged artifact.json"),
    (lambda record: {**record, "integrity": "sha256"}, "has a damaged artifact.json"),
    (lambda record: {**record, "integrity": {**record["integrity"], "files": ["model.onnx_data"]}},
     "has a damaged artifact.json (its record of the files)"),
    (lambda record: {**record, "integrity": {**record["integrity"], "files": {
        "model.onnx_data": {"sha256": "0" * 64}}}},
     "has a damaged artifact.json (its record of the files)"),
])
def test_a_damaged_build_record_is_one_line_and_a_rebuild(tmp_path, damage, problem):
    logged, calls = [], []
    folder = build_counting(ArtifactCache(tmp_path, log=lambda line: None), calls)
    (folder / MARKER).write_text(json.dumps(damage(json.loads((folder / MARKER).read_text()))))
    cache = ArtifactCache(tmp_path, log=logged.append)
    assert build_counting(cache, calls) == folder and len(calls) == 2
    assert logged[0] == f"! onnx-int8 (artifact {folder.name}) {problem}: building it again"
    assert cache.rebuilt == ["onnx-int8"]


@pytest.mark.parametrize("stamps", ["[]", '{"model.onnx_data": []}',
                                    '{"model.onnx_data": {"stamp": 5, "taken_ns": "soon"}}'])
def test_damaged_stamps_only_cost_a_hash(tmp_path, stamps):
    """The stamps say which files need no hash; stamps of another shape are not trusted."""
    folder = build_counting(ArtifactCache(tmp_path, log=lambda line: None), [])
    files = json.loads((folder / MARKER).read_text())["integrity"]["files"]
    (folder / integrity.STAMPS).write_text(stamps)
    later = time.time_ns() + 10**10
    assert integrity.check(folder, files, clock=lambda: later) == ("", 16386)
    assert integrity.check(folder, files, clock=lambda: later + 1) == ("", 0)  # stamped again


class FakeEngine:
    loaded_files = ()


def pool_with_flaky_load(tmp_path, monkeypatch, failures: int):
    from perf_tests.harness import variants
    from perf_tests.harness.config import build_config
    from perf_tests.harness.cpu import CpuInfo
    from perf_tests.harness.pool import VariantPool

    config = build_config({"cache_dir": str(tmp_path / "cache"),
                           "results_dir": str(tmp_path / "results")},
                          CpuInfo("x86_64", frozenset({"avx2"}), cpus_allowed=1, cpus_total=1))
    logged, calls, loads = [], [], []
    cache = ArtifactCache(config.cache_dir, log=logged.append)
    pool = VariantPool(config, cache, specs={"perf": SimpleNamespace(name="t5-small-random")})
    monkeypatch.setattr(pool, "_build", lambda variant, role: build_counting(cache, calls))

    def load(kind, folder, threads, slowdown):
        loads.append(folder)
        if len(loads) <= failures:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Load model failed\nmore detail")
        return FakeEngine()

    monkeypatch.setattr(variants, "load", load)
    monkeypatch.setattr("perf_tests.harness.pool.outline", _no_outline)
    return pool, cache, logged, calls


def test_load_failure_rebuilds_once(tmp_path, monkeypatch):
    pool, cache, logged, calls = pool_with_flaky_load(tmp_path, monkeypatch, failures=1)
    assert isinstance(pool.engine("onnx-int8", "perf"), FakeEngine)
    assert len(calls) == 2 and cache.rebuilt == ["onnx-int8"]
    folder = cache.folder("onnx-int8", {"model": "m"})
    assert [line for line in logged if line.startswith("!")] == [
        f"! onnx-int8 (artifact {folder.name}) failed to load (RuntimeError: [ONNXRuntimeError] "
        ": 1 : FAIL : Load model failed): building it again"]


def test_load_failure_after_a_rebuild_is_one_line(tmp_path, monkeypatch):
    pool, cache, logged, calls = pool_with_flaky_load(tmp_path, monkeypatch, failures=2)
    with pytest.raises(ArtifactError) as error:
        pool.engine("onnx-int8", "perf")
    assert str(error.value) == ("onnx-int8 (t5-small-random) fails to load even after its artifact "
                                "was built again: RuntimeError: [ONNXRuntimeError] : 1 : FAIL : "
                                "Load model failed")
    assert len(calls) == 2


def test_a_build_that_fails_fails_once_as_itself(tmp_path, monkeypatch):
    """A build error is not taken for an artifact that fails to load: nothing is discarded or
    built a second time, and the test sees the build's own error."""
    pool, cache, logged, calls = pool_with_flaky_load(tmp_path, monkeypatch, failures=0)

    def failing_build(variant, role):
        calls.append(1)
        raise RuntimeError("quantizer: unsupported op MatMulNBits")

    monkeypatch.setattr(pool, "_build", failing_build)
    with pytest.raises(RuntimeError, match="unsupported op MatMulNBits") as error:
        pool.engine("onnx-int8", "perf")
    assert len(calls) == 1 and cache.rebuilt == [] and error.value.__context__ is None


class _no_outline:
    def __init__(self, label):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _past_its_last_change(path) -> None:
    """Wait until a change of ``path`` would get a later ctime than its last one: many file
    systems take the time from a clock that ticks every few milliseconds, and a change in the
    same tick as the build's write would leave the stamp as it was, where the test asks whether
    the stamp sees the change."""
    while time.time_ns() < path.stat().st_ctime_ns + 20_000_000:
        time.sleep(0.005)


def _flip_byte(path, offset):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


class ClosingEngine:
    def __init__(self, variant, closed):
        self.variant, self.closed = variant, closed

    def close(self):
        self.closed.append(self.variant)


def test_each_candidate_runs_beside_the_baseline_only(tmp_path, monkeypatch):
    from perf_tests.harness import variants

    pool, _, _, _ = pool_with_flaky_load(tmp_path, monkeypatch, failures=0)
    closed = []
    monkeypatch.setattr(variants, "load",
                        lambda spec, folder, threads, slowdown: ClosingEngine(spec.name, closed))
    for variant in ("pytorch-fp32", "ct2-int8", "ct2-int8", "torch-int8", "onnx-int8"):
        pool.engine(variant, "perf")
    assert closed == ["ct2-int8", "torch-int8"]  # released before the next candidate loads
    assert sorted(v for v, _ in pool._engines) == ["onnx-int8", "pytorch-fp32"]
    pool.engine("pytorch-fp32", "perf")  # the partner of a candidate's rounds: nothing closed
    assert sorted(v for v, _ in pool._engines) == ["onnx-int8", "pytorch-fp32"]
    pool.engine("pytorch-fp32", "perf", timed=True)  # the baseline timed alone
    assert closed[-1] == "onnx-int8" and list(pool._engines) == [("pytorch-fp32", "perf")]


def test_prune_removes_only_what_no_run_wanted_lately(tmp_path, capsys):
    import os
    import time

    from perf_tests.harness import prune

    cache = ArtifactCache(tmp_path, log=lambda line: None)
    kept = cache.get_or_build("onnx-int8", {"model": "m"}, write_weights)
    old = cache.get_or_build("onnx-int8", {"model": "old"}, write_weights)
    month_ago = time.time() - 30 * prune.DAY
    os.utime(tmp_path / ".used" / old.name, (month_ago, month_ago))
    assert prune.stale(tmp_path, 14) == [old]
    assert prune.main(["--cache-dir", str(tmp_path), "--dry-run"]) == 0
    assert old.is_dir() and "would remove " + old.name in capsys.readouterr().out
    prune.main(["--cache-dir", str(tmp_path)])
    assert not old.exists() and kept.is_dir()
    assert not (tmp_path / ".used" / old.name).exists()
    assert cache.get_or_build("onnx-int8", {"model": "m"}, write_weights) == kept  # still whole


def test_prune_says_when_there_is_no_cache_and_refuses_a_file(tmp_path, capsys):
    from perf_tests.harness import prune

    assert prune.main(["--cache-dir", str(tmp_path / "mistyped")]) == 0
    assert capsys.readouterr().out == f"no cache folder at {tmp_path / 'mistyped'}: nothing to prune\n"
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(SystemExit) as stop:
        prune.main(["--cache-dir", str(tmp_path / "notes.txt")])
    assert stop.value.code == 2 and "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prune.main(["--cache-dir", str(tmp_path), "--unused-days", "nan"])
    assert "'nan' is not a finite number" in capsys.readouterr().err


def test_prune_removes_what_a_stopped_build_left_and_nothing_a_live_one_holds(tmp_path, capsys):
    import subprocess
    import sys

    from perf_tests.harness import prune

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stopped = tmp_path / f".tmp-onnx-int8-t5-0123456789abcdef-{gone}"
    building = tmp_path / f".tmp-onnx-int8-t5-fedcba9876543210-{os.getpid()}"
    for folder in (stopped, building):
        folder.mkdir()
        (folder / "encoder_model.onnx").write_bytes(b"x" * 1000)
    assert prune.leftovers(tmp_path) == [stopped]
    assert prune.main(["--cache-dir", str(tmp_path)]) == 0
    assert not stopped.exists() and building.is_dir()
    assert f"removed {stopped.name} (0 MB, left by a build that was stopped)" in (
        capsys.readouterr().out)


def test_prune_keeps_what_a_run_used_after_it_was_listed(tmp_path):
    """A run may reuse an artifact between the listing and the removal: under the build lock
    the last use is read again; and one that another prune removed meanwhile is passed over."""
    import os
    import time

    from perf_tests.harness import prune

    cache = ArtifactCache(tmp_path, log=lambda line: None)
    old = cache.get_or_build("onnx-int8", {"model": "old"}, write_weights)
    month_ago = time.time() - 30 * prune.DAY
    os.utime(tmp_path / ".used" / old.name, (month_ago, month_ago))
    [listed] = prune.stale(tmp_path, 14)
    cache.get_or_build("onnx-int8", {"model": "old"}, write_weights)  # a run wants it now
    assert prune.remove(tmp_path, listed, 14) is False and old.is_dir()
    os.utime(tmp_path / ".used" / old.name, (month_ago, month_ago))
    assert prune.remove(tmp_path, listed, 14) is True and not old.exists()
    assert prune.remove(tmp_path, listed, 14) is False  # already gone


def test_a_reuse_is_wanted_before_it_is_verified_so_a_prune_leaves_it(tmp_path, monkeypatch):
    """A prune that listed an artifact as unused looks again under its build lock; a run that
    is verifying it to reuse it must already count as a use then (it was removed between the
    run's check and its use)."""
    import os
    import time

    from perf_tests.harness import prune

    folder = ArtifactCache(tmp_path, log=lambda line: None).get_or_build(
        "onnx-int8", {"model": "m"}, write_weights)
    month_ago = time.time() - 30 * prune.DAY
    os.utime(tmp_path / ".used" / folder.name, (month_ago, month_ago))
    assert prune.stale(tmp_path, 14) == [folder]  # listed by a prune ...
    run = ArtifactCache(tmp_path, log=lambda line: None)
    verify = run._problem

    def verified_then_pruned(final):
        problem = verify(final)
        assert not prune.remove(tmp_path, folder, 14)  # ... which looks again meanwhile
        return problem

    monkeypatch.setattr(run, "_problem", verified_then_pruned)
    assert run.get_or_build("onnx-int8", {"model": "m"}, write_weights) == folder
    assert (folder / "artifact.json").is_file() and run.reused == ["onnx-int8"]


def test_the_tools_take_paths_as_the_gate_does(tmp_path, monkeypatch, capsys):
    """~ expanded in PERF_CACHE_DIR as --perf-cache-dir expands it; a name the system cannot
    take is argparse's one usage line, not a traceback."""
    from perf_tests.harness import prune, record, replay

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PERF_CACHE_DIR", "~/cache")
    (tmp_path / "cache").mkdir()
    assert prune.main(["--dry-run"]) == 0
    assert capsys.readouterr().out == f"0 artifacts, 0 MB to free in {tmp_path / 'cache'}\n"
    too_long = "x" * 300
    for tool, args in ((prune.main, ["--cache-dir", too_long]), (replay.main, [too_long]),
                       (record.main, ["--label", "m", "--trim-only", too_long]),
                       (record.main, ["--label", "m", "--results", too_long])):
        with pytest.raises(SystemExit) as stop:
            tool(args)
        assert stop.value.code == 2
        assert "File name too long; pass a path this system can open" in capsys.readouterr().err


def test_a_reuse_marked_between_the_prunes_look_and_its_rename_keeps_the_artifact(
        tmp_path, monkeypatch):
    """The reuse takes no lock: it may mark the artifact wanted just after the prune looked
    under the lock, and verify it before the prune renamed it aside; the prune looks once more
    and puts it back."""
    import os
    import time

    from perf_tests.harness import prune

    folder = ArtifactCache(tmp_path, log=lambda line: None).get_or_build(
        "onnx-int8", {"model": "m"}, write_weights)
    month_ago = time.time() - 30 * prune.DAY
    os.utime(tmp_path / ".used" / folder.name, (month_ago, month_ago))
    rename = os.rename

    def wanted_then_renamed(source, target):
        if source == folder:
            (tmp_path / ".used" / folder.name).touch()  # the run's mark, just after the look
        rename(source, target)

    monkeypatch.setattr(prune.os, "rename", wanted_then_renamed)
    assert prune.remove(tmp_path, folder, 14) is False
    assert (folder / "weights.bin").read_bytes() == b"\x00" * 1024
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
