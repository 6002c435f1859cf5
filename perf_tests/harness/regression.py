"""The regression check: this run against a stored baseline run, without crying wolf.

As asv does, a latency change counts only when it is both large (a median factor above 1.10 by
default) and significant (one-sided Mann-Whitney U, p below alpha). For a candidate the figure
compared is its per-round ratio to the interleaved baseline rounds, not its absolute time: on this
2-core machine whole runs drift (unchanged runs moved single variants by up to 19 % in absolute
time, with p = 0.004, every round of one run above every round of the other), and the machine's
drift hits both partners of a round alike. The candidate's own median must also have grown, so
that a baseline that got faster is not blamed on the candidate. The baseline variant has no
partner; its absolute latency needs a larger factor (1.25 by default). Memory, size on disk and
quality have no run-to-run noise worth a test: they regress past a fixed tolerance.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from scipy.stats import mannwhitneyu

DEFAULT_FACTOR = 1.10
DEFAULT_ALPHA = 0.01  # with 5 rounds a side, the smallest one-sided p is 1/252 = 0.004
ABSOLUTE_ONLY_FACTOR = 1.25  # for the baseline variant, which has no interleaved partner
MEMORY_TOLERANCE = 0.10  # peak memory may grow 10 % (plus 5 MB) before it counts
MEMORY_SLACK_MB = 5.0
DISK_TOLERANCE = 0.01
SCORE_DROP = 0.5  # BLEU or chrF points


@dataclass(frozen=True)
class Comparison:
    kind: str  # "latency", "ratio", "memory", "disk", "bleu", "chrf"
    variant: str
    shape: str  # "" where the figure has no shape
    baseline: float
    current: float
    factor: float
    p_value: float | None
    regressed: bool
    message: str
    ratio_factor: float | None = None
    ratio_p_value: float | None = None


def _significant(current: list[float], baseline: list[float], alpha: float) -> float | None:
    if len(current) < 2 or len(baseline) < 2:
        return None
    return float(mannwhitneyu(current, baseline, alternative="greater").pvalue)


def compare_samples(kind: str, variant: str, shape: str, current: list[float],
                    baseline: list[float], factor_limit: float, alpha: float, unit: str,
                    scale: float, label: str) -> Comparison:
    new, old = statistics.median(current), statistics.median(baseline)
    factor = new / old if old else float("inf")
    p_value = _significant(current, baseline, alpha)
    regressed = factor > factor_limit and p_value is not None and p_value < alpha
    what = "median latency" if kind == "latency" else "median ratio to baseline"
    verdict = "regressed" if regressed else "unchanged"
    p_text = "n/a" if p_value is None else f"{p_value:.4f}"
    message = (f"{variant} [{shape}] {what} {verdict}: {new * scale:.3f}{unit} vs "
               f"{old * scale:.3f}{unit} in {label}, factor {factor:.3f} (limit {factor_limit:.2f}),"
               f" Mann-Whitney U p={p_text} (alpha {alpha})")
    return Comparison(kind, variant, shape, old, new, factor, p_value, regressed, message)


def _round_ratios(samples: list[float], paired: list[float]) -> list[float]:
    return [c / b for c, b in zip(samples, paired) if b]


def compare_latency(current: dict, baseline: dict, factor: float, alpha: float,
                    label: str, absolute_only_factor: float = ABSOLUTE_ONLY_FACTOR
                    ) -> list[Comparison]:
    """current/baseline: (variant, shape) -> {"data": [...], "extra_info": {...}}."""
    out = []
    for key in sorted(set(current) & set(baseline)):
        variant, shape = key
        now, then = current[key], baseline[key]
        if not (now["data"] and then["data"]):
            continue
        absolute = compare_samples("latency", variant, shape, now["data"], then["data"],
                                   factor, alpha, " ms", 1000, label)
        now_ratios = _round_ratios(now["data"], now["extra_info"].get("paired_baseline_s", []))
        then_ratios = _round_ratios(then["data"],
                                    then["extra_info"].get("paired_baseline_s", []))
        if now_ratios and then_ratios:
            ratio = compare_samples("ratio", variant, shape, now_ratios, then_ratios,
                                    factor, alpha, "", 1, label)
            regressed = ratio.regressed and absolute.factor > 1.0
            detail = (f"; ratio to the interleaved baseline {ratio.current:.3f} vs "
                      f"{ratio.baseline:.3f}, factor {ratio.factor:.3f} (limit {factor:.2f}),"
                      f" Mann-Whitney U p={format_p(ratio.p_value)}")
        else:
            ratio = None
            regressed = (absolute.factor > absolute_only_factor and absolute.p_value is not None
                         and absolute.p_value < alpha)
            detail = f" (no interleaved partner: needs factor > {absolute_only_factor:.2f})"
        verdict = "regressed" if regressed else "unchanged"
        message = (f"{variant} [{shape}] latency {verdict}: median {absolute.current * 1000:.1f} ms "
                   f"vs {absolute.baseline * 1000:.1f} ms in {label} (factor {absolute.factor:.3f},"
                   f" p={format_p(absolute.p_value)}){detail} (alpha {alpha})")
        out.append(Comparison("latency", variant, shape, absolute.baseline, absolute.current,
                              absolute.factor, absolute.p_value, regressed, message,
                              ratio.factor if ratio else None, ratio.p_value if ratio else None))
    return out


def format_p(value: float | None, missing: str = "n/a") -> str:
    return missing if value is None else f"{value:.4f}"


def _growth(kind, variant, new, old, tolerance, slack, unit, label) -> Comparison:
    factor = new / old if old else float("inf")
    regressed = new > old * (1 + tolerance) + slack
    verdict = "grew" if regressed else "unchanged"
    message = (f"{variant} {kind} {verdict}: {new:.1f} {unit} vs {old:.1f} {unit} in {label}, "
               f"factor {factor:.3f} (tolerance {tolerance:.0%} + {slack:g} {unit})")
    return Comparison(kind, variant, "", old, new, factor, None, regressed, message)


def _drop(kind, variant, new, old, label) -> Comparison:
    regressed = new < old - SCORE_DROP
    verdict = "dropped" if regressed else "unchanged"
    message = (f"{variant} {kind} {verdict}: {new:.2f} vs {old:.2f} in {label} "
               f"(tolerance {SCORE_DROP} points)")
    return Comparison(kind, variant, "", old, new, new / old if old else 0.0, None, regressed,
                      message)


def compare_summaries(current: dict, baseline: dict, label: str) -> list[Comparison]:
    """Memory, size on disk, BLEU and chrF of each variant, from the two runs' summaries."""
    out = []
    old_variants = baseline.get("variants", {})
    for variant, now in current.get("variants", {}).items():
        then = old_variants.get(variant, {})
        if "memory" in now and "memory" in then:
            out.append(_growth("peak memory", variant, now["memory"]["peak_above_baseline_mb"],
                               then["memory"]["peak_above_baseline_mb"], MEMORY_TOLERANCE,
                               MEMORY_SLACK_MB, "MB", label))
        if "disk_mb" in now and "disk_mb" in then:
            out.append(_growth("size on disk", variant, now["disk_mb"], then["disk_mb"],
                               DISK_TOLERANCE, 0.0, "MB", label))
        for score in ("bleu", "chrf"):
            if score in now.get("quality", {}) and score in then.get("quality", {}):
                out.append(_drop(score.replace("bleu", "BLEU").replace("chrf", "chrF"), variant,
                                 now["quality"][score], then["quality"][score], label))
    return out
