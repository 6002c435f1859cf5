"""Options -> config: shapes, variants, presets, the required arch, planted regressions."""

import json

import pytest

from perf_tests.harness.config import ConfigError, Plant, Shape, build_config
from perf_tests.harness.cpu import CpuInfo, detect

pytestmark = pytest.mark.unit

# A 2-CPU machine whatever machine runs the tests, so the thread defaults and bounds are fixed.
AVX2 = CpuInfo("x86_64", frozenset({"avx", "avx2", "fma"}), cpus_allowed=2, cpus_total=2)
VNNI = CpuInfo("x86_64", frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"}),
               cpus_allowed=2, cpus_total=2)
ARM = CpuInfo("aarch64", frozenset({"asimd"}), cpus_allowed=2, cpus_total=2)


def options(tmp_path, **given):
    return {"cache_dir": str(tmp_path / "cache"), "results_dir": str(tmp_path / "results"),
            **given}


def test_presets_follow_cpu_flags():
    assert AVX2.best_preset() == "avx2"
    assert VNNI.best_preset() == "avx512_vnni"
    assert ARM.best_preset() == "arm64"
    runs, reason = AVX2.can_run("avx512_vnni")
    assert not runs and "avx512_vnni" in reason and "avx512f" in reason
    assert ARM.can_run("avx2") == (False, "preset avx2 needs a x86_64 CPU, this one is aarch64")


def test_detect_reads_this_machine():
    info = detect()
    assert info.machine in ("x86_64", "aarch64")
    assert info.best_preset() in ("avx2", "avx512", "avx512_vnni", "arm64")


def test_defaults(tmp_path):
    config = build_config(options(tmp_path), AVX2)
    assert config.variants == ("pytorch-fp32", "onnx-fp32", "onnx-o3", "onnx-int8", "ct2-int8",
                               "torch-int8", "onnx-int8-tuned")
    assert config.preset == "avx2" and config.preset_skip_reason == ""
    assert [s.id for s in config.shapes] == ["b1-s16", "b8-s64"]
    assert config.perf_model == "t5-small-random" and config.quality_model == "t5-tiny-enfr"
    assert not (tmp_path / "cache").exists(), "building a config must create nothing"


def test_sentences_default_to_the_profile_and_may_be_all(tmp_path):
    assert build_config(options(tmp_path), AVX2).sentences == 300
    assert build_config(options(tmp_path, profile="full"), AVX2).sentences is None
    assert build_config(options(tmp_path, sentences="40"), AVX2).sentences == 40
    assert build_config(options(tmp_path, sentences=" All "), AVX2).sentences is None
    assert build_config(options(tmp_path), AVX2).header_lines()[0].endswith(
        "32 new tokens, 300 quality sentences")


def test_one_model_names_both_roles(tmp_path):
    config = build_config(options(tmp_path, model="t5-small"), AVX2)
    assert config.perf_model == config.quality_model == "t5-small"


def test_preset_the_cpu_cannot_run_is_skipped_not_fatal(tmp_path):
    config = build_config(options(tmp_path, preset="avx512_vnni"), AVX2)
    assert config.preset == "avx512_vnni" and "lacks" in config.preset_skip_reason


