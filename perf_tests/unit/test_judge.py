"""The limits file and the judge's one-line verdicts."""

import pytest

from perf_tests.harness.config import ConfigError
from perf_tests.harness.judge import Limits, ModelFacts, judge

pytestmark = pytest.mark.unit

GOOD = """
[default.latency.onnx-int8-vs-pytorch-fp32]
max = 0.5
shapes = { b8-s64 = 0.6 }
[default.exact_match.onnx-fp32-vs-pytorch-fp32]
min = 1.0
[avx2.latency.onnx-int8-vs-pytorch-fp32]
max = 0.45
"""


def write(tmp_path, text):
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return path


def test_preset_table_overrides_default(tmp_path):
    path = write(tmp_path, GOOD)
    avx2, arm = Limits.load(path, "avx2"), Limits.load(path, "arm64")
    assert avx2.find("latency", "onnx-int8", "pytorch-fp32").value == 0.45
    assert arm.find("latency", "onnx-int8", "pytorch-fp32").value == 0.5
    assert arm.find("latency", "onnx-int8", "pytorch-fp32").value_for("b8-s64") == 0.6
    assert arm.find("disk", "onnx-int8", "pytorch-fp32") is None


def test_verdict_message_has_pair_shape_arch_metric_ratio_limit_and_raw_numbers(tmp_path):
    limit = Limits.load(write(tmp_path, GOOD), "arm64").find("latency", "onnx-int8",
                                                             "pytorch-fp32")
    verdict = judge(limit, 0.71, 41.2, 58.0, "x86_64/avx2", "b1-s16")
    assert not verdict.passed
    assert verdict.message == ("onnx-int8 vs pytorch-fp32 [b1-s16, x86_64/avx2] median latency "
                               "ratio 0.710 > max 0.50 (41.2 ms vs 58.0 ms; limits [default])")
    assert judge(limit, 0.55, 1, 2, "x86_64/avx2", "b8-s64").passed  # the shape's own limit


def test_a_latency_limit_can_be_judged_at_some_shapes_only(tmp_path):
    text = '[default.latency.onnx-fp32-vs-pytorch-fp32]\nmax = 1.0\nonly_at = ["b8-s64"]\n'
    limit = Limits.load(write(tmp_path, GOOD + text), "avx2").find("latency", "onnx-fp32",
                                                                   "pytorch-fp32")
    assert limit.only_at == ("b8-s64",)
    assert limit.judged_at("b8-s64") and not limit.judged_at("b1-s16")
    every_shape = Limits.load(write(tmp_path, GOOD), "avx2").find("latency", "onnx-int8",
                                                                  "pytorch-fp32")
    assert every_shape.judged_at("b1-s16") and every_shape.judged_at("b8-s64")


def test_a_limit_left_out_at_a_shape_is_one_line_for_the_report(tmp_path):
    from perf_tests.harness.plugin import Gate

    text = '[default.latency.onnx-fp32-vs-pytorch-fp32]\nmax = 1.0\nonly_at = ["b8-s64"]\n'
    limits = Limits.load(write(tmp_path, GOOD + text), "avx2")
    gate = Gate(None, limits, {})
    assert gate.judges_at(limits.find("latency", "onnx-fp32", "pytorch-fp32"), "b8-s64")
    assert gate.judges_at(limits.find("latency", "onnx-int8", "pytorch-fp32"), "b1-s16")
    assert not gate.judges_at(limits.find("latency", "onnx-fp32", "pytorch-fp32"), "b1-s16")
    assert gate.not_judged == ["onnx-fp32 vs pytorch-fp32 [b1-s16]: limits [default] judge it at "
                               "b8-s64 only"]


def test_min_bound(tmp_path):
    limit = Limits.load(write(tmp_path, GOOD), "avx2").find("exact_match", "onnx-fp32",
                                                            "pytorch-fp32")
    assert judge(limit, 1.0, 300, 300, "x").passed
    failed = judge(limit, 0.99, 297, 300, "x86_64/avx2")
    assert not failed.passed and "exact-match rate 0.990 < min 1.00" in failed.message


