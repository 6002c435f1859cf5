"""The regression check: is tonight's figure outside what unchanged runs on this machine produce?

One idea, calibrated on this machine's own history. A latency figure (a variant at a shape) is
read as the log of its best round, relative to the machine's mood in the same run: the median
shift, against the history's usual level, of the figures of the *other* variants (their own tests
and the baseline rounds interleaved with them). A run that is slow as a whole moves every variant
and cancels out; a variant that got slower moves alone. Over the pool of comparable earlier runs
that residual has a mean and a standard deviation s; tonight's residual is a regression when it
exceeds the mean by more than

    bound = max(log(min factor), t(1 - alpha, n - 1) * s * sqrt(1 + 1/n))

the one-sided Student-t prediction bound for one more unchanged run from n (the pool), where
alpha is the false-alarm rate per figure (the run's rate split over the run's figures, so a
whole run keeps the promised rate). A change of the bound plus t(0.95, n - 1) * s * sqrt(1 + 1/n)
is caught in 95 % of runs: that is the smallest regression this machine can catch tonight; the
report prints it per figure, and says so when it is above what a team cares about.
The baseline variant's mood is read off the candidates' own tests alone (its interleaved rounds
are itself): with three candidates or more, their median ignores one candidate that changed;
with fewer, part of that change shows on the baseline too.
A figure that exceeds the bound is measured again before the run is saved (the gate does it
once the last test has run: confirm.py), and the run is judged on, and kept in the history with,
the second measurement: a stall of the host that lasted one test (a best round 60 % slower, the
rest of the run as usual, seen twice in the tenth session's live trial) neither fails the night
nor stays in the pool to widen the noise of the nights after, while a real change is there again.
A change is then caught when both measurements exceed the bound, so the smallest regression that
can be caught is where each one does in sqrt(95 %) of runs.
A pinned baseline run is one run, not a pool: tonight is compared with its residual, with
sqrt(2) in place of sqrt(1 + 1/n), the noise still read off the pool.

The same rule judges each variant over all its shapes (the mean of their residuals): a change
of a variant, a library's or a recipe's, usually moves every shape, and the mean of two shapes
moves less between unchanged runs than either, so smaller changes are caught there.

One case the mood cannot cancel: a neighbour on the machine (another process, or another guest
taking steal time) slows PyTorch's many short OpenMP regions far more than the other engines, so
PyTorch's figures move alone, as a regression would. The gate reads the share of the CPUs others
took during each test's rounds (latency.MachineShare); above BUSY_SHARE a figure is not judged,
the report says why, and it is left out of the noise and of the change-point series.

Measured on recorded histories (perf_tests/unit/data/histories, results/README.md): why the best
round, why the other variants as the machine's mood, and the rates this gives. Memory, size on
disk and quality have no run-to-run noise worth a model: they regress past a fixed tolerance
against the most recent run of the pool that measured them the same way.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass

from scipy.stats import t as student_t

from perf_tests.harness.config import BASELINE

DEFAULT_MIN_FACTOR = 1.10  # below this a change is not worth a red night, however steady the machine
DEFAULT_FALSE_ALARM_RATE = 0.01  # per run, over all its latency figures
MISS_RATE = 0.05  # what "can catch" means: a change this large is caught in 95 % of runs
# ... by both of the measurements a regression takes (the first, and the one measured again)
MISS_RATE_EACH = 1 - math.sqrt(1 - MISS_RATE)
POOL_SIZE = 20  # comparable earlier runs the noise is read from
MIN_POOL = 5  # fewer runs give no usable noise estimate: latency is not judged yet
MEMORY_TOLERANCE = 0.10  # peak memory may grow 10 % (plus 5 MB) before it counts
MEMORY_SLACK_MB = 5.0
DISK_TOLERANCE = 0.01
SCORE_DROP = 0.5  # BLEU or chrF points
# Above this share of the machine's CPU time taken by other processes (or other guests, steal)
# during a test's rounds, its latency is not judged and not kept as noise: a neighbour slows
# PyTorch's many short OpenMP regions far more than other engines, which the other variants'
# shift cannot cancel (results/README.md, "A busy machine"). Measured on the Emerald Rapids VM
# over 14 tests a run: at most 0.016 in 3 quiet runs (steal at most 0.002), 0.083-0.109 in 5 runs
# beside a neighbour streaming memory 30 % of the time.
BUSY_SHARE = 0.05
# a latency entry is compared only with earlier entries measured the same way (the model is what
# is under test, so a new model is compared with the old one)
COMPARABLE_KEYS = ("threads", "new_tokens")
ALL_SHAPES = "all shapes"  # the shape label of a variant judged over all its shapes


@dataclass(frozen=True)
class Comparison:
    kind: str  # "latency", "memory", "disk", "BLEU", "chrF"
    variant: str
    shape: str  # "" where the figure has no shape
    baseline: float
    current: float
    factor: float  # latency: the change the machine's mood does not explain
    p_value: float | None  # latency: how often unchanged runs move this far (t distribution)
    regressed: bool
    message: str
    machine_factor: float | None = None  # latency: the mood of the run (other variants' shift)
    detectable: float | None = None  # latency: the smallest factor caught in 95 % of runs tonight
    busy: float | None = None  # latency: others' share of the CPUs in its tests, when not judged
    first_factor: float | None = None  # latency: the factor of the first measurement, when the
    # figure was measured again (the verdict is the second one's)


@dataclass(frozen=True)
class Rule:
    """How strict the check is: the smallest factor that counts, the run's false-alarm rate, and
    whether a figure that regressed is measured again (``--perf-measure-again``)."""
    min_factor: float = DEFAULT_MIN_FACTOR
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    measure_again: bool = True


def format_p(value: float | None, missing: str = "n/a") -> str:
    return missing if value is None else f"{value:.4f}"


def as_judged(entry: dict) -> dict:
    """A test's entry as the check judges it: with the rounds measured again (``measured_again``
    in extra_info: the gate's second measurement of a figure whose first one regressed) in place
    of its own, and that measurement's share of the CPUs taken by others."""
    again = entry["extra_info"].get("measured_again")
    if not again:
        return entry
    info = {**entry["extra_info"], **{k: v for k, v in again.items() if k != "data"}}
    return {"data": again["data"], "extra_info": info}


