"""The limits file and the judge's one-line verdicts."""

import pytest

from perf_tests.harness.config import ConfigError
from perf_tests.harness.judge import Limits, judge

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
                               "ratio 0.710 > max 0.50 (41.2 ms vs 58.0 ms)")
    assert judge(limit, 0.55, 1, 2, "x86_64/avx2", "b8-s64").passed  # the shape's own limit


def test_min_bound(tmp_path):
    limit = Limits.load(write(tmp_path, GOOD), "avx2").find("exact_match", "onnx-fp32",
                                                            "pytorch-fp32")
    assert judge(limit, 1.0, 300, 300, "x").passed
    failed = judge(limit, 0.99, 297, 300, "x86_64/avx2")
    assert not failed.passed and "exact-match rate 0.990 < min 1.00" in failed.message


@pytest.mark.parametrize("text, message", [
    ("[default.latency", "is not valid TOML"),
    ("[avx512.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5", "neither a [avx2] nor a [default]"),
    ("[avx2.speed.onnx-int8-vs-pytorch-fp32]\nmax = 0.5", "unknown metric"),
    ("[avx2.latency.int8-vs-pytorch-fp32]\nmax = 0.5", "is not <variant>-vs-<variant>"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nlimit = 0.5", "needs exactly one of max or min"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nmin = 0.1", "exactly one of"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 'fast'", "is not a positive number"),
    ("[avx2.latency.onnx-int8-vs-pytorch-fp32]\nmax = 0.5\nshapes = { b1 = 0.4 }",
     "is not of the form"),
    ("[avx2]\n", "defines no limit"),
])
def test_malformed_or_incomplete_limits_raise_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as error:
        Limits.load(write(tmp_path, text), "avx2")
    assert "\n" not in str(error.value).strip()


def test_the_shipped_limits_file_is_valid():
    from perf_tests.harness.config import ROOT

    for preset in ("avx2", "avx512", "avx512_vnni", "arm64"):
        limits = Limits.load(ROOT / "perf_tests" / "limits.toml", preset)
        assert limits.find("latency", "onnx-int8", "pytorch-fp32").bound == "max"
        assert limits.find("exact_match", "onnx-fp32", "pytorch-fp32").value == 1.0
