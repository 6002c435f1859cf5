"""Reports from a synthetic summary: the terminal table, report.md, action-benchmark JSON, plots."""

import json

import pytest

from perf_tests.harness import plots, report, summary
from perf_tests.harness.regression import Comparison

pytestmark = pytest.mark.unit


def entry(median, ratio=None, peak=100.0, disk=50.0, bleu=95.0):
    latency = {"median_ms": median, "p90_ms": median * 1.1}
    if ratio is not None:
        latency["ratio_to_baseline"] = ratio
    return {"latency": {"b1-s16": latency}, "memory": {"peak_above_baseline_mb": peak},
            "disk_mb": disk, "quality": {"bleu": bleu, "chrf": bleu - 3, "exact_match_rate": 1.0,
                                         "sentences": 300, "bleu_signature": "nrefs:1|tok:13a",
                                         "chrf_signature": "nrefs:1|nc:6"}}


SUMMARY = {
    "created": "2026-11-24T12:00:00", "profile": "smoke", "rounds": 5, "new_tokens": 32,
    "baseline": "pytorch-fp32", "memory_shape": "b1-s16", "quality_set": "embedded-test",
    "machine": {"arch": "x86_64", "preset": "avx2", "cpu": "test CPU", "threads": 2},
    "models": {"perf": {"name": "t5-small-random"}, "quality": {"name": "t5-tiny-enfr"}},
    "libraries": {"torch": "2.13.0"},
    "variants": {"pytorch-fp32": entry(774.0, peak=300.0, disk=242.0),
                 "onnx-int8": entry(215.0, 0.278, peak=142.0, disk=94.3, bleu=94.8)},
    "verdicts": [{"passed": False, "message": "onnx-int8 vs pytorch-fp32 [x86_64/avx2] peak "
                  "memory ratio 0.520 > max 0.50 (142.0 MB vs 300.0 MB)"}],
    "not_judged": ["onnx-fp32 vs pytorch-fp32 [b1-s16]: limits [default] judge it at b8-s64 only"],
    "steps": [{"label": "exporting", "depth": 0, "seconds": 24.5, "failed": False}],
}
SUMMARY["variants"]["onnx-int8"].update({
    "declaration": {"name": "onnx-int8", "engine": "onnxruntime", "recipe": {"quantize": "preset"}},
    "levers": ["int8 weights (avx2 preset, per tensor)"],
    "fallback": "the BeamSearch tools build T5 only, not bart"})
SLOWER = Comparison("latency", "onnx-int8", "b1-s16", 0.2, 0.25, 1.25, 0.004, True,
                    "onnx-int8 [b1-s16] latency regressed", machine_factor=1.05,
                    detectable=1.12)
HIDDEN = Comparison("latency", "onnx-fp32", "b8-s64", 0.5, 0.55, 1.10, 0.2, False,
                    "onnx-fp32 [b8-s64] latency unchanged", machine_factor=1.0, detectable=1.41)


def test_terminal_table_has_every_column_and_the_failures():
    lines = summary.table_lines(SUMMARY, {("onnx-int8", "b1-s16"): 1.25})
    header = next(line for line in lines if line.startswith("variant"))
    for column in ("median ms", "p90 ms", "ratio", "peak MB", "disk MB", "BLEU", "chrF", "vs base"):
        assert column in header
    int8 = next(line for line in lines if line.startswith("onnx-int8"))
    assert "215.0" in int8 and "0.278" in int8 and "94.3" in int8 and "+25.0%" in int8
    assert any(line.startswith("  FAILED onnx-int8 vs pytorch-fp32") for line in lines)


def test_the_baseline_has_no_ratio_at_a_shape_it_did_not_run():
    import copy

    data = copy.deepcopy(SUMMARY)
    data["variants"]["onnx-int8"]["latency"]["b8-s64"] = {"median_ms": 380.0, "p90_ms": 400.0}
    lines = summary.table_lines(data, {})
    table = lines[lines.index("shape b8-s64 (peak memory at b1-s16)"):]
    baseline = next(line for line in table if line.startswith("pytorch-fp32"))
    assert baseline.split()[1:4] == ["-", "-", "-"]  # no median, p90 or ratio


