"""The end of a gate run: write the summary, compare with the history, draw and write reports.

Called once from the plugin's terminal summary, after pytest-benchmark has saved this run into
the history, so the trend plots include it and the baseline is chosen among the runs before it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from perf_tests.harness import changepoints, history, plots, regression, report, summary
from perf_tests.harness.regression import Comparison


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    regressed: list[Comparison] = field(default_factory=list)
    change_points: list[changepoints.ChangePoint] = field(default_factory=list)  # failing ones

    @property
    def failures(self) -> list[str]:
        return [c.message for c in self.regressed] + [cp.message for cp in self.change_points]


def current_latency(gate) -> dict:
    """This run's latency entries in the shape history.Run.latency() gives earlier ones, with
    the second measurement of each figure measured again (confirm.py)."""
    config = gate.config
    how = {"threads": config.threads, "new_tokens": config.new_tokens}
    found = {}
    for key, result in gate.store.latency.items():
        info = {"paired_baseline_s": result.paired_baseline_s, **how, **result.shares()}
        if key in gate.store.latency_again:
            info["measured_again"] = gate.store.latency_again[key].as_measured_again()
        found[key] = {"data": result.samples_s, "extra_info": info}
    return found


@dataclass
class HistoryComparison:
    comparisons: list[Comparison] = field(default_factory=list)
    label: str | None = None  # None: no earlier run
    notes: list[str] = field(default_factory=list)
    change_points: list[changepoints.ChangePoint] = field(default_factory=list)
    drift_reach: dict = field(default_factory=dict)  # (variant, shape) -> factor


def latency_check(gate, runs: list, current: dict) -> tuple[list, list[Comparison], list]:
    """Tonight's latency against the pool: (the pool, the comparisons, the latency entries of
    the runs the noise is read from); no pool, no comparison."""
    config = gate.config
    pool = history.select_pool(runs, config.baseline_run, gate.run_id, config.baseline_runs)
    if not pool:
        return [], [], []
    earlier = [run for run in runs if run.run_id != gate.run_id]
    pinned = config.baseline_run != "latest"
    noise_pool = earlier[-config.baseline_runs:] if pinned else pool
    rule = regression.Rule(config.regression_factor, config.false_alarm_rate,
                           config.measure_again != "never")
    noise_entries = [run.latency() for run in noise_pool]
    comparisons = regression.compare_latency(
        current, noise_entries, rule, history.pool_label(pool),
        reference=pool[-1].latency() if pinned else None,
        pool_label=history.pool_label(noise_pool))
    return pool, comparisons, noise_entries


def compare_with_history(gate, data: dict, runs: list) -> HistoryComparison:
    """Tonight against the pool (latency calibrated on its noise; memory, disk and scores against
    its newest run), and the change points of the history up to tonight."""
    current = current_latency(gate)
    pool, comparisons, noise_entries = latency_check(gate, runs, current)
    if not pool:
        return HistoryComparison()
    found = HistoryComparison(comparisons, label=history.pool_label(pool),
                              notes=list(gate.check_notes))
    if current and not found.comparisons:
        # a run at another thread count, or beside a neighbour, tells nothing of the noise
        comparable = sum(bool(regression.usable(current, run)) for run in noise_entries)
        found.notes.append(f"latency not judged yet: {comparable} comparable earlier run(s) of "
                           f"{len(noise_entries)}, the check needs {regression.MIN_POOL} to "
                           "measure this machine's noise")
    elif current:  # a variant or shape new to the history: said, not passed over
        found.notes += regression.too_few_runs(current, noise_entries)
    earlier = [run for run in runs if run.run_id != gate.run_id]
    # memory, disk and quality: each against the most recent run of the pool that measured it
    summaries, notes = regression.compare_summaries(data, [(run.gate, run.label) for run in pool])
    found.comparisons += summaries
    found.notes += notes
    tonight = [run for run in runs if run.run_id == gate.run_id]
    if tonight and current:
        found.change_points = changepoints.find(earlier + tonight, current)
        found.drift_reach = changepoints.reach(earlier + tonight, current)
    return found


def regression_record(found: HistoryComparison) -> dict:
    """The regression check's figures for summary.json (keys in results/README.md)."""
    return {
        "baseline": found.label,
        "comparisons": [{"kind": c.kind, "variant": c.variant, "shape": c.shape,
                         "baseline": c.baseline, "current": c.current,
                         "factor": round(c.factor, 4), "regressed": c.regressed,
                         "machine_factor": c.machine_factor and round(c.machine_factor, 4),
                         "detectable_factor": c.detectable and round(c.detectable, 4),
                         "busy_share": c.busy and round(c.busy, 4),
                         "first_factor": c.first_factor and round(c.first_factor, 4),
                         "message": c.message} for c in found.comparisons],
        "change_points": [{"variant": cp.variant, "shape": cp.shape, "shift": round(cp.shift, 4),
                           "before": cp.before.label, "after": cp.after.label,
                           "runs_before": cp.runs_before, "runs_after": cp.runs_after,
                           "p_value": cp.p_value, "confirmed": cp.confirmed,
                           "fails": cp.fails, "causes": cp.causes()}
                          for cp in found.change_points],
        "drift_reach": [{"variant": variant, "shape": shape, "factor": round(factor, 4)}
                        for (variant, shape), factor in sorted(found.drift_reach.items())
                        if math.isfinite(factor)],
        "notes": found.notes,
    }


