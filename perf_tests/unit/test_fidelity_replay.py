"""The gate's fidelity on recorded histories: same data, same verdicts, every time, in seconds.

perf_tests/unit/data/histories/ holds unchanged whole-gate latency runs recorded on this
project's machines with ``python -m perf_tests.harness.record`` (its README says which machine,
when, and how): a quiet series, and runs with a memory-streaming neighbour busy part of the time
(a machine slower for whole runs, unevenly across variants). Planted shifts are applied to the
recorded rounds, as ``--perf-plant`` applies them to live ones. The live trial of the same
promises is ``tox -e fidelity``.
"""

import statistics

import pytest

from perf_tests.harness import changepoints, history, regression, replay
from perf_tests.harness.config import ROOT
from perf_tests.harness.regression import Rule

pytestmark = pytest.mark.unit

HISTORIES = ROOT / "perf_tests" / "unit" / "data" / "histories"
# unchanged-run recordings ("-trial": a live trial's, its variants at one shape); "-contended"
# ones are the same machine busier, and "-twice" one measured each test twice in each run (the
# live trial's variants at one shape: tests below)
RECORDED = sorted(p.name for p in HISTORIES.glob("*") if p.is_dir()
                  and not p.name.endswith(("-contended", "-twice")))


@pytest.fixture(scope="module", params=RECORDED)
def runs(request):
    return history.load_runs(HISTORIES / request.param)


def test_unchanged_runs_raise_at_most_one_false_alarm_in_twenty(runs):
    tally = replay.aa_tries(runs, Rule())
    assert tally.tries >= 19, tally.summary()
    assert tally.hits <= tally.tries // 20, "\n".join([tally.summary(), *tally.lines])


def test_a_25pc_slower_variant_is_caught_where_the_noise_allows(runs):
    """The promise is 19 of 20 where the noise allows (the check's 'catches' is at most 1.25);
    where it does not, the report says so, and those tries are counted apart. Since a
    regression takes two measurements (the second taken again), 'catches' is larger: within
    reach are 113 of 147 tries on the Emerald Rapids VM (120 with one measurement) and 6 of 84
    on the Zen 4 VM (18), whose figures move by 4-9 % between unchanged runs, and 4 of 125 in
    the Zen 3 VM's trial, whose figures moved by 6-10 %."""
    tally = replay.planted_tries(runs, Rule(), 0.25)
    assert short_of(5, tally.tries) == shortfall(runs, "25% tries within reach short of 5"), \
        tally.summary()
    assert tally.hits >= tally.tries - 1, "\n".join(
        [tally.summary(), *[line for line in tally.lines if "MISSED" in line]])
    assert short_of(tally.hidden // 2, tally.hidden_caught) == shortfall(
        runs, "25% hidden caught short of half"), tally.summary()


def test_a_40pc_slower_variant_is_caught_every_time_once_the_pool_has_grown(runs):
    """Only the first six judged runs' small pools (5-10 runs: a wide t quantile) hide a 40 %
    change."""
    tally = replay.planted_tries(runs, Rule(), 0.40)
    assert tally.hits == tally.tries - shortfall(runs, "40% missed within reach"), "\n".join(
        [tally.summary(), *[line for line in tally.lines if "MISSED" in line]])
    early = tuple(run.label for run in runs[regression.MIN_POOL:regression.MIN_POOL + 6])
    hidden = [line for line in tally.lines if "the noise hides it" in line]
    late = [line for line in hidden if not line.startswith(early)]
    assert len(late) == shortfall(runs, "40% hidden after the first judged runs"), late
    if not late:
        assert tally.tries >= 0.8 * (tally.tries + tally.hidden), tally.summary()


# Busier-machine recordings on which the promise is not met yet (results/README.md), with the
# reason. Listed, not skipped: the test fails the day such a recording meets the promise, so
# that it is dropped from here. The Emerald Rapids one (PyTorch x1.20-x1.26 net of the machine)
# was met once the gate read the neighbour (the test below).
UNMET_ON_A_BUSIER_MACHINE: dict[str, str] = {}


# the recordings with a busier-machine recording of the same machine beside them
WITH_BUSIER = [name for name in RECORDED if (HISTORIES / f"{name}-contended").is_dir()]