SECTIONS = GOOD + """
[sizes.small]
max_parameters = 20_000_000
[sizes.small.default.latency.onnx-int8-vs-pytorch-fp32]
max = 0.8
[sizes.small.default.exact_match.onnx-fp32-vs-pytorch-fp32]
min = 0.9
[sizes.medium]
max_parameters = 100_000_000
[sizes.medium.avx2.latency.onnx-int8-vs-pytorch-fp32]
max = 0.65
[models."my-marian".default.latency.onnx-int8-vs-pytorch-fp32]
max = 0.9
[models.abc123.avx2.disk.onnx-int8-vs-pytorch-fp32]
max = 0.5
"""
T5_SMALL = ModelFacts(("t5-small-random",), "f0", 60_506_624)
TINY = ModelFacts(("t5-tiny-enfr",), "f1", 4_902_656)


def sections(limits):
    return {(lim.metric, lim.section): lim.value for lim in limits.all()}


def test_default_sections_judge_t5_small(tmp_path):
    path = write(tmp_path, SECTIONS.replace("[sizes.medium.avx2", "[sizes.medium.arm64"))
    limits = Limits.load(path, "avx2", {"perf": T5_SMALL, "quality": T5_SMALL})
    assert sections(limits) == {("latency", "avx2"): 0.45, ("exact_match", "default"): 1.0}


def test_smallest_size_class_that_holds_the_model(tmp_path):
    path = write(tmp_path, SECTIONS)
    small = Limits.load(path, "avx2", {"perf": TINY, "quality": T5_SMALL})
    assert sections(small) == {("latency", "sizes.small.default"): 0.8,
                               ("exact_match", "default"): 1.0}  # quality: the other model
    medium = Limits.load(path, "avx2", {"perf": T5_SMALL, "quality": TINY})
    assert sections(medium) == {("latency", "sizes.medium.avx2"): 0.65,
                                ("exact_match", "sizes.small.default"): 0.9}
    limit = medium.find("latency", "onnx-int8", "pytorch-fp32")
    assert judge(limit, 0.7, 70, 100, "x86_64/avx2", "b1-s16").message.endswith(
        "(70.0 ms vs 100.0 ms; limits [sizes.medium.avx2])")


def test_model_section_by_name_folder_name_or_fingerprint(tmp_path):
    path = write(tmp_path, SECTIONS)
    by_folder = ModelFacts(("/models/my-marian", "my-marian"), "zzz", 7_000_000)
    limits = Limits.load(path, "avx2", {"perf": by_folder, "quality": TINY})
    assert limits.find("latency", "onnx-int8", "pytorch-fp32").section == 'models."my-marian".default'
    by_print = ModelFacts(("elsewhere",), "abc123", 0)  # unknown size: no size class
    limits = Limits.load(path, "avx2", {"perf": by_print, "quality": TINY})
    assert sections(limits) == {("latency", "avx2"): 0.45, ("disk", 'models."abc123".avx2'): 0.5,
                                ("exact_match", "sizes.small.default"): 0.9}


