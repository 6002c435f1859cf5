"""The regression check: this run against the runs before it, without crying wolf.

As asv does, a latency change counts only when it is both large (a factor above 1.10 by default)
and significant (one-sided Mann-Whitney U, p below alpha). What keeps a shared 2-core VM from
crying wolf was measured on 20 unchanged runs in a row and in the fidelity test
(results/README.md):

- The figure compared is a variant's best round, not its median: a noisy neighbour only ever
  adds time, so the best round moves least between unchanged runs (onnx-int8's best stayed within
  113-128 ms over 18 of 20 runs while its median wandered over 115-174 ms).
- The baseline is a pool of the last few comparable runs (5 by default): the median of their
  best rounds, and all their rounds for the test, so one lucky or unlucky run is outvoted.
- A change that is large and significant is a suspect: before it can fail the gate, the run
  measures it again in a second window, at the end of the run, and judges both windows' rounds
  together, so both windows must be slow. A slow spell of the machine rarely lasts into the
  second window; a real regression does.

The ratio to the interleaved pytorch-fp32 rounds is no condition for a regression: it moved by
up to 15 % either way between unchanged runs, and in planted runs the interleaved pytorch-fp32
rounds slowed too (a 25 % plant showed a ratio change of -1.3 % to +57 %), so required to grow
(by 4 %) it hid 1 to 2 of 5 planted slowdowns in three fidelity sessions. It only vetoes: when it
fell by more than 5 %, the baseline's rounds slowed more than the candidate's, which is the
machine, not the candidate (an unchanged onnx-o3 run: best round +26.6 % in both windows of one
process, ratio -11.1 %).

What the veto and the second window do not catch is a machine that stays slow for a whole run (an
unchanged tox run failed so: onnx-fp32 best round +39.6 % and pytorch-fp32 +30.8 % in the same run,
both confirmed by their second windows, onnx-fp32's ratio -3.2 %). So each comparison reads the
machine's drift off the baseline variant: for a candidate, pytorch-fp32's best round at the same
shape, both in its own test and in the rounds interleaved with the candidate (the lesser of the two
growths, so a slow spell in one of them is not taken for the machine); for pytorch-fp32, the median
growth of the candidates at its shape. When that drift passes the factor itself, the machine was
slow: the candidate is judged on its growth over the drift, against a limit of 1.20, and the pool's
rounds are scaled by the drift for the test. The limit is higher because a slow machine does not
slow every variant alike: the ONNX Runtime variants lost more than pytorch-fp32 (onnx-fp32 +39.6 %
vs +30.8 % in that tox run; onnx-int8 +30.5 % to +48.8 % vs +30.2 % to +33.9 % with every variant
planted 30 % slower), so over the drift an unchanged candidate still read up to 1.118. A drift
under the factor is noise and changes nothing, so it cannot hide a planted slowdown on a steady
machine.

The baseline variant's best round, which moves more between runs (233-425 ms as a partner over
20 unchanged runs), needs a larger factor (1.25 by default). Latency is judged once 3 earlier
runs exist: against a single run, the replay of 20 unchanged runs caught at most 16 of 19 planted
slowdowns. Memory, size on disk and quality have no run-to-run noise worth a test: they regress
past a fixed tolerance against the most recent run of the pool.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from scipy.stats import mannwhitneyu

from perf_tests.harness.config import BASELINE

DEFAULT_FACTOR = 1.10
DEFAULT_ALPHA = 0.05  # the factors guard against false alarms; the test against one odd round
RATIO_VETO = 0.95  # a ratio that fell this far: the interleaved baseline slowed more, the machine did
ABSOLUTE_ONLY_FACTOR = 1.25  # for the baseline variant, which has no interleaved partner
SLOW_MACHINE_FACTOR = 1.20  # over the machine's drift, when it passed the factor
POOL_SIZE = 5
MIN_POOL = 3  # latency is judged once this many earlier runs exist (unless a run is pinned)
MEMORY_TOLERANCE = 0.10  # peak memory may grow 10 % (plus 5 MB) before it counts
MEMORY_SLACK_MB = 5.0
DISK_TOLERANCE = 0.01
SCORE_DROP = 0.5  # BLEU or chrF points
# a latency entry is compared only with earlier entries measured the same way (the model is what
# is under test, so a new model is compared with the old one)
COMPARABLE_KEYS = ("threads", "new_tokens")


@dataclass(frozen=True)
class Comparison:
    kind: str  # "latency", "memory", "disk", "BLEU", "chrF"
    variant: str
    shape: str  # "" where the figure has no shape
    baseline: float
    current: float
    factor: float
    p_value: float | None
    regressed: bool
    message: str
    ratio_factor: float | None = None
    machine_factor: float | None = None  # the drift the growth was divided by; None: none applied


@dataclass(frozen=True)
class Drift:
    """How much slower the machine ran for one comparison: the reference's growth, and whence."""
    growth: float
    source: str


