"""Replay recorded histories through the regression check and the change-point detector.

    python -m perf_tests.harness.replay results/history/x86_64 [--slow-machine FOLDER]
        [--slowdown 0.25] [--drift 0.10] [--compare-fail min:30%] [--ratio-compare-fail median:20%]

The gate's fidelity on data, without running a model: same data, same verdicts, in seconds.
Each run from the (MIN_POOL + 1)-th on is judged against up to POOL_SIZE runs before it, as the
gate judges a new run:

- A/A: the run as it is; a latency figure that regressed is a false alarm of that run.
- planted: one variant's own rounds made ``1 + slowdown`` times slower at every shape, its
  interleaved baseline rounds left alone (as ``--perf-plant <variant>:slowdown=`` does); caught
  when one of its figures regressed. Where this machine's noise lets the check catch only a
  larger change in 95 % of runs, the try is counted apart, as one the noise hides.
- slow machine: runs recorded on a busier machine (``record --contention``) judged against the
  unchanged history; a regression is a false alarm.
- drift: a variant made ``1 + drift`` slower at every shape from one run on, for good; the
  change-point detector must find it within FOUND_WITHIN runs, and find nothing in the unchanged
  history. Where the variant's noise lets the detector confirm only a larger drift in 95 % of
  cases (``changepoints.drift_reach``), the try is counted apart, as one the noise hides.
- compare recipes: pytest-benchmark's ``--benchmark-compare-fail`` check, judged by its own code,
  on consecutive pairs of runs (unchanged, and with one variant planted slower) and on busier
  runs against unchanged ones; on the raw latency groups and on the ratio groups.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field

from scipy.stats import binomtest

from perf_tests.harness import changepoints, history, regression
from perf_tests.harness.changepoints import FOUND_WITHIN
from perf_tests.harness.config import FALSE_ALARM_RATE, PLANT_AMOUNT, REGRESSION_FACTOR
from perf_tests.harness.parsing import argument, path_argument
from perf_tests.harness.regression import Rule
from perf_tests.harness.store import round_ratios


@dataclass
class Tally:
    """Tries of one kind: how many counted, how many hit, and a line per try."""
    name: str
    hits: int = 0
    tries: int = 0
    hidden: int = 0  # planted tries the machine's noise hides (bound above the plant)
    hidden_caught: int = 0  # of those, caught all the same
    lines: list[str] = field(default_factory=list)

    def add(self, hit: bool, line: str) -> None:
        self.tries += 1
        self.hits += hit
        self.lines.append(line)

    def interval(self) -> tuple[float, float]:
        """Wilson 95 % interval of the rate (0, 1 when there was no try)."""
        if not self.tries:
            return 0.0, 1.0
        found = binomtest(self.hits, self.tries).proportion_ci(0.95, method="wilson")
        return found.low, found.high

    def worse_than(self, promise: float, at_most: bool) -> bool:
        """Is the rate worse than the promise with 95 % confidence? The exact one-sided binomial
        test: a rate promised to be ``at_most`` (false alarms) fails when so many hits are
        unlikely (p < 0.05) at the promised rate; one promised to be at least (detection) when
        so few are. Not the Wilson interval the summary reports: at a handful of tries it is
        narrower than the truth (0 of 1 gives 0-79 %), so one unlucky try would fail a promise
        of 95 %, while the exact test needs 2 misses in 2 for it."""
        if not self.tries:
            return False
        alternative = "greater" if at_most else "less"
        return binomtest(self.hits, self.tries, promise, alternative=alternative).pvalue < 0.05

    def summary(self) -> str:
        low, high = self.interval()
        hidden = (f", {self.hidden} more hidden by the noise ({self.hidden_caught} of them "
                  "caught all the same)" if self.hidden else "")
        return (f"{self.name}: {self.hits}/{self.tries} (Wilson 95 % {low:.1%}-{high:.1%})"
                f"{hidden}")


AGAIN = ("measured_again", "recorded_again")  # a test's second measurement (confirm.py)


def slowed(entry: dict, factor: float, interleaved: bool = False) -> dict:
    """A test's rounds, and those of its second measurement, ``factor`` times slower; with
    ``interleaved``, the baseline rounds beside them too (a slower machine)."""
    def scale(part: dict) -> dict:
        out = {**part, "data": [x * factor for x in part["data"]]}
        if interleaved and part.get("paired_baseline_s"):
            out["paired_baseline_s"] = [x * factor for x in part["paired_baseline_s"]]
        return out

    info = entry["extra_info"]
    own = scale({"data": entry["data"], "paired_baseline_s": info.get("paired_baseline_s")})
    info = {**info, "paired_baseline_s": own["paired_baseline_s"],
            **{key: scale(info[key]) for key in AGAIN if info.get(key)}}
    return {"data": own["data"], "extra_info": info}


def _first(entry: dict) -> dict:
    return {**entry, "extra_info": {k: v for k, v in entry["extra_info"].items()
                                    if k not in AGAIN}}


def _second(entry: dict) -> dict:
    """The test as the gate judges it once measured again: the recorded second measurement."""
    info = entry["extra_info"]
    again = info.get("measured_again") or info.get("recorded_again")
    first = _first(entry)
    return {**first, "extra_info": {**first["extra_info"], "measured_again": again}} if again \
        else first


def confirmed(now: dict, earlier: list[dict], rule: Rule) -> tuple[dict, list]:
    """A run as the gate judges and keeps it: its first measurements against up to POOL_SIZE
    runs before it; where a figure regressed and the recording holds a second measurement of its
    tests (``--perf-measure-again=all``), the verdict and the run kept are that one's. A
    recording without second measurements keeps the first verdict, so its false alarms are at
    worst those of the gate, and its catches at best."""
    pool = earlier[-regression.POOL_SIZE:]
    label = f"the last {len(pool)} runs"
    first = {key: _first(entry) for key, entry in now.items()}
    found = regression.compare_latency(first, pool, rule, label)
    wanted = regression.measure_again(found, first) if rule.measure_again else []
    if not any(_second(now[key]) != first[key] for key in wanted):
        return first, found
    kept = {key: _second(now[key]) if key in wanted else entry for key, entry in first.items()}
    return kept, regression.compare_latency(kept, pool, rule, label)


def judge(now: dict, earlier: list[dict], rule: Rule) -> list[regression.Comparison]:
    return confirmed(now, earlier, rule)[1]


def kept_history(entries: list[dict], rule: Rule) -> list[dict]:
    """Each run as the gate kept it in the history, judged in turn against those before it."""
    kept: list[dict] = []
    for entry in entries:
        kept.append(confirmed(entry, kept, rule)[0] if len(kept) >= regression.MIN_POOL
                    else {key: _first(e) for key, e in entry.items()})
    return kept


def _row(label: str, found: list[regression.Comparison]) -> str:
    worst = max(found, key=lambda c: c.factor)
    flagged = [f"{c.variant} [{c.shape}] x{c.factor:.3f}" for c in found if c.regressed]
    busy = [c.busy for c in found if c.busy is not None]
    return (f"{label}: worst {worst.variant} [{worst.shape}] x{worst.factor:.3f} "
            f"(catches x{worst.detectable:.3f}), machine x{worst.machine_factor:.3f}"
            + (f"  REGRESSED {', '.join(flagged)}" if flagged else "  ok")
            + (f"; {len(busy)} of {len(found)} not judged (others took up to {max(busy):.0%} "
               "of the CPUs)" if busy else ""))


def aa_tries(runs: list[history.Run], rule: Rule) -> Tally:
    """Each unchanged run as the gate judges it: tonight's check, and the change points that
    the run would confirm."""
    entries, tally = [run.latency() for run in runs], Tally("A/A false alarms")
    kept = kept_history(entries, rule)
    for index in range(regression.MIN_POOL, len(runs)):
        found = judge(entries[index], kept[:index], rule)
        if not found:
            continue
        failing = [cp for cp in changepoints.find(runs[:index + 1], entries[index]) if cp.fails]
        line = _row(runs[index].label, found) + "".join(f"  CHANGE POINT {cp.message}"
                                                        for cp in failing)
        tally.add(any(c.regressed for c in found) or bool(failing), line)
    return tally


def planted_tries(runs: list[history.Run], rule: Rule, slowdown: float) -> Tally:
    """Each variant in turn ``1 + slowdown`` slower at every shape, as the plant makes it;
    caught when any of its figures regressed."""
    entries = [run.latency() for run in runs]
    kept = kept_history(entries, rule)
    tally = Tally(f"planted {slowdown:.0%} slowdown caught")
    for index in range(regression.MIN_POOL, len(runs)):
        for variant in sorted({key[0] for key in entries[index]}):
            now = {key: slowed(entry, 1 + slowdown) if key[0] == variant else entry
                   for key, entry in entries[index].items()}
            found = [c for c in judge(now, kept[:index], rule) if c.variant == variant]
            if not found:
                continue
            caught = any(c.regressed for c in found)
            best = min(found, key=lambda c: c.detectable)
            line = (f"{runs[index].label} {variant}: x{max(c.factor for c in found):.3f}, "
                    f"catches x{best.detectable:.3f} [{best.shape}]: "
                    f"{'caught' if caught else 'MISSED'}")
            if best.detectable > 1 + slowdown:  # the noise hides it: not a try the promise covers
                tally.hidden += 1
                tally.hidden_caught += caught
                tally.lines.append(line + " (the noise hides it)")
                continue
            tally.add(caught, line)
    return tally


def slow_machine_tries(runs: list[history.Run], slow: list[history.Run], rule: Rule) -> Tally:
    """Each run of a busier machine against the unchanged runs before it in time."""
    entries = kept_history([run.latency() for run in runs], rule)
    tally = Tally("slow-machine false alarms")
    for run in slow:
        found = judge(run.latency(), entries, rule)
        if found:
            tally.add(any(c.regressed for c in found), _row(run.label + " (busier)", found))
    return tally


@dataclass(frozen=True)
class _Shifted:
    """A history.Run look-alike whose latency entries are given."""
    base: history.Run
    entries: dict

    plant: str = ""

    def latency(self) -> dict:
        return self.entries

    @property
    def gate(self) -> dict:
        return {**self.base.gate, "plant": self.plant} if self.plant else self.base.gate

    def __getattr__(self, name):
        return getattr(self.base, name)


def drift_tries(runs: list[history.Run], drift: float, starts: list[int]) -> Tally:
    """A variant ``1 + drift`` slower at every shape for good from run ``start`` on; found
    means a confirmed change point of that variant within one run of the start, seen by the
    start's FOUND_WITHIN-th run."""
    tally = Tally(f"sustained {drift:.0%} drift found within {FOUND_WITHIN} runs")
    variants = sorted({key[0] for run in runs for key in run.latency()})
    for start in starts:
        for variant in variants:
            if not any(key[0] == variant for run in runs[:start] for key in run.latency()):
                continue  # new to the history after the start: no series to step in
            shifted = [run if i < start else _Shifted(run, {
                key: slowed(entry, 1 + drift) if key[0] == variant else entry
                for key, entry in run.latency().items()}, f"{variant}:slowdown={drift:g}")
                for i, run in enumerate(runs[:start + FOUND_WITHIN])]
            near = {run.label for run in runs[max(start - 1, 0):start + 2]}
            found = [cp for cp in changepoints.find(shifted) if cp.variant == variant
                     and cp.confirmed and cp.shift > 1 and cp.after.label in near]
            reach = min((factor for (name, _), factor in changepoints.reach(shifted).items()
                         if name == variant), default=math.inf)
            line = (f"{variant} from {runs[start].label} (found from x{reach:.3f}): "
                    + (found[0].message if found else "MISSED"))
            if reach > 1 + drift:  # the noise hides it: not a try the promise covers
                tally.hidden += 1
                tally.hidden_caught += bool(found)
                tally.lines.append(line + " (the noise hides it)")
                continue
            tally.add(bool(found), line)
    return tally