@pytest.mark.parametrize("runs", WITH_BUSIER, indirect=True)
def test_a_busier_machine_is_no_regression(runs):
    label = runs[0].path.parents[1].name
    busier = HISTORIES / f"{label}-contended"
    tally = replay.slow_machine_tries(runs, history.load_runs(busier), Rule())
    met = tally.tries >= 5 and tally.hits <= max(1, tally.tries // 20)
    if label in UNMET_ON_A_BUSIER_MACHINE:
        assert not met, f"{label} now meets the promise: drop it from UNMET_ON_A_BUSIER_MACHINE"
        pytest.xfail(f"{label}: {UNMET_ON_A_BUSIER_MACHINE[label]} ({tally.summary()})")
    assert met, "\n".join([tally.summary(), *tally.lines])


SHARES = ("others_cpu_share", "steal_share")


def test_the_neighbour_read_during_the_rounds_is_what_keeps_a_busier_machine_quiet():
    """The Emerald Rapids busier runs were recorded with the gate reading the other processes'
    share of the CPUs: every test read the neighbour, so no latency figure is judged. With that
    reading taken out, the same runs flag PyTorch, as they did before the gate read it."""
    runs = history.load_runs(HISTORIES / "intel-emerald-rapids")
    busier = history.load_runs(HISTORIES / "intel-emerald-rapids-contended")
    shares = [regression.busy_share(entry) for run in busier for entry in run.latency().values()]
    assert len(shares) >= 5 * 14 and min(shares) > regression.BUSY_SHARE, shares
    entries = [run.latency() for run in runs]

    def flagged(read: bool) -> int:
        count = 0
        for run in busier:
            now = {key: {**entry, "extra_info": {k: v for k, v in entry["extra_info"].items()
                                                 if read or k not in SHARES}}
                   for key, entry in run.latency().items()}
            found = replay.judge(now, entries, Rule())
            assert found and all((c.busy is not None) == read for c in found)
            count += any(c.regressed for c in found)
        return count

    assert flagged(read=True) == 0
    assert flagged(read=False) == 4  # of 5: pytorch-fp32, and torch-int8 in one


def test_every_variant_30pc_slower_is_no_regression(runs):
    """The machine's mood is read off the run itself: a uniform slowdown cancels exactly."""
    entries = [run.latency() for run in runs]
    for index in range(len(runs) - 5, len(runs)):
        slow = {key: replay.slowed(entry, 1.30, interleaved=True)
                for key, entry in entries[index].items()}
        found = replay.judge(slow, entries[:index], Rule())
        assert found and not any(c.regressed for c in found)
        unslowed = replay.judge(entries[index], entries[:index], Rule())
        assert [c.machine_factor for c in found] == pytest.approx(
            [1.30 * c.machine_factor for c in unslowed], rel=1e-9)


# The series each recording's replay searches, as results/README.md quotes them: one per
# figure, and one over all shapes of a variant measured at more than one (the one-shape
# recordings' five variants at b1-s16 have none)
SEARCHED = {"amd-epyc-zen3-avx2-trial": 5, "amd-epyc-zen4": 12, "amd-epyc-zen4-avx2-trial": 5,
            "intel-emerald-rapids": 21, "intel-emerald-rapids-twice": 5}


def test_no_change_point_in_unchanged_runs(runs):
    tally = replay.unchanged_change_points(runs)
    assert tally.hits == 0, "\n".join(tally.lines)
    figures = {key for run in runs[-changepoints.WINDOW:] for key in run.latency()}
    many = {v for v, _ in figures if sum(1 for w, _ in figures if w == v) > 1}
    assert tally.tries == len(figures) + len(many) == SEARCHED[runs[0].path.parents[1].name]


def lasting(runs, factors: dict, start: int) -> list:
    """The runs, the variants in ``factors`` that much faster for good from run ``start`` on (a
    library's upgrade, as a nightly history holds)."""
    return [run if i < start else replay._Shifted(run, {
        key: replay.slowed(entry, factors.get(key[0], 1.0)) for key, entry in run.latency().items()})
        for i, run in enumerate(runs)]


def test_the_one_shape_recording_measured_twice_searches_five_series():
    runs = history.load_runs(HISTORIES / "intel-emerald-rapids-twice")
    tally = replay.unchanged_change_points(runs)
    assert (tally.hits, tally.tries) == (0, SEARCHED["intel-emerald-rapids-twice"])


def test_a_history_with_lasting_changes_counts_each_series_once():
    """The replay of a team's own history (which holds upgrades): a series with several
    confirmed change points is one hit, so the rate stays a rate (it raised in binomtest)."""
    runs = history.load_runs(HISTORIES / "intel-emerald-rapids")
    onnx = {v: 0.8 for v in ("onnx-fp32", "onnx-o3", "onnx-int8", "onnx-int8-tuned")}
    runs = lasting(lasting(runs, onnx, 9), {"pytorch-fp32": 0.85, "torch-int8": 0.85}, 18)
    tally = replay.unchanged_change_points(runs)
    assert 0 < tally.hits <= tally.tries
    assert tally.interval()[0] > 0


def test_a_variant_new_to_the_history_is_no_drift_try_before_it_was_measured():
    """A variant declared late has no series before the start of a drift: not a try (the
    replay raised on it)."""
    runs = history.load_runs(HISTORIES / "intel-emerald-rapids")
    late = [run if i >= len(runs) - 3 else replay._Shifted(run, {
        key: entry for key, entry in run.latency().items() if key[0] != "ct2-int8"})
        for i, run in enumerate(runs)]
    tally = replay.drift_tries(late, 0.10, [len(runs) - 8])
    assert not any(line.startswith("ct2-int8") for line in tally.lines)
    assert tally.tries + tally.hidden > 0


# Recorded shortfalls of a promise, by recording and trial: the exact count, so that a change
# of the rule either way fails the test (results/README.md has each one).
SHORTFALLS = {
    # both onnx-int8 at b8-s64, whose reach (x1.07-x1.08) sits just under the 10 % drift
    ("intel-emerald-rapids", "10% drift missed within reach"): 2,
    # a ct2-int8 round twice as fast as its others, then a usual one (+92 %)
    ("intel-emerald-rapids", "unchanged pairs failing min:30%"): 1,
    # pytorch-fp32 rounds interleaved with a candidate stalled 2-3x for a whole test (#0003,
    # #0004, #0008, #0018): the ratio fell, and rose again the run after
    ("amd-epyc-zen4", "unchanged pairs failing median:20% ratio"): 5,
    ("amd-epyc-zen4", "busier pairs failing median:20% ratio"): 12,
    # a noisy hour: runs #0013 and #0027 beside a neighbour at up to 9 % and 15 % of the CPUs,
    # whose figures the gate reads as busy and does not judge (the 3 plants missed within reach)
    # and whose noise widens the reach of the runs after them (46 plants hidden late)
    ("amd-epyc-zen4-avx2-trial", "40% missed within reach"): 3,
    ("amd-epyc-zen4-avx2-trial", "40% hidden after the first judged runs"): 46,
    ("amd-epyc-zen4-avx2-trial", "15% drift missed within reach"): 1,
    ("amd-epyc-zen4-avx2-trial", "10% drift tries within reach short of 3"): 3,  # none within
    ("amd-epyc-zen4-avx2-trial", "60% missed by min:30%"): 14,
    ("amd-epyc-zen4-avx2-trial", "20% drift missed"): 6,  # 1 of 15 within reach, 5 beyond it
    ("amd-epyc-zen4-avx2-trial", "unchanged pairs failing min:30%"): 4,
    ("amd-epyc-zen4-avx2-trial", "unchanged pairs failing median:20% ratio"): 4,
    # the Zen 3 VM the issue was filed on: figures net of the mood moved by 6-10 % (standard
    # deviation of the log) between unchanged runs, so the reach is wide (onnx-int8 x1.39-x1.62):
    # no false alarm, 3 of 4 plants of 25 % within reach caught; what falls short is how many
    # tries the noise lets within reach, and how many beyond it are caught all the same
    ("amd-epyc-zen3-avx2-trial", "25% tries within reach short of 5"): 1,  # 4 within reach
    ("amd-epyc-zen3-avx2-trial", "25% hidden caught short of half"): 13,  # 47 of 121
    ("amd-epyc-zen3-avx2-trial", "40% hidden after the first judged runs"): 72,
    ("amd-epyc-zen3-avx2-trial", "15% drift tries within reach short of 3"): 1,
    ("amd-epyc-zen3-avx2-trial", "10% drift tries within reach short of 3"): 3,  # none within
    ("amd-epyc-zen3-avx2-trial", "20% drift missed"): 15,  # 5 of 5 within reach found, 15 beyond
    ("amd-epyc-zen3-avx2-trial", "60% missed by min:30%"): 6,
    ("amd-epyc-zen3-avx2-trial", "unchanged pairs failing min:30%"): 3,
    ("amd-epyc-zen3-avx2-trial", "unchanged pairs failing median:20% ratio"): 1,
}


def shortfall(runs, trial: str) -> int:
    return SHORTFALLS.get((runs[0].path.parents[1].name, trial), 0)


def short_of(floor: int, count: int) -> int:
    """How far a count falls short of the floor a promise sets (0 when it reaches it)."""
    return max(floor - count, 0)


def test_a_sustained_drift_is_found_within_five_runs_where_the_noise_allows(runs):
    """Every drift within the report's reach (changepoints.drift_reach) is found, at 10 % and at
    15 %, but the recorded shortfalls; the rest are counted apart. The recorded figures move by
    2-14 % between unchanged runs, so a 10 % drift is within reach of the steadier series only
    (the Zen 4 VM: 4 of 12 tries; the Emerald Rapids VM: 16 of 21)."""
    starts = list(range(len(runs) // 2, len(runs) - replay.FOUND_WITHIN + 1, 3))
    tries = len(starts) * len({key[0] for run in runs for key in run.latency()})
    for drift, missed in ((0.15, shortfall(runs, "15% drift missed within reach")),
                          (0.10, shortfall(runs, "10% drift missed within reach"))):
        tally = replay.drift_tries(runs, drift, starts)
        short = shortfall(runs, f"{drift:.0%} drift tries within reach short of 3")
        assert short_of(3, tally.tries) == short and tally.hits == tally.tries - missed, \
            "\n".join([tally.summary(), *tally.lines])
        assert tally.tries + tally.hidden == tries
    missed = shortfall(runs, "20% drift missed")
    assert replay.drift_tries(runs, 0.20, starts).hits == tries - missed


def test_drift_reach_grows_with_the_noise_and_shrinks_with_the_history():
    steady = [0.01 * (-1) ** i for i in range(20)]  # successive differences of 0.02
    noisy = [5 * value for value in steady]
    assert 1.05 <= changepoints.drift_reach(steady) < changepoints.drift_reach(noisy)
    assert changepoints.drift_reach(noisy) < changepoints.drift_reach(noisy[:10])
    assert changepoints.drift_reach(noisy[:7]) == float("inf")  # 2 runs before the last 5


def test_the_compare_fail_recipe_on_raw_rounds_passes_unchanged_pairs_but_misses_25pc(runs):
    """pytest-benchmark compares one run with one run: on the raw rounds, the threshold that
    passes unchanged pairs here (the Zen 4 VM all 25; the Emerald Rapids VM all but the recorded
    shortfall) catches a 25 % slower variant only about a third to half of the time, and a 60 %
    slower one every time (results/README.md)."""
    unchanged, planted = replay.compare_fail_tries(runs, replay.RAW_RECIPE, 0.25)
    assert unchanged.tries >= 20, unchanged.summary()
    assert unchanged.hits == shortfall(runs, "unchanged pairs failing min:30%"), "\n".join(
        unchanged.lines)
    assert planted.tries // 3 <= planted.hits < planted.tries * 0.6, planted.summary()
    assert replay.compare_fail_tries(runs, replay.RAW_RECIPE, 0.60)[1].hits == \
        planted.tries - shortfall(runs, "60% missed by min:30%")


def test_the_readme_compare_fail_recipe_on_the_ratio_group(runs):
    """The README's recipe: ``median:20%`` on the ratio group (each candidate round over the
    PyTorch round beside it). Where PyTorch's interleaved rounds keep their pace (the Emerald
    Rapids VM) it passes every unchanged pair and catches a 25 % slower variant in 19 of 20; on
    the Zen 4 VM, whose PyTorch rounds stalled 2-3x for whole tests now and then, it fails the
    recorded unchanged pairs, and the README says to replay a runner's own history first."""
    unchanged, planted = replay.compare_fail_tries(runs, replay.RATIO_RECIPE, 0.25)
    assert unchanged.tries >= 20, unchanged.summary()
    assert unchanged.hits == shortfall(runs, "unchanged pairs failing median:20% ratio"), \
        "\n".join(unchanged.lines)
    if not unchanged.hits:
        assert planted.hits >= planted.tries * 19 / 20, planted.summary()


@pytest.mark.parametrize("runs", WITH_BUSIER, indirect=True)
def test_a_busier_machine_fails_the_ratio_recipe_less_than_the_raw_one(runs):
    """The mood cancels from the ratio: busier-machine runs against the unchanged ones fail the
    raw recipe in about half the pairs or more, the ratio recipe in none on the Emerald Rapids
    VM (the Zen 4 VM: its recorded shortfall, the same PyTorch stalls)."""
    slow = history.load_runs(HISTORIES / f"{runs[0].path.parents[1].name}-contended")
    raw = replay.compare_fail_busier(runs, slow, replay.RAW_RECIPE)
    ratio = replay.compare_fail_busier(runs, slow, replay.RATIO_RECIPE)
    assert raw.tries == ratio.tries >= 5 * len(slow) and raw.hits >= raw.tries * 0.4, \
        raw.summary()
    assert ratio.hits == shortfall(runs, "busier pairs failing median:20% ratio"), "\n".join(
        ratio.lines)


def test_the_replay_tool_prints_every_rate(capsys):
    """The printing, on the smaller recording: the tests above assert the rates it prints on
    every recording, and a whole replay of the Emerald Rapids one takes 9 s."""
    assert replay.main([str(HISTORIES / "amd-epyc-zen4")]) == 0
    out = capsys.readouterr().out
    for part in ("A/A false alarms:", "planted 25% slowdown caught:", "Wilson 95 %",
                 "confirmed change points in the unchanged history", "sustained 10% drift found",
                 "--benchmark-compare-fail=min:30% on the latency group: unchanged pairs",
                 "--benchmark-compare-fail=median:20% on the latency ratio group: planted"):
        assert part in out


def test_a_short_or_missing_history_is_one_line(tmp_path, capsys):
    assert replay.main([str(tmp_path / "nowhere")]) == 2
    assert replay.main([str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


@pytest.mark.parametrize("argument, message", [
    ("--min-factor=0", "argument --min-factor: 0 is out of range: pass a number above 1"),
    ("--false-alarm-rate=1", "argument --false-alarm-rate: 1 is out of range: pass a number "
                             "above 0 and below 0.5"),
    ("--slowdown=nan", "argument --slowdown: 'nan' is not a finite number"),
    ("--drift=-0.1", "argument --drift: -0.1 is out of range"),
])
def test_a_setting_out_of_the_gates_range_is_one_usage_line(argument, message, capsys):
    """The replay takes the gate's own ranges: a rate of 1 would judge nothing and print rates
    that look like results."""
    with pytest.raises(SystemExit) as stop:
        replay.main([str(HISTORIES / "amd-epyc-zen4"), argument])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and message in last
    assert last.startswith("python -m perf_tests.harness.replay: error: ")


def test_the_recorder_wants_one_run_at_least(capsys):
    from perf_tests.harness import record

    with pytest.raises(SystemExit) as stop:
        record.main(["--label", "zz", "--runs", "0"])
    assert stop.value.code == 2
    assert "argument --runs: 0 is out of range: pass a whole number at least 1" in (
        capsys.readouterr().err)


TWICE = HISTORIES / "intel-emerald-rapids-twice"  # every test measured twice in each run


def test_the_recorded_false_alarms_were_single_test_stalls_that_measuring_again_clears():
    """On the Emerald Rapids recording with every test measured twice, judged on the first
    measurement alone two unchanged runs fail: torch-int8 x1.355 in #0020 and onnx-int8 x1.204
    in #0024, each one test slower while the rest of its run was as usual. Measured again, as
    the gate now does, neither fails, and a 25 % slower variant is still caught where the
    noise allows."""
    runs = history.load_runs(TWICE)
    once = replay.aa_tries(runs, Rule(measure_again=False))
    flagged = [line.split("REGRESSED ")[1] for line in once.lines if "REGRESSED" in line]
    assert flagged == ["torch-int8 [b1-s16] x1.355", "onnx-int8 [b1-s16] x1.204"], once.lines
    assert replay.aa_tries(runs, Rule()).hits == 0
    planted = replay.planted_tries(runs, Rule(), 0.25)
    assert planted.tries >= 10 and planted.hits >= planted.tries - 1, "\n".join(planted.lines)


def test_two_measurements_of_one_run_are_nearly_independent():
    """The second measurement's residual hardly follows the first's: a pooled correlation of
    0.12 over the recording's 5 figures x 26 runs (onnx-int8 alone 0.62: a slow spell over both
    of its measurements in #0024), so a stall in one is little reason to expect one in the
    other: the assumption behind judging a regression on both."""
    runs = history.load_runs(TWICE)
    entries = [run.latency() for run in runs]
    firsts = [regression.figures({k: replay._first(e) for k, e in run.items()}) for run in entries]
    seconds = [regression.figures({k: replay._second(e) for k, e in run.items()})
               for run in entries]
    usual = regression.usual_levels(firsts)
    pairs = [(first[key] - usual[key] - regression.mood(first, usual, key[0]),
              second[key] - usual[key] - regression.mood(first, usual, key[0]))
             for first, second in zip(firsts, seconds) for key in first
             if key[0] == key[2] and key in second and second[key] != first[key]]
    assert len(pairs) >= 5 * 25
    r = statistics.correlation(*zip(*pairs))
    assert abs(r) < 0.25, r

