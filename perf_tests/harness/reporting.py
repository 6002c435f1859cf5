"""The end of a gate run: write the summary, compare with the history, draw and write reports.

Called once from the plugin's terminal summary, after pytest-benchmark has saved this run into
the history, so the trend plots include it and the baseline is chosen among the runs before it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from perf_tests.harness import history, latency, plots, regression, report, summary
from perf_tests.harness.progress import outline
from perf_tests.harness.regression import Comparison


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    regressed: list[Comparison] = field(default_factory=list)


def current_latency(gate) -> dict:
    """This run's latency entries in the shape history.Run.latency() gives earlier ones."""
    config = gate.config
    how = {"threads": config.threads, "new_tokens": config.new_tokens}
    return {key: {"data": result.samples_s,
                  "extra_info": {"paired_baseline_s": result.paired_baseline_s, **how}}
            for key, result in gate.store.latency.items()}


@dataclass
class HistoryComparison:
    comparisons: list[Comparison] = field(default_factory=list)
    label: str | None = None  # None: no earlier run
    notes: list[str] = field(default_factory=list)


def compare_with_history(gate, data: dict, runs: list, second_window=None) -> HistoryComparison:
    """``second_window(variant, shape)`` re-measures a suspect (default: latency.second_window)."""
    config = gate.config
    if second_window is None:
        def second_window(variant, shape):
            return latency.second_window(gate.pool, config, variant, shape)
    pool = history.select_pool(runs, config.baseline_run, gate.run_id, config.baseline_runs)
    if not pool:
        return HistoryComparison()
    found = HistoryComparison(label=history.pool_label(pool))
    needed = min(regression.MIN_POOL, config.baseline_runs)
    if config.baseline_run != "latest" or len(pool) >= needed:
        found.comparisons = _confirmed(current_latency(gate), [run.latency() for run in pool],
                                       config, found, second_window)
    else:
        found.notes.append(f"latency not judged yet: {len(pool)} earlier run(s), the check needs "
                           f"{needed} (one run is too noisy a baseline on a shared machine)")
    latest = pool[-1]  # memory, disk and quality: against the most recent run of the pool
    found.comparisons += regression.compare_summaries(data, latest.gate, latest.label)
    return found


def _confirmed(current: dict, pool: list[dict], config, found: HistoryComparison,
               second_window) -> list[Comparison]:
    """Compare; re-measure each suspect in a second window and judge both windows together."""
    factor, alpha = config.regression_factor, config.regression_alpha
    comparisons = regression.compare_latency(current, pool, factor, alpha, found.label,
                                             baseline=config.baseline)
    for index, first in enumerate(comparisons):
        if not first.regressed:  # a suspect: large and significant in the first window
            continue
        key = (first.variant, first.shape)
        with outline(f"re-measuring {first.variant} [{first.shape}] in a second window: best "
                     f"round {first.factor:.2f}x the baseline's"):
            window = second_window(*key)
        # the whole run again, this key with both windows: the machine's drift needs the rest
        both = {**current, key: regression.with_second_window(current[key], window)}
        judged = regression.compare_key(both, key, pool, factor, alpha,
                                        f"{found.label}; both windows", config.baseline)
        comparisons[index] = judged
        found.notes.append(f"{first.variant} [{first.shape}]: second window best round "
                           f"{min(window['data']) * 1000:.1f} ms (first {first.current * 1000:.1f}"
                           f" ms): {'regression confirmed' if judged.regressed else 'not confirmed'}")
    return comparisons


def finish_run(gate) -> Outcome:
    config = gate.config
    latest = config.results_dir / "latest"
    data = summary.write(gate)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", history.HistoryWarning)
        runs = history.load_runs(history.storage_folder(config.results_dir, config.arch))
    outcome = Outcome([f"perf-gate: WARNING {w.message}" for w in caught])
    found = compare_with_history(gate, data, runs)
    comparisons, baseline_label = found.comparisons, found.label
    outcome.regressed = [c for c in comparisons if c.regressed]
    pngs = [plots.latency_bars(data, latest / "latency.png")]
    if any("memory" in v for v in data["variants"].values()):
        pngs.append(plots.memory_bars(data, latest / "memory.png"))
    if any("quality" in v for v in data["variants"].values()):
        pngs.append(plots.quality_bars(data, latest / "quality.png"))
    if runs:
        pngs.append(plots.trends(runs, latest / "trends.png"))
    changes = {(c.variant, c.shape): c.factor for c in comparisons if c.kind == "latency"}
    report.write_markdown(latest / "report.md", data, comparisons, baseline_label, pngs, changes,
                          found.notes)
    action_files = report.write_action_benchmark(latest, data)
    outcome.lines += summary.table_lines(data, changes)
    outcome.lines += [""] + report.comparison_lines(comparisons, baseline_label, found.notes)
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