@pytest.mark.parametrize("given, message", [
    ({"variants": "onnx-int4"}, "unknown variant 'onnx-int4'"),
    ({"preset": "sse4"}, "unknown preset 'sse4'"),
    ({"profile": "huge"}, "unknown profile 'huge'"),
    ({"shapes": "b1s16"}, "shape 'b1s16' is not of the form"),
    ({"arch": "x86_64-avx512_vnni"}, "this machine cannot run it"),
    ({"arch": "riscv-avx2"}, "is not one of"),
    ({"limits": "/nonexistent/limits.toml"}, "does not exist"),
    ({"plant": "onnx-int8:faster=2"}, "expected <variant>:slowdown=<fraction>"),
    ({"plant": "onnx-int8:slowdown=-1"}, "slowdown -1 is out of range: pass a number above 0"),
    ({"rounds": "1"}, r"--perf-rounds 1 is out of range: pass a whole number at least 2"),
    ({"rounds": "many"}, "--perf-rounds 'many' is not a whole number"),
    ({"threads": "two"}, "--perf-threads 'two' is not a whole number: pass a whole number at "
                         "least 1 and at most 2"),
    ({"threads": "0"}, "--perf-threads 0 is out of range"),
    ({"threads": "3"}, "--perf-threads 3 is out of range: .* at most 2"),
    ({"threads": "1.5"}, "--perf-threads '1.5' is not a whole number"),
    ({"new_tokens": "-4"}, "--perf-new-tokens -4 is out of range"),
    ({"new_tokens": "lots"}, "--perf-new-tokens 'lots' is not a whole number"),
    ({"sentences": "0"}, r"--perf-sentences 0 is out of range: pass a whole number at least 1 "
                         r"\(or all for the whole test set\)"),
    ({"sentences": "some"}, "--perf-sentences 'some' is not a whole number"),
    ({"baseline_runs": "1"}, "--perf-baseline-runs 1 is out of range"),
    ({"baseline_runs": "five"}, "--perf-baseline-runs 'five' is not a whole number"),
    ({"regression_factor": "1.0"}, "--perf-regression-factor 1.0 is out of range: pass a number "
                                   "above 1 and at most 10"),
    ({"regression_factor": "x"}, "--perf-regression-factor 'x' is not a number"),
    ({"regression_factor": "nan"}, "--perf-regression-factor 'nan' is not a finite number"),
    ({"false_alarm_rate": "0.5"}, "--perf-false-alarm-rate 0.5 is out of range: pass a number "
                                  "above 0 and below 0.5"),
    ({"false_alarm_rate": "inf"}, "--perf-false-alarm-rate 'inf' is not a finite number"),
    ({"measure_again": "sometimes"}, "--perf-measure-again 'sometimes': choose from regressed, "
                                     "all, never"),
    ({"shapes": "b0-s16"}, "--perf-shapes b0-s16: batch 0 is out of range"),
    ({"shapes": "b1-s1"}, "--perf-shapes b1-s1: source tokens 1 is out of range"),
    ({"shapes": "b1-s99999"}, "source tokens 99999 is out of range"),
    ({"shapes": "b1-s16,b1-s16"}, "--perf-shapes lists b1-s16 twice"),
    ({"shapes": " , "}, "--perf-shapes lists no shape"),
    ({"variants": "onnx-int8,onnx-int8"}, "--perf-variants lists onnx-int8 twice"),
    ({"plant": "onnx-int8:slowdown=fast"}, "--perf-plant onnx-int8:slowdown=fast: slowdown 'fast' is"
                                           " not a number"),
    ({"plant": "onnx-int8:noise="}, "noise needs an amount"),
    ({"baseline": "9999"}, "--perf-baseline 9999: no such run in .* \\(it holds no run yet\\)"),
    ({"baseline": "/nonexistent.json"}, "expected latest, a run number or an existing history"),
    ({"baseline": "²"}, "--perf-baseline '²': expected latest, a run number or an existing"),
    ({"variants": ","}, "--perf-variants ',' names no variant: pass names from pytorch-fp32, "),
    ({"variants": "onnx-fp32", "plant": "onnx-int8:slowdown=0.25"},
     "--perf-plant onnx-int8:slowdown=0.25: onnx-int8 is not measured in this run \\(variants "
     "pytorch-fp32, onnx-fp32\\): add it to --perf-variants"),
    ({"test_set": "wmt41"}, "--perf-test-set 'wmt41': sacrebleu has no such test set; choose one "
                            "it lists \\(sacrebleu --list\\), e.g. wmt24"),
    ({"limits": "/"}, "limits file / is a folder: pass --perf-limits FILE"),
    ({"limits": "~no-such-user-here/limits.toml"},
     "limits file ~no-such-user-here/limits.toml: Could not determine home directory; pass a "
     "path this system can open"),
    ({"cache_dir": "/tmp/" + "a" * 300}, "cache folder /tmp/a+: File name too long; pass a path"),
])
def test_bad_options_raise_one_line(tmp_path, given, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_config(options(tmp_path, **given), AVX2)
    assert "\n" not in str(error.value)


def test_baseline_is_always_measured(tmp_path):
    config = build_config(options(tmp_path, variants="onnx-int8"), AVX2)
    assert config.variants == ("pytorch-fp32", "onnx-int8")


def test_threads_default_to_the_cpus_this_process_may_use(tmp_path):
    """Under taskset -c 0 (or a container's CPU set) on a 2-CPU machine: one thread, not two."""
    pinned = CpuInfo("x86_64", frozenset({"avx2"}), cpus_allowed=1, cpus_total=2)
    config = build_config(options(tmp_path), pinned)
    assert config.threads == 1
    assert "threads 1 (CPUs: 1 allowed of 2)" in config.header_lines()[0]
    assert build_config(options(tmp_path, threads="2"), pinned).threads == 2  # asked for: kept


def test_allowed_cpus_follow_the_affinity_mask(monkeypatch):
    from perf_tests.harness import cpu

    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert cpu.allowed_cpus() == 1 and detect().cpus_allowed == 1
    monkeypatch.delattr(cpu.os, "sched_getaffinity")
    assert cpu.allowed_cpus() == cpu.machine_cpus()


def test_numbers_and_blanks(tmp_path):
    config = build_config(options(tmp_path, threads=" 1 ", rounds="", regression_factor="1.5",
                                  false_alarm_rate="0.02", shapes="b2-s8, b01-s9"), AVX2)
    assert (config.threads, config.rounds) == (1, 8)
    assert (config.regression_factor, config.false_alarm_rate) == (1.5, 0.02)
    assert [s.id for s in config.shapes] == ["b2-s8", "b1-s9"]


def history_file(results, arch, number, data=None):
    folder = results / "history" / arch / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{number:04d}_abc_20261125_000000.json"
    path.write_text(json.dumps(data if data is not None else {"benchmarks": []}))
    return path


def test_baseline_run_must_be_in_the_history(tmp_path):
    results = tmp_path / "results"
    history_file(results, "x86_64", 3)
    history_file(results, "x86_64", 4)
    assert build_config(options(tmp_path, baseline="4"), AVX2).baseline_run == "4"
    with pytest.raises(ConfigError, match=r"--perf-baseline 9: no such run in .*x86_64 \(it holds "
                       r"runs 3-4\)"):
        build_config(options(tmp_path, baseline="9"), AVX2)
    with pytest.raises(ConfigError, match="no such run"):  # another arch's history is not ours
        build_config(options(tmp_path, baseline="3"), ARM)


def test_a_run_number_two_python_versions_reached_is_not_guessed(tmp_path):
    """pytest-benchmark numbers each Python's folder from 1, so after an upgrade a number can
    name two runs: the line says which, and asks for the file."""
    results = tmp_path / "results"
    older = history_file(results, "x86_64", 1)
    newer = older.parent.with_name("Linux-CPython-3.12-64bit")
    newer.mkdir()
    (newer / "0001_abc_20261206_000000.json").write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(ConfigError, match=r"--perf-baseline 1: 2 runs in .*x86_64 carry that "
                       r"number \(Linux-CPython-3.11-64bit/0001_abc_20261125_000000.json, "
                       r"Linux-CPython-3.12-64bit/0001_abc_20261206_000000.json\): pass the "
                       r"history file's path instead"):
        build_config(options(tmp_path, baseline="1"), AVX2)


def test_a_symlink_loop_is_one_line(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ConfigError, match=r"variants file .*a: Symlink loop from .*; pass a path "
                                          "this system can open"):
        build_config(options(tmp_path, variants_file=str(tmp_path / "a")), AVX2)


def test_pinned_baseline_file_must_be_a_history_file(tmp_path):
    good = history_file(tmp_path / "elsewhere", "x86_64", 1)
    assert build_config(options(tmp_path, baseline=str(good)), AVX2).baseline_run == str(good)
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a readable pytest-benchmark history file"):
        build_config(options(tmp_path, baseline=str(bad)), AVX2)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable pytest-benchmark history file"):
        build_config(options(tmp_path, baseline=str(bad)), AVX2)
    bad.write_text(json.dumps({"benchmarks": [], "perf_gate": []}))  # what the gate reads, checked
    with pytest.raises(ConfigError, match=r"history file \(perf_gate is not an object\)"):
        build_config(options(tmp_path, baseline=str(bad)), AVX2)


def test_unwritable_folder_is_found_by_trying(tmp_path, monkeypatch):
    """A folder whose permission bits allow writing, but where writing fails (a read-only mount,
    a quota): the probe file fails, and nothing is created or left behind."""
    from perf_tests.harness import parsing

    real_open = parsing.os.open

    def refuse(path, *args, **kwargs):
        if ".perf-gate-probe-" in str(path):
            raise OSError(30, "Read-only file system")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(parsing.os, "open", refuse)
    with pytest.raises(ConfigError, match=r"results folder .*results is not writable \(tried "
                       r".*, where it would be made\): Read-only file system; pass a writable"):
        build_config(options(tmp_path), AVX2)
    assert list(tmp_path.iterdir()) == []


def test_writable_folder_leaves_no_probe(tmp_path):
    (tmp_path / "results").mkdir()
    build_config(options(tmp_path), AVX2)
    assert list(tmp_path.iterdir()) == [tmp_path / "results"]
    assert list((tmp_path / "results").iterdir()) == []


def test_unwritable_cache_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
        with pytest.raises(ConfigError, match="is not writable"):
            build_config(options(tmp_path, cache_dir=str(locked / "cache")), AVX2)
    finally:
        locked.chmod(0o700)


def test_cache_folder_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        build_config(options(tmp_path, cache_dir=str(tmp_path / "file")), AVX2)


def test_shape_and_plant_parsing():
    assert Shape.parse("b8-s64") == Shape(8, 64) and Shape(8, 64).id == "b8-s64"
    declared = ("pytorch-fp32", "onnx-int8")
    assert Plant.parse("onnx-int8:slowdown=0.25", declared) == Plant("onnx-int8", slowdown=0.25)
    assert Plant.parse("onnx-int8:noise=0.1", declared) == Plant("onnx-int8", noise=0.1)
    with pytest.raises(ConfigError, match="expected <variant>:slowdown"):
        Plant.parse("onnx-o3:slowdown=0.25", declared)
    machine = Plant.parse("all:slowdown=0.3")
    assert machine.applies_to("pytorch-fp32") and machine.applies_to("onnx-int8")
    assert not Plant("onnx-int8", slowdown=0.3).applies_to("onnx-o3")


def test_noise_is_not_planted_in_a_folder_variant(tmp_path):
    """A folder variant is loaded as it is, never built: noise planted there was accepted and
    did nothing."""
    folder = tmp_path / "theirs"
    folder.mkdir()
    for name in ("encoder_model.onnx", "decoder_model_merged.onnx", "config.json"):
        (folder / name).write_text("x")
    variants = tmp_path / "variants.toml"
    variants.write_text('[pytorch-fp32]\nengine = "pytorch"\n'
                        '[theirs]\nengine = "onnxruntime"\nfolder = "theirs"\n')
    given = options(tmp_path, variants_file=str(variants))
    with pytest.raises(ConfigError, match="theirs is loaded from its folder as it is, never built"):
        build_config({**given, "plant": "theirs:noise=0.5"}, AVX2)
    assert build_config({**given, "plant": "theirs:slowdown=0.5"}, AVX2).plant.slowdown == 0.5
