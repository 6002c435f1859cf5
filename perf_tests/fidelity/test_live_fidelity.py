"""The live trial of the gate against itself: `tox -e fidelity` (nightly), never the default run.

Whole gate runs in fresh processes (pytorch-fp32 and live_trial.VARIANTS at b1-s16), with a
history of the trial's own and the session's artifact cache, each judged by the gate's own check
and read back from its summary.json; the kinds of tries and how they are counted:
perf_tests/harness/live_trial.py (A/A, planted 25 % and 40 %, a 30 % slower machine, a lasting
drift).

Each rate comes with its Wilson 95 % interval. The test fails only when a rate is worse than the
promise with 95 % confidence (an exact one-sided binomial test, ``Tally.worse_than``), never on
one unlucky try. PERF_FIDELITY_TRIES sets the tries of each kind (default 20).
"""

import json
import os
import shutil
import time

import pytest

from perf_tests.harness import live_trial, parsing
from perf_tests.harness.child_run import run_pytest

pytestmark = pytest.mark.fidelity

DEFAULT_TRIES = 20
PROMISED_FALSE_ALARMS = 0.05  # at most, per run
PROMISED_DETECTION = 0.95  # at least, where the machine's noise allows it
LATENCY = ["perf_tests/gate/test_latency.py", f"--perf-variants={','.join(live_trial.VARIANTS)}",
           f"--perf-shapes={live_trial.FIGURE[1]}", "--perf-rounds=8"]


@pytest.fixture
def gate_run(gate):
    def run(results, *args):
        done = run_pytest("-q", f"--perf-threads={gate.config.threads}", *LATENCY, *args,
                          results=results, cache=gate.config.cache_dir)
        summary = results / "latest" / "summary.json"
        if not summary.is_file():
            pytest.fail(f"a gate run wrote no summary (exit {done.returncode}): "
                        f"{done.stdout[-2000:]}{done.stderr[-1000:]}")
        data = json.loads(summary.read_text(encoding="utf-8"))
        summary.unlink()  # the next run must write its own
        return data["regression"]

    return run


@pytest.fixture
def workdir(gate, tmp_path):
    """The trial's folder; its unchanged runs are kept afterwards under the results folder
    (``fidelity/<UTC time>/``), a recording ``python -m perf_tests.harness.replay`` reads."""
    yield tmp_path
    history = tmp_path / "results" / "history"
    if history.is_dir():
        kept = gate.config.results_dir / "fidelity" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        shutil.copytree(history, kept / "history")
        print(f"the trial's unchanged runs: {kept / 'history'}")


def trials() -> int:
    """PERF_FIDELITY_TRIES, read here and not at import: this module is collected by every run
    (then deselected), which a typo in it must not break."""
    try:
        return parsing.number("PERF_FIDELITY_TRIES", os.environ.get("PERF_FIDELITY_TRIES"),
                              default=DEFAULT_TRIES, bounds=parsing.Range(0))
    except parsing.ConfigError as error:
        problem = str(error)
    # failed outside the except block: raised inside it, the failure carries the ConfigError as
    # its context, and pytest prints the line twice ("During handling of the above exception")
    pytest.fail(problem, pytrace=False)


def test_the_gate_keeps_its_promises_on_this_machine(gate_run, workdir,
                                                     record_testsuite_property):
    tries = trials()
    if tries == 0:
        pytest.skip("PERF_FIDELITY_TRIES=0: no tries asked for")
    tallies = live_trial.run(gate_run, workdir, tries)
    aa, *planted, slow, drift = tallies
    for tally in tallies:
        print("\n".join(tally.lines))
        print(tally.summary())
        # the suite's property, not the test's: record_property breaks --junitxml's default
        # xunit2 schema (a warning, an error under this project's filterwarnings)
        record_testsuite_property(tally.name, tally.summary())
    for tally in (aa, slow):
        assert not tally.worse_than(PROMISED_FALSE_ALARMS, at_most=True), tally.summary()
    for tally in (*planted, drift):
        assert not tally.worse_than(PROMISED_DETECTION, at_most=False), tally.summary()
