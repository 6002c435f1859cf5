"""A latency figure that regresses is measured again before the run is saved.

Once the last test has run, and before pytest-benchmark saves the run into the history, the
regression check is run on the first measurements; each test of a figure that regressed is
measured again here, interleaved with the baseline as its test was. The second measurement goes
into that test's benchmark (``measured_again`` in its extra_info), so the history keeps both and
the check judges the second, tonight and as part of later nights' pools (regression.as_judged).

Why: the tenth session's live trial on the Emerald Rapids VM had two unchanged runs flagged,
each by one test that ran 27-60 % slower than usual while the gate read a quiet machine (others
0.9 %, steal 0.1 %) and every other test of the run ran as usual. Such a stall lasts one test; a
change of a variant is there again a few seconds later. The second measurement costs a few
seconds, and only on a night that would otherwise fail.

A latency test whose limit verdict fails (the candidate's median over the interleaved baseline
rounds') is measured again at once, in the test, for the same reason (``latency_limit``); that
second measurement is the one the regression check then judges. So is a limit between two
candidates (``latency_between``): both are measured again, unless one already was.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

from perf_tests.harness import latency
from perf_tests.harness.judge import Verdict, judge
from perf_tests.harness.progress import outline


def measure_again(gate, benchmarks: list) -> list[tuple[str, str]]:
    """Measure again each test whose latency figure regressed (every test with
    ``--perf-measure-again=all``); record the second measurement in the gate's store and in the
    test's benchmark. Returns the (variant, shape) measured whose verdict is the second's."""
    # here, not at the top: test_latency imports this module, and these bring scipy and
    # matplotlib (a second of every gate run's collection)
    from perf_tests.harness import history, regression, reporting

    config = gate.config
    _keep_second_measurements(gate, benchmarks)
    if config.measure_again == "never":
        return []
    with warnings.catch_warnings():  # finish_run reads the history again and names what it skips
        warnings.simplefilter("ignore", history.HistoryWarning)
        runs = history.load_runs(history.storage_folder(config.results_dir, config.arch))
    current = reporting.current_latency(gate)
    _, comparisons, _ = reporting.latency_check(gate, runs, current)
    regressed = regression.measure_again(comparisons, current)
    recorded = [key for key in current if key not in regressed and key not in
                gate.store.latency_again] if config.measure_again == "all" else []
    shapes = {shape.id: shape for shape in config.shapes}
    for variant, shape in regressed + recorded:
        verdict = (variant, shape) in regressed
        with outline(_why(comparisons, variant, shape) if verdict else
                     f"measuring {variant} at {shape} again (--perf-measure-again=all)"):
            again = latency.interleaved(gate.pool, config, variant, shapes[shape])
        # the verdict reads measured_again; recorded_again is kept for replays (replay.py)
        if verdict:
            gate.store.latency_again[(variant, shape)] = again
            _into_benchmarks(benchmarks, variant, shape, "measured_again", again)
        else:
            _into_benchmarks(benchmarks, variant, shape, "recorded_again", again)
    return regressed


def _keep_second_measurements(gate, benchmarks: list) -> None:
    """The second measurements taken in the tests (a limit verdict that failed), into the
    benchmarks of the tests they measured again, so that the history keeps them."""
    for (variant, shape), again in gate.store.latency_again.items():
        _into_benchmarks(benchmarks, variant, shape, "measured_again", again)


def _into_benchmarks(benchmarks: list, variant: str, shape: str, name: str, again) -> None:
    for bench in benchmarks:
        if _is_test_of(bench, variant, shape):
            bench.extra_info[name] = again.as_measured_again()


def _why(comparisons: list, variant: str, shape: str) -> str:
    flagged = max((c for c in comparisons if c.variant == variant and c.regressed),
                  key=lambda c: c.factor)
    return (f"measuring {variant} at {shape} again: its latency regressed (x{flagged.factor:.3f} "
            f"[{flagged.shape}]); the verdict is the second measurement's")


def _is_test_of(bench, variant: str, shape: str) -> bool:
    """Is this benchmark the latency test of (variant, shape)? Not its ratio group's."""
    info = getattr(bench, "extra_info", {})
    return (info.get("variant"), info.get("shape")) == (variant, shape) and "figure" not in info


def latency_limit(gate, limit, variant: str, shape, result, benchmark) -> Verdict:
    """A latency test's verdict against its limit (the median over the interleaved baseline
    rounds' median). One that fails is judged again on a second measurement, taken at once: the
    recording of the eleventh session had torch-int8 at 0.755 and 0.756 against the limit of
    then, 0.75, in two runs of 26 (0.578-0.731 in the others), and 0.603 and 0.731 measured
    again. The second measurement is also the one the regression check judges
    (``measured_again``)."""
    config = gate.config
    verdict = _limit_verdict(limit, result, config, shape.id)
    if verdict.passed or config.measure_again == "never":
        return verdict
    with outline(f"measuring {variant} at {shape.id} again: {verdict.message}"):
        again = latency.interleaved(gate.pool, config, variant, shape)
    gate.store.latency_again[(variant, shape.id)] = again
    benchmark.extra_info["measured_again"] = again.as_measured_again()
    second = _limit_verdict(limit, again, config, shape.id)
    return replace(second, message=f"{second.message}; measured again, the first measurement "
                                   f"{verdict.measured:.3f}")


def _limit_verdict(limit, result, config, shape: str) -> Verdict:
    baseline_ms = result.as_dict()["paired_baseline_median_ms"]
    return judge(limit, result.ratio, result.median_ms, baseline_ms, config.arch_preset, shape)


def latency_between(gate, limit, shape) -> Verdict:
    """A limit between two candidates (onnx-int8-tuned-vs-ct2-int8): the quotient of their
    medians, each from its latest measurement (the second, where its own limit failed first).
    When it fails, each of the two without a second measurement is measured again at once and
    the limit judged on those; they are also the ones the regression check then judges."""
    config = gate.config
    pair = (limit.candidate, limit.baseline)
    verdict = _pair_verdict(gate, limit, shape.id)
    fresh = [v for v in pair if (v, shape.id) not in gate.store.latency_again]
    if verdict.passed or config.measure_again == "never" or not fresh:
        return verdict
    with outline(f"measuring {' and '.join(fresh)} at {shape.id} again: {verdict.message}"):
        for variant in fresh:
            gate.store.latency_again[(variant, shape.id)] = latency.interleaved(
                gate.pool, config, variant, shape)
    second = _pair_verdict(gate, limit, shape.id)
    return replace(second, message=f"{second.message}; measured again, the first measurement "
                                   f"{verdict.measured:.3f}")


def _latest(gate, variant: str, shape: str):
    """A test's latest measurement: the second where it was measured again."""
    key = (variant, shape)
    return gate.store.latency_again.get(key) or gate.store.latency[key]


def _pair_verdict(gate, limit, shape: str) -> Verdict:
    candidate, other = (_latest(gate, v, shape) for v in (limit.candidate, limit.baseline))
    return judge(limit, candidate.median_ms / other.median_ms, candidate.median_ms,
                 other.median_ms, gate.config.arch_preset, shape)
