"""Slow drifts over the history: change points in each latency figure, found with ruptures.

Tonight's check (regression.py) catches a large step in one run; a smaller shift that lasts is
found here, over the history of comparable runs. Each figure's series is its residual run by run
(regression.residual: the best round relative to the machine's mood in that run), so a night on
a slow machine is no step; as in tonight's check, each variant is searched over all its shapes
too (the mean of their residuals); a test measured beside a neighbour is left out of its series,
as out of tonight's check. ruptures' PELT with a least-squares cost finds where the series' mean
steps, with a penalty scaled by the series' own noise, read off successive differences so that
the step itself does not inflate it. A change point is confirmed when at least CONFIRM_RUNS runs
lie on its later side, the step is at least MIN_SHIFT and Student's t-test between the two
segments agrees (p < ALPHA; the noise is the machine's, the same on both sides, so it is pooled:
three runs after a step carry too few degrees of freedom for a variance of their own). It is
listed with the runs on both sides and what changed between them (commit, libraries, model
fingerprints, artifact keys): the likely cause. A slowdown that the
newest run confirms fails the gate (ChangePoint.fails says how a team accepts one).

How small a lasting drift can be found depends on the series' noise, as tonight's ``catches``
does: ``drift_reach`` is the smallest step the confirmation finds in 95 % of cases with
FOUND_WITHIN runs on its later side, and the report lists it per figure, so that a drift the
noise hides is said to be hidden rather than silently missed.

Why ruptures: Apache Otava (E-Divisive with a significance test) pins numpy 2.2 and scipy < 1.17
and brings BigQuery, Postgres and Slack clients; MongoDB's signal-processing-algorithms needs
numpy < 2 and gevent and builds a C extension from source; ruptures needs numpy and scipy only
and ships wheels. Its PELT has no significance test of its own, hence the t-test.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass, field, replace

import numpy
import ruptures
from ruptures.base import BaseCost
from ruptures.exceptions import NotEnoughPoints
from scipy.stats import ttest_ind

from perf_tests.harness import regression

WINDOW = 60  # the newest runs searched; older ones are history already judged
MIN_SEGMENT = 3  # runs on each side of a change point (so it is confirmed with the 3rd run after)
CONFIRM_RUNS = 3
MIN_SHIFT = 0.05  # a step under 5 % is not a change worth a line
ALPHA = 0.001  # at 0.01, 2 of 12 series of 26 unchanged recorded runs had one (the machine's)
PENALTY = 4.0  # x noise variance x log(runs); 4 to 8 found the same on recorded histories
FOUND_WITHIN = 5  # runs after a lasting step by which drift_reach promises to confirm it


@dataclass(frozen=True)
class RunInfo:
    """What identifies a run for the cause of a change: its label and what it was measured with."""
    label: str
    commit: str
    libraries: dict = field(default_factory=dict)
    fingerprints: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    plant: str | None = None  # a regression planted on purpose (the gate's own trials)

    @classmethod
    def of(cls, run) -> RunInfo:
        gate = run.gate
        artifacts = {key[0]: entry["extra_info"].get("artifact")
                     for key, entry in run.latency().items() if entry["extra_info"].get("artifact")}
        return cls(run.label, str((run.data.get("commit_info") or {}).get("id") or "")[:12],
                   dict(gate.get("libraries", {})),
                   {role: m.get("fingerprint") for role, m in gate.get("models", {}).items()},
                   artifacts, gate.get("plant"))


@dataclass(frozen=True)
class ChangePoint:
    variant: str
    shape: str
    before: RunInfo  # the last run of the earlier segment
    after: RunInfo  # the first run of the later segment
    runs_before: int
    runs_after: int
    shift: float  # factor of the later segment's level over the earlier one's
    p_value: float
    confirmed: bool
    at_newest: bool  # the later segment reaches the newest run
    new: bool = False  # confirmed with the newest run and not without it

    @property
    def lasting_slowdown(self) -> bool:
        return self.confirmed and self.at_newest and self.shift > 1

    @property
    def fails(self) -> bool:
        """The newest run confirms a slowdown that lasts to it, and something recorded changed
        across it (when nothing did, the machine changed, and the change point is reported
        only). The nightly keeps failing runs out of its history, so it stays red until the
        change is fixed, or accepted by keeping one failing run (the workflow's ``accept``
        input): then it was confirmed before."""
        return self.lasting_slowdown and self.new and bool(self.causes())

    def causes(self) -> list[str]:
        return differences(self.before, self.after)

    @property
    def message(self) -> str:
        if self.confirmed:
            state = "confirmed"
        elif self.runs_after < CONFIRM_RUNS:
            state = f"not confirmed yet ({self.runs_after} of {CONFIRM_RUNS} runs after it)"
        else:
            state = f"not confirmed (needs p < {ALPHA} and a step of {MIN_SHIFT:.0%} or more)"
        change = "slower" if self.shift > 1 else "faster"
        cause = "; ".join(self.causes()) or "nothing recorded changed (the machine or the code "\
                                            "outside the recorded keys)"
        return (f"{self.variant} [{self.shape}] change point: x{self.shift:.3f} ({change}) between "
                f"{self.before.label} and {self.after.label} ({self.runs_before} runs before, "
                f"{self.runs_after} after; t-test p={self.p_value:.4f}), {state}; changed: {cause}")


def differences(before: RunInfo, after: RunInfo) -> list[str]:
    """What differs between two runs: the likely cause of a change between them."""
    out = []
    if before.commit != after.commit:
        out.append(f"commit {before.commit or '?'} -> {after.commit or '?'}")
    for name in sorted(set(before.libraries) | set(after.libraries)):
        old, new = before.libraries.get(name), after.libraries.get(name)
        if old != new:
            out.append(f"{name} {old} -> {new}")
    for role in sorted(set(before.fingerprints) | set(after.fingerprints)):
        if before.fingerprints.get(role) != after.fingerprints.get(role):
            out.append(f"{role} model fingerprint {before.fingerprints.get(role)} -> "
                       f"{after.fingerprints.get(role)}")
    for variant in sorted(set(before.artifacts) | set(after.artifacts)):
        if before.artifacts.get(variant) != after.artifacts.get(variant):
            out.append(f"artifact {before.artifacts.get(variant)} -> {after.artifacts.get(variant)}")
    if before.plant != after.plant:
        out.append(f"planted {before.plant or 'nothing'} -> {after.plant or 'nothing'}")
    return out


def noise_sd(series: list[float]) -> float:
    """The series' noise, robust to steps: the scaled median absolute successive difference."""
    steps = [abs(b - a) for a, b in zip(series, series[1:])]
    return 1.4826 * statistics.median(steps) / math.sqrt(2) if steps else 0.0