@pytest.mark.parametrize("text, message", [
    ("[sizes.small.default.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5",
     "sizes.small: needs max_parameters"),
    ("[sizes.small]\nmax_parameters = 10\n[sizes.small.sse.latency.onnx-int8-vs-pytorch-fp32]\n"
     "max = 0.5", "sizes.small.sse: expected default or a preset"),
    ('[models."x".default.latency.onnx-int8-vs-pytorch-fp32]\nmax = -1',
     'models."x".default.latency.onnx-int8-vs-pytorch-fp32.max: -1 is not a positive number'),
    # another machine's table, checked on this avx2 one too
    ("[avx512.latency.onnx-int8-vs-pytorch-fpp32]\nmax = 0.5",
     "avx512.latency.onnx-int8-vs-pytorch-fpp32: 'onnx-int8-vs-pytorch-fpp32' is not"),
    ("[avx3.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5", "[avx3]: expected default, a preset"),
])
def test_malformed_sections_raise_one_line_whatever_the_model(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        Limits.load(write(tmp_path, GOOD + text), "avx2", {"perf": T5_SMALL})


@pytest.mark.parametrize("text, message", [
    ("[default.latency", "is not valid TOML"),
    ("[avx512.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5", "neither a [avx2] nor a [default]"),
    ("[avx2.speed.onnx-int8-vs-pytorch-fp32]\nmax = 0.5", "unknown metric"),
    ("[avx2.latency.int8-vs-pytorch-fp32]\nmax = 0.5", "is not <variant>-vs-<variant>"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nlimit = 0.5", "needs exactly one of max or min"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nmin = 0.1", "exactly one of"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 'fast'", "is not a positive number"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = nan", "max: nan is not a positive number"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = inf", "max: inf is not a positive number"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nshapes = { b8-s64 = true }",
     "shapes.b8-s64: True is not a positive number"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nshapes = { b8-s64 = 0.4, b08-s64 = 0.6 }",
     "shapes lists b8-s64 twice"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nshapes = { b1 = 0.4 }",
     "is not of the form"),
    ("[avx2]\n", "defines no limit"),
    ('[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nonly_at = "b8-s64"',
     "onnx-int8-vs-pytorch-fp32.only_at: expected a list of shapes"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nonly_at = []", "expected a list"),
    ('[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nonly_at = ["b8"]',
     "onnx-int8-vs-pytorch-fp32.only_at: shape 'b8' is not of the form"),
    ('[avx2.bleu.onnx-int8-vs-pytorch-fp32]\nmin = 0.9\nonly_at = ["b8-s64"]',
     "only latency is measured per shape"),
])
def test_malformed_or_incomplete_limits_raise_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as error:
        Limits.load(write(tmp_path, text), "avx2")
    assert "\n" not in str(error.value).strip()


def test_a_shape_is_found_however_it_is_written(tmp_path):
    path = write(tmp_path, "[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\n"
                           "shapes = { b08-s064 = 0.25 }")
    assert Limits.load(path, "avx2").find("latency", "onnx-int8",
                                          "pytorch-fp32").value_for("b8-s64") == 0.25


def test_a_limits_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "limits.toml"
    path.write_bytes("# limites révisées\n".encode("latin-1") + GOOD.encode())
    with pytest.raises(ConfigError, match=f"limits file {path} is not UTF-8 text \\(byte 11\\)"):
        Limits.load(path, "avx2")


def test_the_shipped_limits_file_is_valid():
    from perf_tests.harness.config import ROOT

    for preset in ("avx2", "avx512", "avx512_vnni", "arm64"):
        limits = Limits.load(ROOT / "perf_tests" / "limits.toml", preset)
        assert limits.find("latency", "onnx-int8", "pytorch-fp32").bound == "max"
        assert limits.find("exact_match", "onnx-fp32", "pytorch-fp32").value == 1.0
        for sound_export in ("onnx-fp32", "onnx-o3"):  # b1-s16 cannot tell a graph without past
            assert limits.find("latency", sound_export, "pytorch-fp32").only_at == ("b8-s64",)
    small = ModelFacts(("my-model",), "", 8_000_000)
    limits = Limits.load(ROOT / "perf_tests" / "limits.toml", "avx2", {"perf": small})
    assert limits.find("peak_memory", "onnx-int8", "pytorch-fp32").section == "sizes.small.default"
    t5 = Limits.load(ROOT / "perf_tests" / "limits.toml", "avx2", {"perf": T5_SMALL})
    assert t5.find("peak_memory", "onnx-int8", "pytorch-fp32").value == 0.55


def test_a_baseline_scoring_zero_is_one_failed_line_not_a_division(tmp_path):
    from types import SimpleNamespace

    from perf_tests.harness.plugin import Gate

    limits = Limits.load(write(tmp_path, "[default.bleu.onnx-int8-vs-pytorch-fp32]\nmin = 0.99\n"),
                         "avx2")
    gate = Gate(SimpleNamespace(arch_preset="x86_64/avx2"), limits, {})
    gate._pool = SimpleNamespace(skip_reason=lambda variant: "")
    quality = {"pytorch-fp32": {"bleu": 0.0, "capped": 300, "sentences": 300},
               "onnx-int8": {"bleu": 0.0, "capped": 300, "sentences": 300}}
    gate._store = SimpleNamespace(measured_quality=lambda: quality)
    with pytest.raises(pytest.fail.Exception) as failed:
        gate.judge_pair(limits.find("bleu", "onnx-int8", "pytorch-fp32"),
                        lambda variant: quality[variant]["bleu"])
    assert str(failed.value) == (
        "onnx-int8 vs pytorch-fp32 [x86_64/avx2] BLEU ratio not judged: pytorch-fp32 scores 0.0 "
        "BLEU, so there is no ratio (onnx-int8 0.0 BLEU; 300 of 300 pytorch-fp32 hypotheses hit "
        "the length cap: does the model ever end a sentence?; limits [default])")
    assert gate.verdicts[0].passed is False