def busy_share(entry: dict) -> float:
    """The share of the machine's CPU time that other processes and other guests (steal) took
    while a test's rounds ran; 0 for runs recorded before the gate measured it."""
    info = as_judged(entry)["extra_info"]
    return info.get("others_cpu_share", 0.0) + info.get("steal_share", 0.0)


def comparable(now: dict, then: dict) -> bool:
    new, old = now["extra_info"], then["extra_info"]
    return all(new.get(key) == old.get(key) for key in COMPARABLE_KEYS
               if key in new and key in old)


def level(rounds: list[float]) -> float:
    """A run's figure: the log of its best round (a neighbour only ever adds time)."""
    return math.log(min(rounds))


def figures(run: dict, first: bool = False) -> dict[tuple[str, str, str], float]:
    """(variant, shape, measured in) -> level, for each test's own rounds and for the baseline
    rounds interleaved with a candidate (measured in that candidate's test); those measured again
    where a test was, unless ``first``."""
    found = {}
    for (variant, shape), entry in run.items():
        entry = entry if first else as_judged(entry)
        if entry["data"]:
            found[(variant, shape, variant)] = level(entry["data"])
        paired = entry["extra_info"].get("paired_baseline_s") or []
        if paired:
            found[(BASELINE, shape, variant)] = level(paired)
    return found


def usual_levels(pool_figures: list[dict]) -> dict:
    """Each figure's median level over the pool: the machine's usual speed for it."""
    keys = {key for run in pool_figures for key in run}
    return {key: statistics.median(run[key] for run in pool_figures if key in run) for key in keys}


def mood(run_figures: dict, usual: dict, variant: str) -> float:
    """How much slower (log) the run's other variants were than usual; 0 when none was measured."""
    shifts = [value - usual[key] for key, value in run_figures.items()
              if key[0] != variant and key[2] != variant and key in usual]
    return statistics.median(shifts) if shifts else 0.0


def residual(run_figures: dict, usual: dict, key: tuple[str, str, str]) -> float:
    return run_figures[key] - usual[key] - mood(run_figures, usual, key[0])


@functools.lru_cache(maxsize=1024)
def t_quantile(probability: float, freedom: int) -> float:
    """Student's t quantile, kept: the replays of the recorded histories ask for the same
    (rate, pool size) pairs about 50,000 times, and scipy's ppf took 6.4 s of them under
    cProfile."""
    return float(student_t.ppf(probability, freedom))


@dataclass(frozen=True)
class Noise:
    """A figure's residual over the pool: mean, standard deviation and count."""
    mean: float
    sd: float
    runs: int

    def bound(self, alpha: float, min_factor: float, pinned: bool = False) -> float:
        spread = math.sqrt(2.0) if pinned else math.sqrt(1 + 1 / self.runs)
        return max(math.log(min_factor),
                   t_quantile(1 - alpha, self.runs - 1) * self.sd * spread)

    def detectable(self, alpha: float, min_factor: float, pinned: bool = False,
                   twice: bool = True) -> float:
        """The smallest change (log) this check catches in 95 % of runs: the bound, plus the
        noise a measurement may take off a real change in MISS_RATE_EACH of them where both of
        a regression's measurements must exceed the bound (``twice``), in MISS_RATE where one
        does."""
        spread = math.sqrt(2.0) if pinned else math.sqrt(1 + 1 / self.runs)
        miss = MISS_RATE_EACH if twice else MISS_RATE
        power = t_quantile(1 - miss, self.runs - 1) * self.sd * spread
        return self.bound(alpha, min_factor, pinned) + power

    def p_value(self, excess: float, pinned: bool = False) -> float | None:
        spread = math.sqrt(2.0) if pinned else math.sqrt(1 + 1 / self.runs)
        if self.sd == 0:
            return None  # the pool never moved: no probability to give (the bound decides)
        return float(student_t.sf(excess / (self.sd * spread), self.runs - 1))