class CumulativeL2(BaseCost):
    """ruptures' least-squares cost (``model="l2"``), read off cumulative sums: each segment's
    cost in constant time instead of a numpy variance over the segment. PELT asks for the cost
    of hundreds of thousands of segments when the recorded histories are replayed: with this
    cost test_fidelity_replay.py and test_changepoints.py took 17.5 s instead of 28.5 s on the
    Zen 4 VM, and on the 6,472 series they search both costs gave the same change points. The
    series is centred first, so that the sum of squares does not cancel against the squared
    sum."""

    model = "l2-cumulative"
    min_size = 1

    def fit(self, signal) -> CumulativeL2:
        values = numpy.asarray(signal, dtype=float).ravel()
        self.signal = values.reshape(-1, 1)  # PELT reads the series' length off it
        centred = values - values.mean()
        self._sums = numpy.concatenate(([0.0], numpy.cumsum(centred)))
        self._squares = numpy.concatenate(([0.0], numpy.cumsum(centred * centred)))
        return self

    def error(self, start: int, end: int) -> float:
        """The sum of squared deviations from the segment's mean, over [start:end]."""
        size = end - start
        if size < self.min_size:
            raise NotEnoughPoints
        total = self._sums[end] - self._sums[start]
        return float(self._squares[end] - self._squares[start] - total * total / size)


def breaks(series: list[float], penalty: float = PENALTY) -> list[int]:
    """Indexes where a new segment starts (PELT, least squares, noise-scaled penalty)."""
    sd = noise_sd(series)
    if len(series) < 2 * MIN_SEGMENT or sd == 0:
        return []
    signal = numpy.asarray(series, dtype=float).reshape(-1, 1)
    found = ruptures.Pelt(custom_cost=CumulativeL2(), min_size=MIN_SEGMENT, jump=1).fit(signal)
    return found.predict(pen=penalty * sd * sd * math.log(len(series)))[:-1]


def residual_series(all_figures: list[dict], usual: dict,
                    keys: tuple) -> list[tuple[int, float]]:
    """(index in the runs, mean residual of the keys' figures) for each run that has them all."""
    found = ((i, regression.group_residual(figs, usual, keys)) for i, figs in enumerate(all_figures))
    return [(i, value) for i, value in found if value is not None]


