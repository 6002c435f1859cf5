"""PNG plots of a run and of the stored history, drawn with matplotlib's Agg backend."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from perf_tests.harness import regression  # noqa: E402
from perf_tests.harness.files import written_whole  # noqa: E402

COLOURS = {"pytorch-fp32": "#4c72b0", "onnx-fp32": "#55a868", "onnx-o3": "#8172b2",
           "onnx-int8": "#c44e52", "ct2-int8": "#dd8452", "torch-int8": "#64b5cd"}


def _colour(variant: str) -> str:
    return COLOURS.get(variant, "#937860")


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    try:
        with written_whole(path) as tmp:
            figure.savefig(tmp, dpi=110)
    finally:
        plt.close(figure)
    return path


def latency_bars(summary: dict, path: Path) -> Path:
    variants = list(summary["variants"])
    shapes = sorted({s for v in summary["variants"].values() for s in v["latency"]})
    figure, axes = plt.subplots(1, max(1, len(shapes)), figsize=(5 * max(1, len(shapes)), 4))
    axes = axes if len(shapes) > 1 else [axes]
    for axis, shape in zip(axes, shapes):
        values = [summary["variants"][v]["latency"].get(shape, {}) for v in variants]
        medians = [entry.get("median_ms", 0) for entry in values]
        bars = axis.bar(variants, medians, color=[_colour(v) for v in variants])
        for bar, entry, variant in zip(bars, values, variants):
            ratio = entry.get("ratio_to_baseline", 1.0 if variant == summary["baseline"] else None)
            if ratio is not None and entry:
                axis.annotate(f"{ratio:.2f}x", (bar.get_x() + bar.get_width() / 2,
                                                bar.get_height()), ha="center", va="bottom")
        axis.set_ylim(0, max(medians + [1]) * 1.15)  # room for the ratio labels
        axis.set_title(f"median latency, {shape} ({summary['new_tokens']} new tokens)")
        axis.set_ylabel("ms per generate() call")
        axis.tick_params(axis="x", labelrotation=20)
    return _save(figure, path)


def memory_bars(summary: dict, path: Path) -> Path:
    entries = {v: e for v, e in summary["variants"].items() if "memory" in e}
    figure, (peak, disk) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(entries)
    colours = [_colour(v) for v in names]
    peak.bar(names, [e["memory"]["peak_above_baseline_mb"] for e in entries.values()],
             color=colours)
    peak.set_title(f"peak RSS above post-import baseline ({summary['memory_shape']})")
    peak.set_ylabel("MB")
    disk.bar(names, [e["disk_mb"] for e in entries.values()], color=colours)
    disk.set_title("size on disk of the files loaded")
    disk.set_ylabel("MB")
    for axis in (peak, disk):
        axis.tick_params(axis="x", labelrotation=20)
        axis.set_ylim(0, axis.get_ylim()[1] * 1.1)
        for container in axis.containers:
            axis.bar_label(container, fmt="%.0f")
    return _save(figure, path)


def quality_bars(summary: dict, path: Path) -> Path:
    entries = {v: e["quality"] for v, e in summary["variants"].items() if "quality" in e}
    figure, axis = plt.subplots(figsize=(7, 4))
    names = list(entries)
    width = 0.38
    positions = range(len(names))
    bleu = axis.bar([p - width / 2 for p in positions], [q["bleu"] for q in entries.values()],
                    width, label="BLEU", color="#4c72b0")
    chrf = axis.bar([p + width / 2 for p in positions], [q["chrf"] for q in entries.values()],
                    width, label="chrF", color="#dd8452")
    axis.bar_label(bleu, fmt="%.1f")
    axis.bar_label(chrf, fmt="%.1f")
    axis.set_xticks(list(positions), names, rotation=20)
    axis.set_ylabel("score (sacreBLEU)")
    axis.set_ylim(0, 125)
    axis.set_title(f"translation quality on {summary['quality_set']}")
    axis.legend(loc="upper center", ncols=2)
    return _save(figure, path)


def token_bars(summary: dict, path: Path) -> Path:
    """Where a call's time goes, per shape: encoder, the rest of the first token, decoding."""
    shapes = sorted({s for v in summary["variants"].values() for s in v.get("tokens", {})})
    figure, axes = plt.subplots(1, len(shapes), figsize=(6 * len(shapes), 4.5))
    axes = axes if len(shapes) > 1 else [axes]
    parts = (("encoder", "#4c72b0"), ("first decoder step", "#dd8452"),
             ("later tokens", "#55a868"))
    for axis, shape in zip(axes, shapes):
        entries = {v: e["tokens"][shape] for v, e in summary["variants"].items()
                   if shape in e.get("tokens", {})}
        names = list(entries)
        encoder = [e["encoder_ms"] or 0 for e in entries.values()]
        # an engine that reports no step (one native call) shows its whole call as later tokens
        first = [(e["first_token_ms"] or enc) - enc for e, enc in zip(entries.values(), encoder)]
        later = [e["call_ms"] - (e["first_token_ms"] or 0) for e in entries.values()]
        bottom = [0.0] * len(names)
        for (label, colour), values in zip(parts, (encoder, first, later)):
            axis.bar(names, values, bottom=bottom, label=label, color=colour)
            bottom = [b + v for b, v in zip(bottom, values)]
        for index, entry in enumerate(entries.values()):
            axis.annotate(f"{entry['tokens_per_s']:.0f} tok/s", (index, bottom[index]),
                          ha="center", va="bottom", fontsize=8)
        axis.set_ylim(0, max(bottom + [1]) * 1.15)
        axis.set_title(f"one generate() call, {shape} ({summary['new_tokens']} new tokens)")
        axis.set_ylabel("ms (a part missing: the engine does not report it)")
        axis.tick_params(axis="x", labelrotation=20)
        axis.legend(fontsize=7)
    return _save(figure, path)