def test_comparison_table_and_first_run():
    assert report.comparison_lines([], None) == [
        "regression check: no baseline yet (first run on this machine): passed"]
    lines = report.comparison_lines([SLOWER, HIDDEN], "#0001")
    for column in ("usual", "now", "machine", "change", "catches", "p", "verdict"):
        assert column in lines[1]
    assert lines[2].split() == ["onnx-int8", "latency", "b1-s16", "200.00", "250.00", "+5.0%",
                                "+25.0%", "+12.0%", "0.0040", "REGRESSED"]
    assert lines[4] == ("this machine's noise hides a 25% regression tonight in: onnx-fp32 "
                        "[b8-s64] (catches +41% or more)")
    assert lines[-2:] == ["regression check: 1 ok, 1 regressed", "change points: none in the history"]


def test_report_files(tmp_path):
    pngs = [plots.latency_bars(SUMMARY, tmp_path / "latency.png"),
            plots.memory_bars(SUMMARY, tmp_path / "memory.png"),
            plots.quality_bars(SUMMARY, tmp_path / "quality.png")]
    assert all(p.stat().st_size > 10_000 for p in pngs)
    check = report.comparison_lines([SLOWER], "#0001")
    report.write_markdown(tmp_path / "report.md", SUMMARY, check, pngs, {})
    text = (tmp_path / "report.md").read_text()
    for part in ("## Verdicts", "- FAIL onnx-int8", "REGRESSED", "nrefs:1|tok:13a",
                 "- not judged: onnx-fp32 vs pytorch-fp32 [b1-s16]: limits [default] judge it",
                 "quality t5-tiny-enfr on embedded-test (300 sentences)",
                 "exporting: 24.5 s", "![latency](latency.png)", "torch 2.13.0",
                 "- onnx-int8: onnxruntime (quantize preset)\n  - int8 weights (avx2 preset, per "
                 "tensor)\n  - fallback: the BeamSearch tools build T5 only, not bart"):
        assert part in text
    smaller, bigger = report.write_action_benchmark(tmp_path, SUMMARY)
    names = {item["name"]: item for item in json.loads(smaller.read_text())}
    assert names["onnx-int8 b1-s16 median latency"] == {
        "name": "onnx-int8 b1-s16 median latency", "unit": "ms", "value": 215.0,
        "extra": "p90 236.5 ms"}
    assert {i["name"] for i in json.loads(bigger.read_text())} >= {"onnx-int8 bleu"}
    assert not list(tmp_path.glob(".*tmp*")), "a temporary file was left behind"


def test_drift_reach_lines_name_each_variants_steadiest_series_and_the_hidden_ones():
    reach = {("onnx-int8", "b1-s16"): 1.155, ("onnx-int8", "b8-s64"): 1.10,
             ("onnx-o3", "b8-s64"): 1.088, ("onnx-o3", "all shapes"): 1.094,
             ("pytorch-fp32", "b1-s16"): 1.149, ("pytorch-fp32", "b8-s64"): float("inf")}
    lines = report.drift_reach_lines(reach)
    assert lines[0] == ("lasting slowdowns found within 5 runs (95 %), from: onnx-int8 x1.100 "
                        "[b8-s64], onnx-o3 x1.088 [b8-s64], pytorch-fp32 x1.149 [b1-s16]")
    assert lines[1] == "this history's noise hides a lasting 10% drift of: pytorch-fp32"
    assert report.drift_reach_lines({}) == []


def test_a_figure_measured_again_is_reported_as_judged_with_the_first_beside_it():
    """The verdict judges the second measurement of a stalled test; the table, plots and the
    dashboards' files read summary.json, so it must give the second, not the stall."""
    from perf_tests.harness.store import LatencyResult

    stalled = LatencyResult("onnx-int8", "b1-s16", [0.18] * 8, 0.2, 1.0, [0.26] * 8)
    again = LatencyResult("onnx-int8", "b1-s16", [0.13] * 8, 0.2, 1.0, [0.27] * 8)
    assert summary._latency_entry(stalled, None) == stalled.as_dict()
    judged = summary._latency_entry(stalled, again)
    assert (judged["median_ms"], judged["ratio_to_baseline"]) == (130.0, round(0.13 / 0.27, 4))
    assert judged["measured_again"] is True
    assert judged["first_measurement"]["median_ms"] == 180.0