def unchanged_change_points(runs: list[history.Run]) -> Tally:
    """Every confirmed change point in an unchanged history is a false one."""
    tally = Tally("confirmed change points in the unchanged history (series searched)")
    found = changepoints.find(runs)
    tally.lines += [cp.message for cp in found]
    # a series with a confirmed change point is one hit, however many it has (a history with
    # lasting changes has several), out of the series searched: a variant measured at one shape
    # has no all-shapes series of its own
    tally.hits = len({(cp.variant, cp.shape) for cp in found if cp.confirmed})
    tally.tries = len(changepoints.searched(runs))
    return tally


@dataclass(frozen=True)
class CompareRecipe:
    """A ``--benchmark-compare-fail`` threshold (``median:20%``) on one benchmark group: the
    raw latency rounds (``latency <shape>``), or each candidate round over the baseline round
    interleaved with it (``latency ratio <shape>``, test_latency_ratio)."""
    threshold: str
    ratio: bool = False

    @property
    def name(self) -> str:
        group = "latency ratio" if self.ratio else "latency"
        return f"--benchmark-compare-fail={self.threshold} on the {group} group"

    def check(self):
        """pytest-benchmark's own check, so the replay judges exactly as it does."""
        from pytest_benchmark.utils import parse_compare_fail

        return parse_compare_fail(self.threshold)

    def figures(self, entry: dict) -> list[float]:
        """The rounds this recipe compares: raw, or over the paired baseline rounds (none for the
        baseline itself, which has no ratio group)."""
        if not self.ratio:
            return entry["data"]
        return round_ratios(entry["data"], entry["extra_info"].get("paired_baseline_s") or [])


