"""Human reports of a run: report.md, the comparison table, and github-action-benchmark JSON.

Everything here reads the summary dict and the regression comparisons; nothing measures.
"""

from __future__ import annotations

import math
from pathlib import Path

from perf_tests.harness.changepoints import FOUND_WITHIN
from perf_tests.harness.files import written_whole
from perf_tests.harness.regression import Comparison, format_p
from perf_tests.harness.store import write_json
from perf_tests.harness.summary import table_lines

WORTH_CATCHING = 1.25  # a figure whose bound is above this: say the noise hides such a regression
DRIFT_WORTH_FINDING = 1.10  # the lasting drift: say where the noise hides one this small


def _latency_row(c: Comparison) -> str:
    name = f"{c.variant} latency {c.shape}"
    return (f"{name:<30} {c.baseline * 1000:>9.2f} {c.current * 1000:>9.2f} "
            f"{(c.machine_factor - 1) * 100:>+7.1f}% {(c.factor - 1) * 100:>+7.1f}% "
            f"{(c.detectable - 1) * 100:>+7.1f}% {format_p(c.p_value, '-'):>7}  "
            f"{'REGRESSED' if c.regressed else 'ok' if c.busy is None else 'not judged: busy'}")


def _other_row(c: Comparison) -> str:
    name = f"{c.variant} {c.kind}"
    return (f"{name:<30} {c.baseline:>9.2f} {c.current:>9.2f} {'-':>8} "
            f"{(c.factor - 1) * 100:>+7.1f}% {'-':>8} {'-':>7}  "
            f"{'REGRESSED' if c.regressed else 'ok'}")


def comparison_lines(comparisons: list[Comparison], baseline_label: str | None,
                     notes: list[str] = (), change_points: list = (),
                     drift_reach: dict | None = None) -> list[str]:
    """One row per compared figure. Latency: the usual best round on this machine and tonight's,
    the machine's mood (the other variants' shift tonight), the change the mood does not explain,
    and the smallest change this machine's noise lets the check catch tonight; then the change
    points of the history."""
    if baseline_label is None:
        return ["regression check: no baseline yet (first run on this machine): passed"]
    lines = [f"change since {baseline_label} (latency: best round, ms; change net of the machine)",
             f"{'figure':<30} {'usual':>9} {'now':>9} {'machine':>8} {'change':>8} "
             f"{'catches':>8} {'p':>7}  verdict"]
    lines += [_latency_row(c) if c.kind == "latency" else _other_row(c) for c in comparisons]
    hidden = [c for c in comparisons if c.kind == "latency" and c.detectable > WORTH_CATCHING]
    if hidden:
        lines.append(f"this machine's noise hides a {WORTH_CATCHING - 1:.0%} regression tonight in: "
                     + ", ".join(f"{c.variant} [{c.shape}] (catches "
                                 f"+{(c.detectable - 1) * 100:.0f}% or more)" for c in hidden))
    again = [c for c in comparisons if c.first_factor is not None]
    if again:
        changes = ", ".join(f"{c.variant} [{c.shape}] first {(c.first_factor - 1) * 100:+.1f}%, "
                            f"then {(c.factor - 1) * 100:+.1f}%" for c in again)
        lines.append("measured again, as their first measurement regressed against the history "
                     f"or failed a limit (the verdict is the second's): {changes}")
    busy = [c for c in comparisons if c.busy is not None]
    if busy:
        lines.append(f"the machine was busy: other processes took up to "
                     f"{max(c.busy for c in busy):.0%} of the CPUs during the rounds of "
                     f"{len(busy)} latency figures, which are not judged tonight (a neighbour "
                     "slows PyTorch more than the other engines); run the gate alone")
    lines += list(notes)
    failed = [c for c in comparisons if c.regressed]
    judged = len(comparisons) - len(busy)
    lines.append(f"regression check: {judged - len(failed)} ok, {len(failed)} regressed"
                 + (f", {len(busy)} not judged (busy machine)" if busy else ""))
    lines += change_point_lines(change_points)
    lines += drift_reach_lines(drift_reach or {})
    return lines