def find(runs: list, current: dict | None = None, penalty: float = PENALTY) -> list[ChangePoint]:
    """Change points of every latency figure over the newest WINDOW runs (history.Run, oldest
    first, the current run last); ``current`` filters the runs to those comparable with it.
    A lasting slowdown is new when the runs without the newest did not confirm one already
    (with a recorded cause: one placed a run early, where nothing changed, does not count)."""
    found = _search(runs[-WINDOW:], current, penalty)
    before = {(cp.variant, cp.shape) for cp in _search(runs[-WINDOW - 1:-1], current, penalty)
              if cp.lasting_slowdown and cp.causes()}
    return [replace(cp, new=(cp.variant, cp.shape) not in before) if cp.lasting_slowdown else cp
            for cp in found]


def drift_reach(values: list[float], after: int = FOUND_WITHIN) -> float:
    """The smallest lasting step (a factor) confirmed in 95 % of cases once ``after`` runs lie on
    its later side and the series' other runs before it: the t-test's critical value at ALPHA
    plus the noise a mean of ``after`` runs may take off the step, in units of the step's
    standard error (the series' noise, read off successive differences). inf when the series is
    too short to tell."""
    earlier = len(values) - after
    sd = noise_sd(values)
    if earlier < MIN_SEGMENT or sd == 0:
        return math.inf
    freedom = earlier + after - 2
    units = (regression.t_quantile(1 - ALPHA / 2, freedom)
             + regression.t_quantile(1 - regression.MISS_RATE, freedom))
    return max(1 + MIN_SHIFT, math.exp(units * sd * math.sqrt(1 / after + 1 / earlier)))


def reach(runs: list, current: dict | None = None) -> dict[tuple[str, str], float]:
    """(variant, shape) -> drift_reach of its series over the newest WINDOW runs."""
    return {(variant, shape): drift_reach([value for _, value in series])
            for variant, shape, series in _all_series(runs[-WINDOW:], current)}


def searched(runs: list, current: dict | None = None) -> list[tuple[str, str]]:
    """(variant, shape) of every series ``find`` searches over the newest WINDOW runs."""
    return [(variant, shape) for variant, shape, _ in _all_series(runs[-WINDOW:], current)]


def _all_series(runs: list, current: dict | None) -> list[tuple[str, str, list]]:
    """(variant, shape, residual series) for each figure, and for each variant over all its
    shapes (the mean of their residuals)."""
    # a test measured beside a neighbour is no step of the figure (regression.BUSY_SHARE)
    entries = [{k: e for k, e in run.latency().items()
                if regression.busy_share(e) <= regression.BUSY_SHARE
                and (current is None or k in current and regression.comparable(current[k], e))}
               for run in runs]
    all_figures = [regression.figures(run) for run in entries]
    usual = regression.usual_levels(all_figures)
    by_variant: dict[str, list] = {}
    for variant, shape in sorted({key for run in entries for key in run}):
        by_variant.setdefault(variant, []).append((variant, shape, variant))
    groups = [(key[0], key[1], (key,)) for keys in by_variant.values() for key in keys]
    groups += [(v, regression.ALL_SHAPES, tuple(keys)) for v, keys in by_variant.items()
               if len(keys) > 1]
    return [(variant, shape, residual_series(all_figures, usual, keys))
            for variant, shape, keys in groups]


def _search(runs: list, current: dict | None, penalty: float) -> list[ChangePoint]:
    found = []
    for variant, shape, series in _all_series(runs, current):
        values = [value for _, value in series]
        bounds = [0, *breaks(values, penalty), len(values)]
        for j in range(1, len(bounds) - 1):
            found.append(_change_point((variant, shape), runs, series, values,
                                       bounds[j - 1:j + 2]))
    return found


def _change_point(key, runs, series, values, bounds) -> ChangePoint:
    """The change at bounds[1], between the segments bounds[0]:bounds[1] and bounds[1]:bounds[2]."""
    earlier, later = values[bounds[0]:bounds[1]], values[bounds[1]:bounds[2]]
    shift = math.exp(statistics.fmean(later) - statistics.fmean(earlier))
    with warnings.catch_warnings():  # segments without spread: nan, and so not confirmed
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(ttest_ind(later, earlier).pvalue)
    confirmed = len(later) >= CONFIRM_RUNS and abs(shift - 1) >= MIN_SHIFT and p_value < ALPHA
    return ChangePoint(key[0], key[1], RunInfo.of(runs[series[bounds[1] - 1][0]]),
                       RunInfo.of(runs[series[bounds[1]][0]]), len(earlier), len(later), shift,
                       p_value, confirmed, bounds[2] == len(values))
