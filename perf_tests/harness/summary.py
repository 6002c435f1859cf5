"""The machine-readable summary (results/latest/summary.json) and the closing terminal table.

Keys are documented in results/README.md; changing one is a schema change (bump SCHEMA).
"""

from __future__ import annotations

import time

from perf_tests.harness.cache import library_versions
from perf_tests.harness.progress import STEPS
from perf_tests.harness.store import write_json

SCHEMA = 1
EXTRA_LIBRARIES = ("sacrebleu", "pytest-benchmark", "numpy", "tokenizers", "sentencepiece")


def _variant_entry(gate, variant: str) -> dict:
    store, config = gate.store, gate.config
    entry: dict = {"declaration": gate.pool.spec(variant).as_dict(), "latency": {}}
    built = gate.pool.built(variant)
    entry.update({key: built[key] for key in ("levers", "fallback") if built.get(key)})
    for (name, shape), result in store.latency.items():
        if name == variant:
            entry["latency"][shape] = _latency_entry(result, store.latency_again.get((name, shape)))
    timings = {shape: t.as_dict() for (name, shape), t in store.tokens.items() if name == variant}
    if timings:
        entry["tokens"] = timings
    sweep = {shape: t.as_dict() for (name, shape), t in store.sweep.items() if name == variant}
    if sweep:
        entry["sweep"] = sweep
    memory = store.measured_memory().get(variant)
    if memory:
        # no load time: the probes run side by side (latency's load_s is measured alone)
        entry["memory"] = {k: memory[k] for k in ("baseline_mb", "load_mb", "peak_mb",
                                                  "peak_above_baseline_mb", "shape", "calls")}
        entry["disk_mb"] = memory["disk_mb"]
    quality = store.measured_quality().get(variant)
    if quality:
        entry["quality"] = dict(quality)
        if config.baseline in store.measured_quality():
            matched, total = store.exact_match(variant, config.baseline)
            entry["quality"]["exact_match_rate"] = round(matched / total, 4)
    return entry


def _latency_entry(first, again) -> dict:
    """A test's latency figures: those of its second measurement where it was measured again,
    since the verdicts judge that one (a stall of the host in the first is what measuring again
    is for), with the first kept beside it; the table, the plots and the dashboards' files read
    these, so they show what was judged."""
    if again is None:
        return first.as_dict()
    return {**again.as_dict(), "measured_again": True, "first_measurement": first.as_dict()}


def _plant(plant) -> str | None:
    """A planted regression, as --perf-plant spells it (None: nothing planted)."""
    if plant is None:
        return None
    amount = f"slowdown={plant.slowdown:g}" if plant.slowdown else f"noise={plant.noise:g}"
    return f"{plant.variant}:{amount}"


def build(gate) -> dict:
    config, store = gate.config, gate.store
    cache = gate.pool.cache
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"arch": config.arch, "preset": config.preset, "cpu": config.cpu.model_name,
                    "threads": config.threads, "cpus_allowed": config.cpu.cpus_allowed,
                    "cpus_total": config.cpu.cpus_total},
        "profile": config.profile.name, "new_tokens": config.new_tokens,
        "rounds": config.rounds, "baseline": config.baseline,
        "plant": _plant(config.plant),
        "models": {role: {"name": spec.name, "kind": spec.kind, "fingerprint": spec.fingerprint,
                          "prefix": spec.prefix, "parameters": spec.parameters,
                          "quality_max_new_tokens": spec.quality_max_new_tokens}
                   for role, spec in gate.specs.items()},
        "quality_set": store.quality_set.name if store.quality_set else None,
        "memory_shape": store.memory_shape,
        "libraries": {**library_versions(), **library_versions(EXTRA_LIBRARIES)},
        "variants": {v: _variant_entry(gate, v) for v in config.variants},
        "verdicts": [{"passed": v.passed, "message": v.message} for v in gate.verdicts],
        "not_judged": list(gate.not_judged),
        "artifacts": {"built": cache.built, "reused": cache.reused, "rebuilt": cache.rebuilt,
                      "verified_mb": round(cache.verified_bytes / 1e6, 1)},
        "steps": [{"label": s.label, "depth": s.depth, "seconds": round(s.seconds, 2),
                   "failed": s.failed} for s in STEPS],
    }