def _compare_stats(runs: list[history.Run], recipe: CompareRecipe) -> list[dict]:
    """Each run's figure (the check's field) of every benchmark the recipe compares."""
    field = recipe.check().field
    return [{key: _statistic(rounds, field) for key, entry in run.latency().items()
             if (rounds := recipe.figures(entry))} for run in runs]


def compare_fail_busier(runs: list[history.Run], slow: list[history.Run],
                        recipe: CompareRecipe) -> Tally:
    """Each run recorded on a busier machine against each of the last POOL_SIZE unchanged runs,
    as ``--benchmark-compare=<run>`` pairs them: a failing pair is a false alarm."""
    check = recipe.check()
    tally = Tally(f"{recipe.name}: busier-machine pairs failing")
    earlier, busier = (_compare_stats(some, recipe) for some in (runs[-regression.POOL_SIZE:],
                                                                  slow))
    for run, after in zip(slow, busier):
        for before in earlier:
            failing = [f"{key[0]} [{key[1]}] {after[key] / before[key] - 1:+.1%}"
                       for key in after if key in before and check.fails(
                           {check.field: after[key]}, {check.field: before[key]})]
            tally.add(bool(failing), f"{run.label}: {', '.join(failing) or 'passed'}")
    return tally


def compare_fail_tries(runs: list[history.Run], recipe: CompareRecipe,
                       slowdown: float) -> list[Tally]:
    """pytest-benchmark's ``--benchmark-compare-fail`` over consecutive pairs of runs (each
    figure of a run against the previous run's, as ``--benchmark-compare`` pairs them):
    unchanged pairs must pass; with one variant ``1 + slowdown`` slower at every shape (its own
    rounds; the interleaved baseline rounds left alone, so its ratios grow alike), the pair must
    fail."""
    check = recipe.check()
    stats = _compare_stats(runs, recipe)
    unchanged = Tally(f"{recipe.name}: unchanged pairs failing")
    planted = Tally(f"{recipe.name}: planted {slowdown:.0%} caught")
    for before, after, label in zip(stats, stats[1:], [r.label for r in runs[1:]]):
        keys = [key for key in after if key in before]
        if not keys:
            continue
        failing = any(check.fails({check.field: after[key]}, {check.field: before[key]})
                      for key in keys)
        worst = max(keys, key=lambda key: after[key] / before[key])
        unchanged.add(failing, f"{label}: worst {worst[0]} [{worst[1]}] "
                      f"{after[worst] / before[worst] - 1:+.1%}")
        for variant in sorted({key[0] for key in keys}):
            mine = [key for key in keys if key[0] == variant]
            caught = any(check.fails({check.field: after[key] * (1 + slowdown)},
                                     {check.field: before[key]}) for key in mine)
            grown = max(after[key] * (1 + slowdown) / before[key] - 1 for key in mine)
            planted.add(caught, f"{label} {variant}: worst shape {grown:+.1%}")
    return [unchanged, planted]