def format_p(value: float | None, missing: str = "n/a") -> str:
    return missing if value is None else f"{value:.4f}"


def _greater_p(current: list[float], earlier: list[float]) -> float | None:
    if len(current) < 2 or len(earlier) < 2:
        return None
    return float(mannwhitneyu(current, earlier, alternative="greater").pvalue)


def _ratio(entry: dict) -> float | None:
    """The median round over the median interleaved baseline round; None without a partner."""
    paired = entry["extra_info"].get("paired_baseline_s") or []
    if not paired or statistics.median(paired) <= 0:
        return None
    return statistics.median(entry["data"]) / statistics.median(paired)


def _comparable(now: dict, then: dict) -> bool:
    new, old = now["extra_info"], then["extra_info"]
    return all(new.get(key) == old.get(key) for key in COMPARABLE_KEYS
               if key in new and key in old)


def compare_latency(current: dict, pool: list[dict], factor: float, alpha: float, label: str,
                    baseline_factor: float = ABSOLUTE_ONLY_FACTOR,
                    baseline: str = BASELINE) -> list[Comparison]:
    """current: (variant, shape) -> {"data": [s, ...], "extra_info": {...}}; pool: earlier runs'
    dicts of the same kind, oldest first; baseline: the variant the machine's drift is read off."""
    earlier = {}
    for key, now in current.items():
        found = [run[key] for run in pool
                 if key in run and run[key]["data"] and _comparable(now, run[key])]
        if now["data"] and found:
            earlier[key] = found
    growth = {key: best_growth(current[key]["data"], [e["data"] for e in found])
              for key, found in earlier.items()}
    return [_compare_entry(key, current[key], earlier[key], factor, alpha, label, baseline_factor,
                           _drift(key, current, earlier, growth, baseline))
            for key in sorted(earlier)]


def compare_key(current: dict, key: tuple[str, str], pool: list[dict], factor: float,
                alpha: float, label: str, baseline: str = BASELINE) -> Comparison | None:
    """One entry's comparison, judged with the whole run beside it (the machine's drift is read
    off the other entries); None when the pool has nothing comparable."""
    found = compare_latency(current, pool, factor, alpha, label, baseline=baseline)
    return next((c for c in found if (c.variant, c.shape) == key), None)


def _pool_best(earlier: list[list[float]]) -> float:
    """The median of the earlier runs' best rounds."""
    return statistics.median(min(rounds) for rounds in earlier)


def best_growth(now: list[float], earlier: list[list[float]]) -> float:
    """This run's best round over the median of the earlier runs' best rounds."""
    return min(now) / _pool_best(earlier)


def _drift(key, current, earlier, growth, baseline) -> Drift | None:
    variant, shape = key
    if variant == baseline:
        others = [g for (v, s), g in growth.items() if s == shape and v != baseline]
        if not others:
            return None
        median = statistics.median(others)
        return Drift(median, f"the other variants' best rounds at {shape}: x{median:.3f} "
                             f"(median of {len(others)})")
    own = growth.get((baseline, shape))
    partner_now = current[key]["extra_info"].get("paired_baseline_s") or []
    partner_then = [rounds for rounds in (e["extra_info"].get("paired_baseline_s")
                                          for e in earlier[key]) if rounds]
    if own is None or not partner_now or not partner_then:
        return None
    interleaved = best_growth(partner_now, partner_then)
    return Drift(min(own, interleaved), f"{baseline} [{shape}] best round x{own:.3f} in its own "
                                        f"test, x{interleaved:.3f} interleaved")