def _figure_groups(current: dict, now: dict, pool_figures: list[dict]) -> list[tuple]:
    """(variant, shape label, figure keys) judged: each shape the pool has enough runs of, and
    each variant over all those shapes when it has more than one (a change of a variant, such as
    a library's, usually moves all its shapes; their mean moves less between unchanged runs)."""
    singles = [(v, s, ((v, s, v),)) for (v, s) in sorted(current) if (v, s, v) in now
               and sum((v, s, v) in run for run in pool_figures) >= MIN_POOL]
    by_variant: dict[str, list] = {}
    for variant, _, keys in singles:
        by_variant.setdefault(variant, []).extend(keys)
    return singles + [(v, ALL_SHAPES, tuple(keys)) for v, keys in sorted(by_variant.items())
                      if len(keys) > 1]


def group_residual(run_figures: dict, usual: dict, keys: tuple) -> float | None:
    """The mean residual of a group's figures in one run; None when the run lacks one."""
    if not all(key in run_figures for key in keys):
        return None
    return statistics.fmean(residual(run_figures, usual, key) for key in keys)


def usable(current: dict, run: dict) -> dict:
    """The entries of an earlier run that tonight's can be judged against: measured the same way
    and not beside a neighbour (such a figure says nothing of this machine's noise)."""
    return {key: entry for key, entry in run.items() if key in current
            and comparable(current[key], entry) and busy_share(entry) <= BUSY_SHARE}


def compare_latency(current: dict, pool: list[dict], rule: Rule, label: str,
                    reference: dict | None = None,
                    pool_label: str | None = None) -> list[Comparison]:
    """current: (variant, shape) -> {"data": [s, ...], "extra_info": {...}}; pool: earlier runs'
    dicts of the same kind, oldest first; reference: a pinned run (one of them) or None, named
    ``label``; a figure the pinned run lacks, or holds measured another way or beside a
    neighbour, is judged against the pool's mean instead, named ``pool_label``."""
    pool_figures = [figures(usable(current, run)) for run in pool]
    usual = usual_levels(pool_figures)
    now, first = figures(current), figures(current, first=True)
    groups = _figure_groups(current, now, pool_figures)
    alpha = rule.false_alarm_rate / max(len(groups), 1)
    ref_figures = figures(usable(current, reference)) if reference else {}
    out = []
    for variant, shape, keys in groups:
        history = [r for r in (group_residual(run, usual, keys) for run in pool_figures)
                   if r is not None]
        if len(history) < MIN_POOL:
            continue
        noise = Noise(statistics.fmean(history), statistics.stdev(history), len(history))
        pinned = group_residual(ref_figures, usual, keys)
        centre = noise.mean if pinned is None else pinned
        busy = max(busy_share(current[(measured_in, s)]) for _, s, measured_in in keys)
        again = any("measured_again" in current[(v, s)]["extra_info"] for v, s, _ in keys)
        first_excess = group_residual(first, usual, keys) - centre if again else None
        out.append(_judge(variant, shape, keys, now, usual, noise, centre, pinned is not None,
                          alpha, rule, label if pinned is not None else pool_label or label,
                          busy if busy > BUSY_SHARE else None, first_excess))
    return out


def too_few_runs(current: dict, pool: list[dict]) -> list[str]:
    """One line per figure of tonight's the check leaves out for want of comparable earlier
    runs (a variant or shape new to this history), so that none looks checked and passed."""
    counts = {key: sum(key in usable(current, run) for run in pool) for key in current}
    return [f"{variant} [{shape}] latency not judged: {count} comparable earlier run(s), the "
            f"check needs {MIN_POOL}" for (variant, shape), count in sorted(counts.items())
            if count < MIN_POOL]


def measure_again(comparisons: list[Comparison], current: dict) -> list[tuple[str, str]]:
    """The (variant, shape) tests to measure again: those of each latency figure that regressed
    on its first measurement (every shape of a variant judged over all its shapes)."""
    wanted = []
    for c in comparisons:
        if c.kind == "latency" and c.regressed and c.first_factor is None:
            shapes = [c.shape] if c.shape != ALL_SHAPES else [s for v, s in current if v == c.variant]
            wanted += [(c.variant, s) for s in shapes if (c.variant, s) not in wanted]
    return wanted