def _statistic(rounds: list[float], name: str) -> float:
    """pytest-benchmark's own figure of a benchmark's rounds (its Stats: min, median, iqr...)."""
    from pytest_benchmark.stats import Stats

    stats = Stats()
    for value in rounds:
        stats.update(value)
    return getattr(stats, name)


def compare_check(text: str) -> str:
    """argparse type: a check pytest-benchmark's --benchmark-compare-fail accepts."""
    CompareRecipe(text).check()  # raises argparse.ArgumentTypeError with pytest-benchmark's words
    return text


# The README's recipes, replayed by default: the best raw round, and the ratio group's median.
RAW_RECIPE = CompareRecipe("min:30%")
RATIO_RECIPE = CompareRecipe("median:20%", ratio=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf_tests.harness.replay",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("history", type=path_argument("history folder"),
                        help="a storage folder, e.g. results/history/x86_64")
    parser.add_argument("--slow-machine", type=path_argument("history folder"),
                        help="runs recorded on a busier machine")
    parser.add_argument("--slowdown", type=argument(float, PLANT_AMOUNT), default=0.25)
    parser.add_argument("--drift", type=argument(float, PLANT_AMOUNT), default=0.10)
    parser.add_argument("--min-factor", type=argument(float, REGRESSION_FACTOR),
                        default=regression.DEFAULT_MIN_FACTOR)
    parser.add_argument("--false-alarm-rate", type=argument(float, FALSE_ALARM_RATE),
                        default=regression.DEFAULT_FALSE_ALARM_RATE)
    parser.add_argument("--compare-fail", default=RAW_RECIPE.threshold, metavar="CHECK",
                        type=compare_check,
                        help="the --benchmark-compare-fail check to replay on the raw latency "
                             "group (default: %(default)s)")
    parser.add_argument("--ratio-compare-fail", default=RATIO_RECIPE.threshold, metavar="CHECK",
                        type=compare_check,
                        help="the same on the latency ratio group (default: %(default)s)")
    parser.add_argument("--measure-again", choices=("regressed", "never"), default="regressed",
                        help="judge a regressed figure again on its recorded second measurement "
                             "(--perf-measure-again=all recordings), as the gate does, or never "
                             "(default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per try")
    args = parser.parse_args(argv)
    for folder in filter(None, (args.history, args.slow_machine)):
        if not folder.is_dir():
            print(f"replay: {folder} is not a folder: pass a history storage folder such as "
                  "results/history/x86_64", file=sys.stderr)
            return 2
    runs = history.load_runs(args.history)
    if len(runs) <= regression.MIN_POOL:
        print(f"replay: {len(runs)} runs in {args.history}; the check needs more than "
              f"{regression.MIN_POOL} to judge one", file=sys.stderr)
        return 2
    rule = Rule(args.min_factor, args.false_alarm_rate, args.measure_again == "regressed")
    tallies = [aa_tries(runs, rule), planted_tries(runs, rule, args.slowdown)]
    slow = history.load_runs(args.slow_machine) if args.slow_machine else []
    if slow:
        tallies.append(slow_machine_tries(runs, slow, rule))
    starts = list(range(len(runs) // 2, len(runs) - FOUND_WITHIN + 1, 3))
    tallies += [unchanged_change_points(runs), drift_tries(runs, args.drift, starts)]
    for recipe in (CompareRecipe(args.compare_fail), CompareRecipe(args.ratio_compare_fail, True)):
        tallies += compare_fail_tries(runs, recipe, args.slowdown)
        if slow:
            tallies.append(compare_fail_busier(runs, slow, recipe))
    for tally in tallies:
        if args.verbose:
            print("\n".join(f"  {line}" for line in tally.lines))
        print(tally.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