def _remove_stale(latest, drawn: list, scored: set[str]) -> None:
    """What an earlier run left in latest/ and tonight did not write again: beside tonight's
    summary, last week's memory plot or another variant's translations would be read as
    tonight's (a run of the latency tests alone draws no memory or quality plot). The history
    keeps every run's figures; latest/ is tonight's alone."""
    for old in latest.glob("*.png"):
        if old not in drawn:
            old.unlink(missing_ok=True)
    for old in (latest / "hypotheses").glob("*.txt"):
        if old.stem not in scored:
            old.unlink(missing_ok=True)


def finish_run(gate) -> Outcome:
    config = gate.config
    latest = config.results_dir / "latest"
    data = summary.build(gate)
    # written first without the history's check, and again with it: an error in the check
    # (a history nobody foresaw) must not lose tonight's figures
    summary.write(gate, data)
    with warnings.catch_warnings(record=True) as caught:  # a damaged file: named, skipped
        warnings.simplefilter("always", history.HistoryWarning)
        runs = history.load_runs(history.storage_folder(config.results_dir, config.arch))
        found = compare_with_history(gate, data, runs)
    outcome = Outcome(sorted({f"perf-gate: WARNING {w.message}" for w in caught
                              if issubclass(w.category, history.HistoryWarning)}))
    summary.write(gate, {**data, "regression": regression_record(found)})
    comparisons, baseline_label = found.comparisons, found.label
    outcome.regressed = [c for c in comparisons if c.regressed]
    outcome.change_points = [cp for cp in found.change_points if cp.fails]
    pngs = [plots.latency_bars(data, latest / "latency.png")]
    if any("memory" in v for v in data["variants"].values()):
        pngs.append(plots.memory_bars(data, latest / "memory.png"))
    if any("quality" in v for v in data["variants"].values()):
        pngs.append(plots.quality_bars(data, latest / "quality.png"))
    if any("tokens" in v for v in data["variants"].values()):
        pngs.append(plots.token_bars(data, latest / "tokens.png"))
    if any("sweep" in v for v in data["variants"].values()):
        pngs.append(plots.sweep_lines(data, latest / "sweep.png"))
    if runs:
        pngs.append(plots.trends(runs, latest / "trends.png"))
    _remove_stale(latest, pngs, set(gate.store.measured_quality()))
    changes = {(c.variant, c.shape): c.factor for c in comparisons if c.kind == "latency"}
    check = report.comparison_lines(comparisons, baseline_label, found.notes,
                                    found.change_points, found.drift_reach)
    report.write_markdown(latest / "report.md", data, check, pngs, changes)
    action_files = report.write_action_benchmark(latest, data)
    outcome.lines += summary.table_lines(data, changes)
    outcome.lines += [""] + check
    built, reused = data["artifacts"]["built"], data["artifacts"]["reused"]
    rebuilt = data["artifacts"]["rebuilt"]
    outcome.lines += ["", f"artifacts: {len(built)} built ({', '.join(built) or 'none'}), "
                      f"{len(reused)} reused from the cache ({', '.join(reused) or 'none'}; "
                      f"{data['artifacts']['verified_mb']:.0f} MB hashed to verify them)"
                      + (f", {len(rebuilt)} built again ({', '.join(rebuilt)})" if rebuilt else "")]
    outcome.lines += [f"files: {latest / 'summary.json'}, {latest / 'report.md'}, "
                      + ", ".join(p.name for p in pngs + action_files),
                      f"history: {len(runs)} runs in "
                      f"{history.storage_folder(config.results_dir, config.arch)}"]
    return outcome