def _judge(variant, shape, keys, now, usual, noise: Noise, centre: float, pinned: bool,
           alpha: float, rule: Rule, label: str, busy: float | None = None,
           first_excess: float | None = None) -> Comparison:
    machine = mood(now, usual, variant)
    excess = group_residual(now, usual, keys) - centre
    bound = noise.bound(alpha, rule.min_factor, pinned)
    detectable = noise.detectable(alpha, rule.min_factor, pinned, rule.measure_again)
    regressed = excess > bound and busy is None
    level_now = statistics.fmean(now[key] for key in keys)
    best_now = math.exp(level_now)
    usual_best = math.exp(statistics.fmean(usual[key] for key in keys) + centre)
    what = "best round" if len(keys) == 1 else "best rounds' geometric mean"
    if first_excess is not None:
        what = f"measured again (the first rounds were x{math.exp(first_excess):.3f}): {what}"
    verdict = ("regressed" if regressed else "unchanged" if busy is None else
               f"not judged (other processes or guests took {busy:.0%} of the CPUs during its "
               "rounds)")
    message = (f"{variant} [{shape}] latency {verdict}: {what} {best_now * 1000:.1f} ms, "
               f"{math.exp(excess):.3f}x what {label} predict on a machine running "
               f"x{math.exp(machine):.3f} tonight (the other variants' shift); limit "
               f"x{math.exp(bound):.3f} from this machine's noise over {noise.runs} runs (min "
               f"factor {rule.min_factor:.2f}, false-alarm rate {alpha:.4f} per figure), which "
               f"catches x{math.exp(detectable):.3f} or more in 95 % of runs")
    return Comparison("latency", variant, shape, usual_best, best_now, math.exp(excess),
                      noise.p_value(excess, pinned), regressed, message, math.exp(machine),
                      math.exp(detectable), busy,
                      None if first_excess is None else math.exp(first_excess))


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


# (kind, the part of a variant's summary it is in, the figure, what must match to compare it:
# memory only at the same shape, scores only on the same sentences: smoke scores 300, full all)
SUMMARY_FIGURES = (("peak memory", "memory", "peak_above_baseline_mb", ("shape",)),
                   ("size on disk", None, "disk_mb", ()),
                   ("BLEU", "quality", "bleu", ("sentences", "test_set")),
                   ("chrF", "quality", "chrf", ("sentences", "test_set")))


def _measured(variant: dict, part: str | None, figure: str, keys: tuple) -> tuple | None:
    """(the figure, how it was measured) in a variant's summary, or None where it is not."""
    entry = variant if part is None else variant.get(part) or {}
    if figure not in entry:
        return None
    return entry[figure], tuple(entry.get(key) for key in keys)


def compare_summaries(current: dict, earlier: list[tuple[dict, str]]
                      ) -> tuple[list[Comparison], list[str]]:
    """Memory, size on disk, BLEU and chrF of each variant against the newest of the earlier
    runs' summaries (``(summary, label)``, oldest first) that measured it the same way: a run of
    the latency tests alone in between measured none of them, and must not hide a regression.
    Returns the comparisons and a note per kind of figure no earlier run measured alike."""
    out, uncompared = [], {}
    for variant, now in current.get("variants", {}).items():
        for kind, part, figure, keys in SUMMARY_FIGURES:
            new = _measured(now, part, figure, keys)
            if new is None:
                continue
            old = _newest_alike(earlier, variant, (part, figure, keys), new[1])
            if old is None:
                uncompared.setdefault(kind, []).append(variant)
            else:
                out.append(_compare(kind, variant, new[0], *old))
    notes = [f"{kind} not compared: no earlier run in the pool measured it the same way "
             f"({', '.join(variants)})" for kind, variants in uncompared.items()]
    return out, notes


def _newest_alike(earlier: list[tuple[dict, str]], variant: str, where: tuple,
                  how: tuple) -> tuple[float, str] | None:
    """(the figure, the run's label) of the newest earlier summary that measured it ``how``."""
    for summary, label in reversed(earlier):
        found = _measured(summary.get("variants", {}).get(variant, {}), *where)
        if found is not None and found[1] == how:
            return found[0], label
    return None


def _compare(kind: str, variant: str, new: float, old: float, label: str) -> Comparison:
    if kind == "peak memory":
        return _growth(kind, variant, new, old, MEMORY_TOLERANCE, MEMORY_SLACK_MB, "MB", label)
    if kind == "size on disk":
        return _growth(kind, variant, new, old, DISK_TOLERANCE, 0.0, "MB", label)
    return _drop(kind, variant, new, old, label)
