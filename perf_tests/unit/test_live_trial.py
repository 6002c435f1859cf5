"""The live trial's counting (perf_tests/harness/live_trial.py), on gate runs that return set
verdicts: which runs make the history, which tries count, which the noise hides."""

from pathlib import Path

import pytest

from perf_tests.harness import live_trial
from perf_tests.harness.changepoints import FOUND_WITHIN
from perf_tests.harness.replay import Tally

pytestmark = pytest.mark.unit
VARIANT, SHAPE = live_trial.FIGURE


class SetGate:
    """A gate run that writes one line of history per run and judges as it is told: the planted
    variant regressed, the slow machine and unchanged runs not, a drift confirmed on its
    FOUND_WITHIN-th run; ``catches`` and ``reach`` are the noise the runs report."""

    def __init__(self, catches: float = 1.20, reach: float = 1.10, misses_drift: bool = False):
        self.catches, self.reach, self.misses_drift = catches, reach, misses_drift

    def __call__(self, results: Path, *options: str) -> dict:
        results.mkdir(parents=True, exist_ok=True)
        runs = results / "runs.txt"
        with runs.open("a") as out:
            out.write(f"{' '.join(options) or 'unchanged'}\n")
        plant = options[0].removeprefix("--perf-plant=") if options else ""
        drifted = plant == f"{VARIANT}:slowdown={live_trial.DRIFT}"
        drift_runs = runs.read_text().count(plant) if drifted else 0
        confirmed = drifted and drift_runs >= FOUND_WITHIN and not self.misses_drift
        regressed = plant in [f"{VARIANT}:slowdown={p}" for p in live_trial.PLANTS]
        return {"comparisons": [{"kind": "latency", "variant": VARIANT, "shape": SHAPE,
                                 "factor": 1.3 if regressed else 1.0, "machine_factor": 1.0,
                                 "detectable_factor": self.catches, "regressed": regressed}],
                "change_points": [{"variant": VARIANT, "shape": SHAPE, "confirmed": confirmed,
                                   "shift": 1 + live_trial.DRIFT, "fails": confirmed}]
                if drifted else [],
                "drift_reach": [{"variant": VARIANT, "shape": SHAPE, "factor": self.reach}],
                "notes": []}


def summaries(tallies) -> dict:
    return {" ".join(tally.name.split()[:2]): (tally.hits, tally.tries, tally.hidden)
            for tally in tallies}


def test_each_kind_is_counted_and_only_unchanged_runs_make_the_history(tmp_path):
    tallies = live_trial.run(SetGate(), tmp_path, tries=3)
    assert summaries(tallies) == {"A/A false": (0, 3, 0), "planted 25%": (3, 3, 0),
                                  "planted 40%": (3, 3, 0), "30% slower": (0, 3, 0),
                                  "10% drift": (2, 2, 0)}
    history = (tmp_path / "results" / "runs.txt").read_text().splitlines()
    assert history == ["unchanged"] * (live_trial.POOL + 3)  # plants ran on copies
    drifted = (tmp_path / "drift-1" / "runs.txt").read_text().splitlines()
    assert drifted[live_trial.POOL + 3:] == [f"--perf-plant={VARIANT}:slowdown=0.1"] * FOUND_WITHIN


def test_tries_the_noise_hides_are_counted_apart(tmp_path):
    tallies = live_trial.run(SetGate(catches=1.30, reach=1.20), tmp_path, tries=2)
    assert summaries(tallies) == {"A/A false": (0, 2, 0), "planted 25%": (0, 0, 2),
                                  "planted 40%": (2, 2, 0), "30% slower": (0, 2, 0),
                                  "10% drift": (0, 0, 2)}
    planted, drift = tallies[1], tallies[-1]
    assert (planted.hidden_caught, drift.hidden_caught) == (2, 2)
    assert "(the noise hides it)" in drift.lines[0]


def test_a_missed_drift_within_reach_counts_against_the_promise(tmp_path):
    drift = live_trial.run(SetGate(misses_drift=True), tmp_path, tries=1)[-1]
    assert (drift.hits, drift.tries) == (0, 2)
    assert drift.lines[0].startswith(f"drift: MISSED after {FOUND_WITHIN} runs")


def tally(hits: int, tries: int) -> Tally:
    found = Tally("rate")
    for number in range(tries):
        found.add(number < hits, "")
    return found


def test_a_rate_fails_its_promise_only_with_confidence_never_on_one_unlucky_try():
    """The live trial's verdict: exact one-sided binomial tests at 95 % (Tally.worse_than)."""
    detection, false_alarms = 0.95, 0.05
    assert not tally(0, 1).worse_than(detection, at_most=False)  # Wilson says 0-79 %
    assert tally(0, 1).interval()[1] < detection
    assert tally(0, 2).worse_than(detection, at_most=False)
    assert not tally(1, 2).worse_than(detection, at_most=False)
    assert not tally(17, 20).worse_than(detection, at_most=False)
    assert tally(16, 20).worse_than(detection, at_most=False)
    assert not tally(1, 1).worse_than(false_alarms, at_most=True)
    assert not tally(3, 20).worse_than(false_alarms, at_most=True)
    assert tally(4, 20).worse_than(false_alarms, at_most=True)
    assert not tally(0, 0).worse_than(detection, at_most=False)


def test_a_bad_tries_setting_fails_the_trial_alone(monkeypatch):
    """The trial's module is collected by every run (then deselected): a typo in
    PERF_FIDELITY_TRIES must not stop those runs at import, and fails the trial in one line."""
    import importlib

    monkeypatch.setenv("PERF_FIDELITY_TRIES", "abc")
    trial = importlib.reload(importlib.import_module("perf_tests.fidelity.test_live_fidelity"))
    with pytest.raises(pytest.fail.Exception, match="PERF_FIDELITY_TRIES 'abc' is not a whole ") \
            as failed:
        trial.trials()
    # no ConfigError as its context, which pytest would print as a second copy of the line
    assert failed.value.__context__ is None
    monkeypatch.setenv("PERF_FIDELITY_TRIES", "-1")
    with pytest.raises(pytest.fail.Exception, match="PERF_FIDELITY_TRIES -1 is out of range"):
        trial.trials()
    monkeypatch.setenv("PERF_FIDELITY_TRIES", "3")
    assert trial.trials() == 3