def with_second_window(entry: dict, window: dict) -> dict:
    """Both windows' rounds as one latency entry."""
    info = entry["extra_info"]
    paired = list(info.get("paired_baseline_s") or []) + list(window["paired_baseline_s"])
    return {"data": list(entry["data"]) + list(window["data"]),
            "extra_info": {**info, "paired_baseline_s": paired}}


def _compare_entry(key, now, earlier, factor, alpha, label, baseline_factor,
                   drift: Drift | None) -> Comparison:
    variant, shape = key
    best_now = min(now["data"])
    best_then = _pool_best([entry["data"] for entry in earlier])
    grew = best_now / best_then
    machine = drift.growth if drift is not None and drift.growth > factor else 1.0
    judged = grew / machine
    p_value = _greater_p(now["data"], [x * machine for entry in earlier for x in entry["data"]])
    significant = p_value is not None and p_value < alpha
    ratio_now = _ratio(now)
    ratios_then = [r for r in map(_ratio, earlier) if r is not None]
    regressed_vs_machine = True
    if ratio_now is not None and ratios_then:
        limit = factor
        ratio_then = statistics.median(ratios_then)
        ratio_grew = ratio_now / ratio_then
        regressed_vs_machine = ratio_grew >= RATIO_VETO
        detail = (f"; ratio to the interleaved baseline {ratio_now:.3f} vs {ratio_then:.3f} "
                  f"(factor {ratio_grew:.3f}; below {RATIO_VETO:.2f} the baseline slowed more)")
    else:
        limit, ratio_grew, detail = baseline_factor, None, ""
    if machine > 1.0:
        limit = max(limit, SLOW_MACHINE_FACTOR)
        detail += (f"; the machine slowed ({drift.source}): judged on factor {judged:.3f} = "
                   f"{grew:.3f} / {machine:.3f}, the pool's rounds scaled alike for the test")
    regressed = judged > limit and significant and regressed_vs_machine
    verdict = "regressed" if regressed else "unchanged"
    message = (f"{variant} [{shape}] latency {verdict}: best round {best_now * 1000:.1f} ms vs "
               f"{best_then * 1000:.1f} ms in {label} (factor {grew:.3f}, limit {limit:.2f}), "
               f"Mann-Whitney U p={format_p(p_value)} (alpha {alpha}){detail}")
    return Comparison("latency", variant, shape, best_then, best_now, grew, p_value, regressed,
                      message, ratio_grew, machine if machine > 1.0 else None)


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


def _same(now: dict, then: dict, part: str, keys: tuple[str, ...], figure: str = "") -> bool:
    new, old = now.get(part), then.get(part)
    if not (new and old) or (figure and not (figure in new and figure in old)):
        return False
    return all(new.get(key) == old.get(key) for key in keys)


def compare_summaries(current: dict, baseline: dict, label: str) -> list[Comparison]:
    """Memory, size on disk, BLEU and chrF of each variant, from the two runs' summaries; memory
    only at the same shape, scores only on the same sentences (smoke scores 300, full all)."""
    out = []
    old_variants = baseline.get("variants", {})
    for variant, now in current.get("variants", {}).items():
        then = old_variants.get(variant, {})
        if _same(now, then, "memory", ("shape",)):
            out.append(_growth("peak memory", variant, now["memory"]["peak_above_baseline_mb"],
                               then["memory"]["peak_above_baseline_mb"], MEMORY_TOLERANCE,
                               MEMORY_SLACK_MB, "MB", label))
        if "disk_mb" in now and "disk_mb" in then:
            out.append(_growth("size on disk", variant, now["disk_mb"], then["disk_mb"],
                               DISK_TOLERANCE, 0.0, "MB", label))
        for score in ("bleu", "chrf"):
            if _same(now, then, "quality", ("sentences", "test_set"), score):
                out.append(_drop(score.replace("bleu", "BLEU").replace("chrf", "chrF"), variant,
                                 now["quality"][score], then["quality"][score], label))
    return out
