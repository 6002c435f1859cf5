"""The integration tests' subprocess runs, started together in the background once the timed
tests are over.

An integration test that needs a subprocess (optimum-cli, or a whole gate run in a fresh process,
as a user would run it) reads a *background run*: a function registered with ``background_run``,
whose session fixture of the same name waits for its result. When the first test after the timed
ones starts, every background run that a selected test needs is started, in two lanes, so they
go on beside the unit tests and beside each other: most of such a run is importing torch and
optimum, on one core, while the unit tests take the other. The tests that read them run last.
Measured in results/README.md ("Nineteenth session"): the unit and integration tests took 133 s
instead of 208 s.

Nothing here runs beside a timed test (the gate's, or the live trial's in ``-m fidelity``): those
are ordered first, and the runs start only after them. The runs' outcomes do not depend on timing
(a background gate run's latency verdict is never asserted), so sharing the CPUs changes how long
they take, not what they assert.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

WORKERS = 2  # the machines have 2 cores; a third run at once only queues for them
# name -> (function of a BackgroundRuns, names of the runs whose results it reads)
RUNS: dict[str, tuple[Callable[[BackgroundRuns], object], tuple[str, ...]]] = {}
RUNS_KEY = pytest.StashKey["BackgroundRuns"]()
TIMED_MARKERS = ("gate", "fidelity")  # nothing runs in the background beside these tests


def background_run(*after: str):
    """Register a function as a background run, readable through a session fixture of its name;
    ``after`` names the runs it reads (they are started before it)."""
    def register(function: Callable[[BackgroundRuns], object]):
        RUNS[function.__name__] = (function, after)

        @pytest.fixture(scope="session", name=function.__name__)
        def result(background_runs: BackgroundRuns):
            return background_runs.result(function.__name__)

        return result

    return register


def skipped_by_its_marks(item) -> bool:
    """A test that a ``skip`` mark, or a ``skipif`` mark whose condition is a plain True, skips:
    the runs it alone reads are not started. A condition given as a string is pytest's to
    evaluate, so its test counts as one that runs."""
    if item.get_closest_marker("skip"):
        return True
    return any(condition is True
               for mark in item.iter_markers("skipif")
               for condition in (mark.args or (mark.kwargs.get("condition"),)))


def wanted(items: list) -> list[str]:
    """The runs the items read, each after the runs it reads in turn; a test its marks skip
    reads none."""
    ordered: list[str] = []

    def add(name: str) -> None:
        if name not in ordered:
            for earlier in RUNS[name][1]:
                add(earlier)
            ordered.append(name)

    for item in items:
        if skipped_by_its_marks(item):
            continue
        for name in getattr(item, "fixturenames", ()):
            if name in RUNS:
                add(name)
    return ordered


class BackgroundRuns:
    """The started runs, in WORKERS lanes that each run one at a time, first in, first out. A run
    goes into the lane of the first run it reads (so a chain runs back to back, and never holds a
    lane waiting for a run queued behind it), any other into the lane with the fewest runs."""

    def __init__(self, names: list[str], tmp_path_factory: pytest.TempPathFactory, gate):
        self.gate = gate
        self._tmp = tmp_path_factory
        tmp_path_factory.getbasetemp()  # made here: two lanes making it at once can make two
        self._lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"background-run-{lane}")
                       for lane in range(WORKERS)]
        self._futures: dict[str, Future] = {}
        lane_of: dict[str, int] = {}
        for name in names:
            function, after = RUNS[name]
            lane_of[name] = (lane_of[after[0]] if after else
                             min(range(WORKERS), key=list(lane_of.values()).count))
            self._futures[name] = self._lanes[lane_of[name]].submit(function, self)

    def result(self, name: str):
        return self._futures[name].result()

    def mktemp(self, name: str) -> Path:
        return self._tmp.mktemp(name)

    def stop(self) -> None:
        """Drop the runs not started (an interrupted or stopped session); wait for the rest."""
        for lane in self._lanes:
            lane.shutdown(wait=True, cancel_futures=True)


def timed(item) -> bool:
    """A test that times something: the gate's, and the live trial's gate runs."""
    return any(item.get_closest_marker(marker) for marker in TIMED_MARKERS)


def _place(item) -> int:
    return 0 if timed(item) else 2 if wanted([item]) else 1


@pytest.hookimpl(trylast=True)  # after -k and -m deselected theirs
def pytest_collection_modifyitems(items: list) -> None:
    """The timed tests first, the tests that read background runs last."""
    items.sort(key=_place)  # stable: each group keeps its order


@pytest.fixture(scope="session")
def background_runs(request: pytest.FixtureRequest, tmp_path_factory, gate) -> BackgroundRuns:
    runs = BackgroundRuns(wanted(request.session.items), tmp_path_factory, gate)
    request.config.stash[RUNS_KEY] = runs  # stopped after the last test (pytest_runtestloop)
    return runs


@pytest.fixture(autouse=True)
def _background_runs_started(request: pytest.FixtureRequest) -> None:
    """From the first test after the timed ones: the runs start beside it."""
    if not timed(request.node):
        request.getfixturevalue("background_runs")


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session):
    """No run outlives the tests: the gate measures again and saves its history after them."""
    try:
        return (yield)
    finally:
        runs = session.config.stash.get(RUNS_KEY, None)
        if runs is not None:
            runs.stop()
