"""Options -> config: shapes, variants, presets, the required arch, planted regressions."""

import pytest

from perf_tests.harness.config import ConfigError, Plant, Shape, build_config
from perf_tests.harness.cpu import CpuInfo, detect

pytestmark = pytest.mark.unit

AVX2 = CpuInfo("x86_64", frozenset({"avx", "avx2", "fma"}))
VNNI = CpuInfo("x86_64", frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"}))
ARM = CpuInfo("aarch64", frozenset({"asimd"}))


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
    assert config.variants == ("pytorch-fp32", "onnx-fp32", "onnx-o3", "onnx-int8")
    assert config.preset == "avx2" and config.preset_skip_reason == ""
    assert [s.id for s in config.shapes] == ["b1-s16", "b8-s64"]
    assert config.perf_model == "t5-small-random" and config.quality_model == "t5-tiny-enfr"
    assert not (tmp_path / "cache").exists(), "building a config must create nothing"


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
    ({"plant": "onnx-int8:slowdown=-1"}, "must be positive"),
    ({"rounds": "1"}, "rounds at least 2"),
])
def test_bad_options_raise_one_line(tmp_path, given, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_config(options(tmp_path, **given), AVX2)
    assert "\n" not in str(error.value)


def test_baseline_is_always_measured(tmp_path):
    config = build_config(options(tmp_path, variants="onnx-int8"), AVX2)
    assert config.variants == ("pytorch-fp32", "onnx-int8")


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
    assert Plant.parse("onnx-int8:slowdown=0.25") == Plant("onnx-int8", slowdown=0.25)
    assert Plant.parse("onnx-int8:noise=0.1") == Plant("onnx-int8", noise=0.1)
    machine = Plant.parse("all:slowdown=0.3")
    assert machine.applies_to("pytorch-fp32") and machine.applies_to("onnx-int8")
    assert not Plant("onnx-int8", slowdown=0.3).applies_to("onnx-o3")