def change_point_lines(change_points: list) -> list[str]:
    if not change_points:
        return ["change points: none in the history"]
    failing = [cp for cp in change_points if cp.fails]
    return ([f"change points: {len(change_points)} found, {len(failing)} failing (a confirmed "
             "slowdown that lasts to tonight)"]
            + [f"  {'FAIL ' if cp.fails else ''}{cp.message}" for cp in change_points])


def variant_lines(variants: dict) -> list[str]:
    """Each variant's declaration, the levers its artifact uses and any fallback taken."""
    lines = []
    for name, entry in variants.items():
        declaration = entry.get("declaration")
        if declaration is None:  # summaries written before variants were declared
            continue
        how = declaration.get("folder") or ", ".join(
            f"{k} {v}" for k, v in declaration.get("recipe", {}).items()) or "no recipe"
        lines.append(f"- {name}: {declaration['engine']} ({how})")
        lines += [f"  - {lever}" for lever in entry.get("levers", [])]
        if entry.get("fallback"):
            lines.append(f"  - fallback: {entry['fallback']}")
    return lines


def drift_reach_lines(reach: dict) -> list[str]:
    """Per variant, the smallest lasting slowdown the change points confirm within
    FOUND_WITHIN runs (95 %), from its steadiest series; and where a 10 % drift stays hidden."""
    best: dict[str, tuple[float, str]] = {}
    for (variant, shape), factor in sorted(reach.items()):
        if math.isfinite(factor) and factor < best.get(variant, (math.inf, ""))[0]:
            best[variant] = (factor, shape)
    if not best:
        return []
    lines = [f"lasting slowdowns found within {FOUND_WITHIN} runs (95 %), from: " + ", ".join(
        f"{variant} x{factor:.3f} [{shape}]" for variant, (factor, shape) in best.items())]
    hidden = [variant for variant, (factor, _) in best.items() if factor > DRIFT_WORTH_FINDING]
    if hidden:
        lines.append(f"this history's noise hides a lasting {DRIFT_WORTH_FINDING - 1:.0%} "
                     f"drift of: {', '.join(hidden)}")
    return lines


def _sentences(summary: dict) -> str:
    """How many sentences the quality tests translated (--perf-sentences), as the scores say."""
    counts = {entry["quality"].get("sentences") for entry in summary["variants"].values()
              if entry.get("quality")}
    return f" ({counts.pop()} sentences)" if len(counts) == 1 and None not in counts else ""


def write_markdown(path: Path, summary: dict, check: list[str], plots: list[Path],
                   changes: dict) -> None:
    machine = summary["machine"]
    out = ["# seq2seq-perf-gate report", "",
           f"- created: {summary['created']}",
           f"- machine: {machine['arch']} / preset {machine['preset']} / {machine['cpu']} / "
           f"{machine['threads']} threads (CPUs: {machine.get('cpus_allowed', '?')} allowed of "
           f"{machine.get('cpus_total', '?')})",
           f"- profile: {summary['profile']}, {summary['rounds']} rounds, "
           f"{summary['new_tokens']} new tokens per latency call",
           f"- models: perf {summary['models']['perf']['name']}, quality "
           f"{summary['models']['quality']['name']} on {summary['quality_set']}"
           f"{_sentences(summary)}",
           "- libraries: " + ", ".join(f"{k} {v}" for k, v in summary["libraries"].items()),
           "", "## Figures", "", "```", *table_lines(summary, changes), "```", "",
           "## Verdicts", ""]
    out += [f"- {'PASS' if v['passed'] else 'FAIL'} {v['message']}" for v in summary["verdicts"]]
    out += [f"- not judged: {line}" for line in summary.get("not_judged", [])]
    out += ["", "## Variants", ""] + variant_lines(summary["variants"])
    out += ["", "## Change since the baseline, and change points", "", "```", *check, "```", "",
            "## sacrebleu signatures", ""]
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
    with written_whole(path) as tmp:
        tmp.write_text("\n".join(out) + "\n", encoding="utf-8")


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