def sweep_lines(summary: dict, path: Path) -> Path:
    """The full profile's sweep: latency and tokens per second against batch, a line per
    variant and a line style per source length."""
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(13, 4.5))
    styles = {16: "-", 64: "--", 128: ":"}
    for variant, entry in summary["variants"].items():
        by_source: dict[int, list] = {}
        for shape, figures in entry.get("sweep", {}).items():
            batch, source = (int(part[1:]) for part in shape.split("-"))
            by_source.setdefault(source, []).append((batch, figures))
        for source, points in sorted(by_source.items()):
            points.sort()
            batches = [b for b, _ in points]
            style = dict(color=_colour(variant), linestyle=styles.get(source, "-."), marker="o",
                         label=f"{variant} s{source}")
            latency.plot(batches, [f["call_ms"] for _, f in points], **style)
            throughput.plot(batches, [f["tokens_per_s"] for _, f in points], **style)
    latency.set_title(f"latency per call ({summary['new_tokens']} new tokens)")
    latency.set_ylabel("ms")
    throughput.set_title("tokens per second")
    throughput.set_ylabel("new tokens / s (batch x new tokens / call)")
    for axis in (latency, throughput):
        axis.set_xlabel("batch")
        axis.set_xscale("log", base=2)
    throughput.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, path)


def trend_series(runs: list) -> dict[str, dict[str, dict[int, float]]]:
    """Each figure's value by run index: latency and ratio of the rounds judged (a test's
    second measurement where it was measured again), peak memory and BLEU."""
    series = {"latency": {}, "ratio": {}, "memory": {}, "bleu": {}}
    for index, run in enumerate(runs):
        for (variant, shape), entry in run.latency().items():
            judged = regression.as_judged(entry)
            median = statistics.median(judged["data"])
            series["latency"].setdefault(f"{variant} {shape}", {})[index] = median * 1000
            paired = judged["extra_info"].get("paired_baseline_s")
            ratio = (median / statistics.median(paired) if paired
                     else judged["extra_info"].get("ratio_to_baseline"))  # runs before pairing
            if ratio is not None:
                series["ratio"].setdefault(f"{variant} {shape}", {})[index] = ratio
        for variant, entry in run.gate.get("variants", {}).items():
            if "peak_above_baseline_mb" in entry.get("memory", {}):
                series["memory"].setdefault(variant, {})[index] = entry["memory"][
                    "peak_above_baseline_mb"]
            if "bleu" in entry.get("quality", {}):
                series["bleu"].setdefault(variant, {})[index] = entry["quality"]["bleu"]
    return series


def trends(runs: list, path: Path) -> Path:
    """Median latency, ratio, peak memory and BLEU of every variant over the stored runs."""
    labels = [run.label for run in runs]
    figure, axes = plt.subplots(2, 2, figsize=(15, 8))
    series = trend_series(runs)
    titles = {"latency": ("median latency", "ms"),
              "ratio": ("latency ratio to pytorch-fp32", "ratio (x)"),
              "memory": ("peak memory above baseline", "MB"), "bleu": ("BLEU", "BLEU")}
    for axis, (key, lines) in zip(axes.flat, series.items()):
        for name, points in sorted(lines.items()):
            xs = sorted(i for i, v in points.items() if v is not None)
            axis.plot(xs, [points[i] for i in xs], marker="o", label=name,
                      color=_colour(name.split(" ")[0]),
                      linestyle="-" if "b1-" in name or " " not in name else "--")
        axis.set_title(f"{titles[key][0]} over {len(runs)} runs"
                       + (" (equal lines overlap)" if key == "bleu" else ""))
        axis.set_ylabel(titles[key][1])
        axis.set_xticks(range(len(labels)), [label.split(" ")[0] for label in labels])
        axis.set_xlabel("run")
        if lines:  # outside the axes, so no point is hidden behind it
            axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(figure, path)
