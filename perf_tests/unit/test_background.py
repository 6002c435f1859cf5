"""The integration tests' background runs: which start, in which lane, in what order, and when
the tests that read them run (perf_tests/integration/background.py)."""

import threading

import pytest

from perf_tests.integration import background

pytestmark = pytest.mark.unit


class Factory:
    """pytest's temporary-folder factory, recording what was asked of it and from which thread."""

    def __init__(self, root):
        self.root, self.calls = root, []

    def getbasetemp(self):
        self.calls.append(("getbasetemp", threading.current_thread().name))
        return self.root

    def mktemp(self, name):
        self.calls.append(("mktemp", threading.current_thread().name))
        folder = self.root / name
        folder.mkdir()
        return folder


class Item:
    """A collected test: the fixtures it reads, and its marks (a name, or pytest.mark.x(...))."""

    def __init__(self, *fixturenames, marker=None):
        self.fixturenames = fixturenames
        if isinstance(marker, str):
            marker = getattr(pytest.mark, marker)
        self.marks = [] if marker is None else [marker]

    def iter_markers(self, name):
        return (mark.mark for mark in self.marks if mark.name == name)

    def get_closest_marker(self, name):
        return next(self.iter_markers(name), None)


@pytest.fixture
def runs(monkeypatch):
    """Five runs: a chain (export, then int8, then a gate run of it) and two on their own; each
    returns the thread it ran in."""
    registered = {}
    monkeypatch.setattr(background, "RUNS", registered)

    def lane(runs):
        return threading.current_thread().name

    def reads_int8(runs):
        return runs.result("int8"), threading.current_thread().name

    for name, after, function in [("export", (), lane), ("int8", ("export",), lane),
                                  ("gate_run", ("int8",), reads_int8), ("planted", (), lane),
                                  ("paths", (), lane)]:
        registered[name] = (function, after)
    return registered


def test_a_run_starts_after_the_runs_it_reads(runs):
    items = [Item("tmp_path", "gate_run"), Item("paths"), Item("export"), Item("gate", marker="gate")]
    assert background.wanted(items) == ["export", "int8", "gate_run", "paths"]


def test_a_run_read_only_by_tests_their_marks_skip_is_not_started(runs):
    not_installed = pytest.mark.skipif(True, reason="the project is not installed")
    installed = pytest.mark.skipif(False, reason="the project is not installed")
    assert background.wanted([Item("paths", marker=not_installed), Item("planted")]) == ["planted"]
    assert background.wanted([Item("paths", marker=pytest.mark.skip)]) == []
    assert background.wanted([Item("paths", marker=installed)]) == ["paths"]
    # a string condition is pytest's to evaluate later: the run starts
    assert background.wanted([Item("paths", marker=pytest.mark.skipif("True"))]) == ["paths"]
    # both of an item's reads are dropped with it, but not what another test reads
    assert background.wanted([Item("gate_run", "paths", marker=not_installed),
                              Item("export")]) == ["export"]


def test_a_chain_keeps_one_lane_and_the_others_take_the_emptier_one(runs, tmp_path):
    names = background.wanted([Item("gate_run"), Item("planted"), Item("paths")])
    started = background.BackgroundRuns(names, Factory(tmp_path), gate=None)
    try:
        chain = started.result("export")
        assert started.result("int8") == chain and started.result("gate_run") == (chain, chain)
        assert started.result("planted") == started.result("paths") != chain
    finally:
        started.stop()


def test_the_base_folder_is_made_before_any_run_starts(monkeypatch, tmp_path):
    # two lanes asking pytest for its base folder at once can make two (seen in a CI run)
    monkeypatch.setattr(background, "RUNS", {
        name: (lambda runs, name=name: runs.mktemp(name), ()) for name in ("one", "two")})
    factory = Factory(tmp_path)
    started = background.BackgroundRuns(["one", "two"], factory, gate=None)
    started.stop()
    assert factory.calls[0] == ("getbasetemp", threading.current_thread().name)
    assert sorted(call for call, _ in factory.calls[1:]) == ["mktemp", "mktemp"]


def test_a_failed_run_fails_the_test_that_reads_it(monkeypatch, tmp_path):
    def broken(runs):
        raise RuntimeError("optimum-cli exited 1")

    monkeypatch.setattr(background, "RUNS", {"broken": (broken, ())})
    started = background.BackgroundRuns(["broken"], Factory(tmp_path), gate=None)
    started.stop()
    with pytest.raises(RuntimeError, match="optimum-cli exited 1"):
        started.result("broken")


def test_the_timed_tests_run_first_and_the_readers_of_background_runs_last(runs):
    items = [Item("paths"), Item("tmp_path"), Item("variant", marker="gate"), Item("export"),
             Item("shape", marker="gate"), Item("trial", marker="fidelity"),
             Item("tmp_path", marker="unit")]
    ordered = list(items)
    background.pytest_collection_modifyitems(ordered)
    assert ordered == [items[2], items[4], items[5], items[1], items[6], items[0], items[3]]
    assert [background.timed(item) for item in items] == [False, False, True, False, True, True,
                                                          False]
