"""Human reports of a run: report.md, the comparison table, and github-action-benchmark JSON.

Everything here reads the summary dict and the regression comparisons; nothing measures.
"""

from __future__ import annotations

from pathlib import Path

from perf_tests.harness.regression import Comparison, format_p
from perf_tests.harness.store import write_json
from perf_tests.harness.summary import table_lines


def comparison_lines(comparisons: list[Comparison], baseline_label: str | None,
                     notes: list[str] = ()) -> list[str]:
    """One row per compared figure: baseline, now, change and p; for latency the best round
    (the baseline's is the median over its runs), the change of its ratio to the interleaved
    baseline rounds (a fall of more than 5 % vetoes) and the machine's drift where the change was
    judged over it (the messages say how)."""
    if baseline_label is None:
        return ["regression check: no baseline yet (first run on this machine): passed"]
    lines = [f"change since {baseline_label} (latency: best round, ms)",
             f"{'figure':<30} {'baseline':>9} {'now':>9} {'change':>8} {'p':>7} "
             f"{'ratio chg':>9} {'machine':>8}  verdict"]
    for c in comparisons:
        name = f"{c.variant} {c.kind}" + (f" {c.shape}" if c.shape else "")
        scale = 1000 if c.kind == "latency" else 1
        ratio = (f"{(c.ratio_factor - 1) * 100:>+8.1f}%" if c.ratio_factor is not None
                 else f"{'-':>9}")
        machine = (f"{(c.machine_factor - 1) * 100:>+7.1f}%" if c.machine_factor is not None
                   else f"{'-':>8}")
        lines.append(f"{name:<30} {c.baseline * scale:>9.2f} {c.current * scale:>9.2f} "
                     f"{(c.factor - 1) * 100:>+7.1f}% {format_p(c.p_value, '-'):>7} {ratio} "
                     f"{machine}  "
                     f"{'REGRESSED' if c.regressed else 'ok'}")
    failed = [c for c in comparisons if c.regressed]
    lines += list(notes)
    lines.append(f"regression check: {len(comparisons) - len(failed)} ok, {len(failed)} regressed")
    return lines


def write_markdown(path: Path, summary: dict, comparisons: list[Comparison],
                   baseline_label: str | None, plots: list[Path], changes: dict,
                   notes: list[str] = ()) -> None:
    machine = summary["machine"]
    out = ["# seq2seq-perf-gate report", "",
           f"- created: {summary['created']}",
           f"- machine: {machine['arch']} / preset {machine['preset']} / {machine['cpu']} / "
           f"{machine['threads']} threads (CPUs: {machine.get('cpus_allowed', '?')} allowed of "
           f"{machine.get('cpus_total', '?')})",
           f"- profile: {summary['profile']}, {summary['rounds']} rounds, "
           f"{summary['new_tokens']} new tokens per latency call",
           f"- models: perf {summary['models']['perf']['name']}, quality "
           f"{summary['models']['quality']['name']} on {summary['quality_set']}",
           "- libraries: " + ", ".join(f"{k} {v}" for k, v in summary["libraries"].items()),
           "", "## Figures", "", "```", *table_lines(summary, changes), "```", "",
           "## Verdicts", ""]
    out += [f"- {'PASS' if v['passed'] else 'FAIL'} {v['message']}" for v in summary["verdicts"]]
    out += ["", "## Change since the baseline", "", "```",
            *comparison_lines(comparisons, baseline_label, notes), "```", "", "## sacrebleu signatures", ""]
    for name, entry in summary["variants"].items():
        quality = entry.get("quality")
        if quality:
            out.append(f"- {name}: BLEU {quality['bleu_signature']}; chrF "
                       f"{quality['chrf_signature']}; {quality.get('capped', '?')} of "
                       f"{quality.get('sentences', '?')} hypotheses hit the length cap "
                       f"({quality.get('length_cap', '?')} new tokens)")
    out += ["", "## Long steps", ""]
    out += [f"- {'  ' * s['depth']}{s['label']}: {s['seconds']:.1f} s"
            + (" (FAILED)" if s["failed"] else "") for s in summary["steps"]]
    out += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_action_benchmark(folder: Path, summary: dict) -> list[Path]:
    """github-action-benchmark's customSmallerIsBetter and customBiggerIsBetter files."""
    smaller, bigger = [], []
    for name, entry in summary["variants"].items():
        for shape, latency in entry["latency"].items():
            smaller.append({"name": f"{name} {shape} median latency", "unit": "ms",
                            "value": latency["median_ms"],
                            "extra": f"p90 {latency['p90_ms']:.1f} ms"})
            if "ratio_to_baseline" in latency:
                smaller.append({"name": f"{name} {shape} latency ratio", "unit": "x",
                                "value": latency["ratio_to_baseline"]})
        if "memory" in entry:
            smaller.append({"name": f"{name} peak memory", "unit": "MB",
                            "value": entry["memory"]["peak_above_baseline_mb"]})
            smaller.append({"name": f"{name} size on disk", "unit": "MB",
                            "value": entry["disk_mb"]})
        for score in ("bleu", "chrf"):
            if score in entry.get("quality", {}):
                bigger.append({"name": f"{name} {score}", "unit": score,
                               "value": entry["quality"][score]})
    paths = [folder / "benchmark-smaller-is-better.json", folder / "benchmark-bigger-is-better.json"]
    write_json(paths[0], smaller)
    write_json(paths[1], bigger)
    return paths