def write(gate, data: dict | None = None) -> dict:
    data = data if data is not None else build(gate)
    write_json(gate.config.results_dir / "latest" / "summary.json", data)
    return data


def _cell(value, fmt: str) -> str:
    """``value`` formatted, or "-" right-aligned in the same width when there is none."""
    if isinstance(value, (int, float)):
        return format(value, fmt)
    width = fmt.split(".")[0]
    return format("-", f">{width}") if width.isdigit() else "-"


def _change(factor: float | None) -> str:
    return f"{(factor - 1) * 100:>+7.1f}%" if factor is not None else f"{'-':>8}"


def token_lines(data: dict) -> list[str]:
    """Per-token figures, one table per shape (variants without them are left out)."""
    shapes = sorted({s for v in data["variants"].values() for s in v.get("tokens", {})})
    lines = []
    for shape in shapes:
        lines += ["", f"per-token figures {shape} (greedy, {data['new_tokens']} new tokens; "
                  "outside the judged rounds)",
                  f"{'variant':<14} {'call ms':>9} {'encoder ms':>11} {'1st token ms':>13} "
                  f"{'per token ms':>13} {'tokens/s':>9}"]
        for name, entry in data["variants"].items():
            figures = entry.get("tokens", {}).get(shape)
            if figures:
                lines.append(f"{name:<14} {figures['call_ms']:>9.1f} "
                             f"{_cell(figures['encoder_ms'], '11.2f')} "
                             f"{_cell(figures['first_token_ms'], '13.2f')} "
                             f"{_cell(figures['per_token_ms'], '13.3f')} "
                             f"{figures['tokens_per_s']:>9.1f}")
    return lines


def table_lines(data: dict, changes: dict | None = None) -> list[str]:
    """One table per shape: latency, ratio, memory, disk, quality and the change since the
    history (``changes``: (variant, shape) -> latency change net of the machine's mood)."""
    changes = changes or {}
    shapes = sorted({s for v in data["variants"].values() for s in v["latency"]}) or ["-"]
    header = (f"{'variant':<14} {'median ms':>10} {'p90 ms':>9} {'ratio':>7} {'peak MB':>8} "
              f"{'disk MB':>8} {'BLEU':>6} {'chrF':>6} {'exact':>6} {'vs base':>8}")
    lines = [f"{data['machine']['arch']}/{data['machine']['preset']}, "
             f"{data['machine']['threads']} threads, profile {data['profile']}, "
             f"perf model {data['models']['perf']['name']}, "
             f"quality model {data['models']['quality']['name']}"]
    for shape in shapes:
        lines += ["", f"shape {shape} (peak memory at {data['memory_shape']})", header]
        for name, entry in data["variants"].items():
            latency = entry["latency"].get(shape, {})
            quality = entry.get("quality", {})
            measured_baseline = name == data["baseline"] and "median_ms" in latency
            ratio = latency.get("ratio_to_baseline", 1.0 if measured_baseline else None)
            lines.append(
                f"{name:<14} {_cell(latency.get('median_ms'), '10.1f')} "
                f"{_cell(latency.get('p90_ms'), '9.1f')} {_cell(ratio, '7.3f')} "
                f"{_cell(entry.get('memory', {}).get('peak_above_baseline_mb'), '8.1f')} "
                f"{_cell(entry.get('disk_mb'), '8.1f')} {_cell(quality.get('bleu'), '6.2f')} "
                f"{_cell(quality.get('chrf'), '6.2f')} "
                f"{_cell(quality.get('exact_match_rate'), '6.3f')} "
                f"{_change(changes.get((name, shape)))}")
    lines += token_lines(data)
    capped = {name: entry["quality"]["capped"] for name, entry in data["variants"].items()
              if entry.get("quality", {}).get("capped")}
    if capped:
        lines += ["", "hypotheses that hit the length cap (no end of sequence): "
                  + ", ".join(f"{name} {count}" for name, count in capped.items())]
    failed = [v["message"] for v in data["verdicts"] if not v["passed"]]
    lines += ["", f"verdicts: {len(data['verdicts']) - len(failed)} passed, {len(failed)} failed"]
    lines += [f"  FAILED {message}" for message in failed]
    return lines
