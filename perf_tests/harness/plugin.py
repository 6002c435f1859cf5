"""The pytest plugin: the --perf-* options, the session's gate, parametrization and the summary.

Options are read once into a frozen ``GateConfig`` at configure time; bad input (an unknown
variant or preset, a broken limits file, a model that is not seq2seq, an unwritable cache) stops
the session there with one line and exit code 4, before anything is built or written.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import pytest
from filelock import FileLock

from perf_tests.harness import cpu, engines, history, latency, models, summary
from perf_tests.harness.cache import ArtifactCache, ArtifactError
from perf_tests.harness.config import ConfigError, GateConfig, build_config
from perf_tests.harness.judge import Limit, Limits, ModelFacts, Verdict, judge, no_ratio
from perf_tests.harness.models import ModelError, ModelSpec
from perf_tests.harness.pool import VariantPool
from perf_tests.harness.store import ResultStore

# option name (after --perf-) -> (environment variable, help text stating the default)
OPTIONS = {
    "model": ("PERF_MODEL", "model under test: t5-small-random/t5-tiny-enfr (embedded, the "
              "default), a local Hugging Face seq2seq folder, or a hub id such as t5-small"),
    "variants": ("PERF_VARIANTS", "comma-separated variants (default: every variant the "
                 "variants file declares, but those marked default = false)"),
    "variants-file": ("PERF_VARIANTS_FILE", "TOML file declaring the variants: engine, recipe, "
                      "load options or a folder (default: perf_tests/variants.toml)"),
    "preset": ("PERF_PRESET", "int8 preset: auto (default, the best this CPU runs), arm64, avx2,"
               " avx512 or avx512_vnni; one the CPU cannot run is skipped with its reason"),
    "arch": ("PERF_ARCH", "require this <machine>-<preset>, e.g. x86_64-avx2, and stop if the "
             "CPU cannot run it (tox environments set it; default: not required)"),
    "profile": ("PERF_PROFILE", "smoke (default: 2 shapes, 8 rounds) or full (3 shapes, 16 rounds)"),
    "shapes": ("PERF_SHAPES", "comma-separated latency shapes b<batch>-s<tokens> (default: the "
               "profile's)"),
    "rounds": ("PERF_ROUNDS", "timed rounds per latency test (default: the profile's)"),
    "threads": ("PERF_THREADS", "threads for every engine, at most the machine's CPUs (default: "
                "the CPUs this process may run on, i.e. its affinity / CPU set)"),
    "new-tokens": ("PERF_NEW_TOKENS", "tokens generated per latency call (default: 32)"),
    "sentences": ("PERF_SENTENCES", "how many of the test set's first sentences the quality "
                  "tests translate, or all (default: the profile's: 300 smoke, all full)"),
    "cache-dir": ("PERF_CACHE_DIR", "artifact cache folder (default: .perf-cache in the repo)"),
    "results-dir": ("PERF_RESULTS_DIR", "results folder (default: results/ in the repo)"),
    "limits": ("PERF_LIMITS", "limits TOML file (default: perf_tests/limits.toml)"),
    "test-set": ("PERF_TEST_SET", "sacrebleu test set for a real model (default: wmt14, i.e. "
                 "newstest2014); embedded models use the embedded test split"),
    "baseline": ("PERF_BASELINE", "history the regression check compares with: latest "
                 "(default: the pool of the last --perf-baseline-runs runs), a run number, or "
                 "a pinned history file (compared with that run; noise still read off the pool)"),
    "baseline-runs": ("PERF_BASELINE_RUNS", "how many of the last comparable runs the machine's "
                      "noise is read from (default: 20; latency is judged from 5 on)"),
    "regression-factor": ("PERF_REGRESSION_FACTOR", "the smallest latency change, net of the "
                          "machine's mood, that counts however steady the machine (default: "
                          "1.10)"),
    "false-alarm-rate": ("PERF_FALSE_ALARM_RATE", "the chance that an unchanged run fails the "
                         "latency check, split over its figures; sets how far past this "
                         "machine's measured noise a change must be (default: 0.01)"),
    "measure-again": ("PERF_MEASURE_AGAIN", "which latency tests are measured a second time at "
                      "the end of the run: regressed (default: those whose figure regressed; the "
                      "verdict is the second measurement's), all (a recording of the noise "
                      "between two measurements of one run; twice the time) or never"),
    "plant": ("PERF_PLANT", "plant a regression to test the gate itself, e.g. "
              "onnx-int8:slowdown=0.25, onnx-int8:noise=0.3, or all:slowdown=0.30 for a slower "
              "machine (default: none)"),
}


@dataclass
class Gate:
    """Everything the gate's tests share for a session; heavy parts are made on first use."""

    config: GateConfig
    limits: Limits
    specs: dict[str, ModelSpec]
    verdicts: list[Verdict] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    outcome: object = None  # reporting.Outcome, once the run is finished
    # (variant, shape id) of the selected test_token_timing items: test_latency takes those
    # figures while the variant is loaded, and only those
    token_timings_wanted: set = field(default_factory=set)
    # variants whose peak memory or size the selected tests need: measured side by side
    memory_wanted: frozenset = frozenset()
    notes: list[str] = field(default_factory=list)  # said in the header: engines.prepare_process
    # (variant, role) pairs the selected gate tests load: built two at a time when the pool is
    # first asked for, before the first test times anything (see prebuild)
    build_wanted: tuple = ()
    raw_options: dict = field(default_factory=dict)  # what the prebuild helper is started with
    check_notes: list[str] = field(default_factory=list)  # said with the regression check
    # latency limits the limits file judges at other shapes only (only_at), one line each
    not_judged: list[str] = field(default_factory=list)
    _pool: VariantPool | None = None
    _store: ResultStore | None = None

    @property
    def pool(self) -> VariantPool:
        if self._pool is None:
            self._pool = VariantPool(self.config, ArtifactCache(self.config.cache_dir), self.specs)
            if self.build_wanted:
                from perf_tests.harness import prebuild

                prebuild.build_all(self._pool, self.build_wanted, self.raw_options)
        return self._pool

    @property
    def store(self) -> ResultStore:
        if self._store is None:
            self._store = ResultStore(self.config, self.pool, self.memory_wanted)
        return self._store

    @property
    def used(self) -> bool:
        return self._store is not None

    def check(self, verdict: Verdict) -> None:
        """Record a verdict for the report, then fail the test with its one line if it failed."""
        self.verdicts.append(verdict)
        if not verdict.passed:
            pytest.fail(verdict.message, pytrace=False)

    def judges_at(self, limit: Limit, shape: str) -> bool:
        """Whether ``limit`` is judged at ``shape``; when it is not (only_at), the report says so
        instead of leaving a gap in the verdicts."""
        if limit.judged_at(shape):
            return True
        self.not_judged.append(f"{limit.candidate} vs {limit.baseline} [{shape}]: limits "
                               f"[{limit.section}] judge it at {', '.join(limit.only_at)} only")
        return False

    def skip_unrunnable(self, variant: str) -> None:
        """Skip the calling test, with the reason, when this CPU cannot run the variant."""
        reason = self.pool.skip_reason(variant)
        if reason:
            pytest.skip(reason)

    def judge_pair(self, limit: Limit, figure) -> None:
        """Judge candidate / baseline of one figure (``figure(variant)``) against its limit."""
        self.skip_unrunnable(limit.candidate)
        self.skip_unrunnable(limit.baseline)
        candidate, baseline = figure(limit.candidate), figure(limit.baseline)
        if baseline == 0:
            self.check(no_ratio(limit, candidate, baseline, self.config.arch_preset,
                                self._capped_note(limit.baseline)))
            return
        self.check(judge(limit, candidate / baseline, candidate, baseline,
                         self.config.arch_preset))

    def _capped_note(self, variant: str) -> str:
        quality = self.store.measured_quality().get(variant, {})
        if not quality.get("capped"):
            return ""
        return (f"; {quality['capped']} of {quality['sentences']} {variant} hypotheses hit the "
                "length cap: does the model ever end a sentence?")


GATE_KEY = pytest.StashKey[Gate]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perf-gate", "seq2seq perf gate")
    for name, (env, text) in OPTIONS.items():
        group.addoption(f"--perf-{name}", action="store", default=None,
                        help=f"{text} [env {env}]")


def _raw_options(config: pytest.Config) -> dict:
    raw = {}
    for name, (env, _) in OPTIONS.items():
        value = config.getoption(f"--perf-{name}")
        raw[name.replace("-", "_")] = value if value is not None else os.environ.get(env) or None
    return raw


def model_facts(spec: ModelSpec) -> ModelFacts:
    """What the limits file's model and size sections are chosen by."""
    names = (spec.name, spec.folder.name) if spec.kind == "folder" else (spec.name,)
    return ModelFacts(names, spec.fingerprint, spec.parameters)


def make_gate(raw: dict, cpu_info: cpu.CpuInfo) -> Gate:
    """Validate options, models and limits; raise ConfigError or ModelError with one line."""
    config = build_config(raw, cpu_info)
    # before the models are resolved, which imports torch
    notes = engines.prepare_process({config.declared[v].engine for v in config.variants})
    specs = {"perf": models.resolve(config.perf_model)}
    specs["quality"] = (specs["perf"] if config.quality_model == config.perf_model
                        else models.resolve(config.quality_model))
    limits = Limits.load(config.limits_file, config.preset,
                         {role: model_facts(spec) for role, spec in specs.items()},
                         variants=tuple(config.declared))
    return Gate(config, limits, specs, notes=notes, raw_options=dict(raw))


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark opens its storage
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gate: builds models and measures them (slow)")
    config.addinivalue_line("markers", "judges(metric): the test is parametrized with the "
                            "limits of this metric")
    config.addinivalue_line("markers", "unit: fast tests of the harness itself")
    config.addinivalue_line("markers", "integration: builds small models to test the harness "
                            "end to end (other architectures, planted regressions)")
    config.addinivalue_line("markers", "fidelity: the live trial of the gate against itself "
                            "(tox -e fidelity); deselected unless -m names it")
    if hasattr(config, "workerinput"):
        return
    try:
        unlike_timings(config)
        gate = make_gate(_raw_options(config), cpu.detect())
    except (ConfigError, ModelError) as error:
        raise pytest.UsageError(f"perf-gate: {error}") from None
    config.stash[GATE_KEY] = gate
    if getattr(config.option, "benchmark_storage", None) == history.DEFAULT_STORAGE:
        folder = history.storage_folder(gate.config.results_dir, gate.config.arch)
        config.option.benchmark_storage = f"file://{folder}"


def unlike_timings(config: pytest.Config) -> None:
    """Refuse the pytest-benchmark options that would time a candidate's rounds unlike the
    baseline rounds the gate times between them (time.perf_counter, the garbage collector on):
    every ratio would then compare unlike timings."""
    timer = str(config.getoption("benchmark_timer", latency.TIMER_NAME))
    if timer != latency.TIMER_NAME:
        raise ConfigError(f"--benchmark-timer {timer}: the gate times the baseline rounds "
                          f"between a candidate's with {latency.TIMER_NAME}, so the ratios "
                          "would compare unlike timings; leave the option out")
    if config.getoption("benchmark_disable_gc", False):
        raise ConfigError("--benchmark-disable-gc: the baseline rounds between a candidate's "
                          "run with the garbage collector on, so the ratios would compare "
                          "unlike timings; leave the option out")


def memory_variants(items: list):
    """The variants whose memory figures the selected items read."""
    for item in items:
        params = getattr(item, "callspec", None) and item.callspec.params
        if not params:
            continue
        marker = item.get_closest_marker("judges")
        limit = params.get("limit")
        if marker and marker.args[0] in ("peak_memory", "disk") and isinstance(limit, Limit):
            yield from (limit.candidate, limit.baseline)  # not a limit: none of this metric
        elif getattr(item, "originalname", "") == "test_peak_memory":
            yield params["variant"]


# the gate tests that read the quality model (the rest read the perf model)
QUALITY_TESTS, QUALITY_METRICS = {"test_quality"}, {"bleu", "chrf", "exact_match"}


def build_variants(items: list, baseline: str):
    """The (variant, role) pairs the selected gate items load."""
    for item in items:
        params = getattr(item, "callspec", None) and item.callspec.params
        if not params or not item.get_closest_marker("gate"):
            continue
        marker = item.get_closest_marker("judges")
        quality = (getattr(item, "originalname", "") in QUALITY_TESTS
                   or bool(marker) and marker.args[0] in QUALITY_METRICS)
        role = "quality" if quality else "perf"
        limit = params.get("limit")
        named = [params.get("variant"), params.get("candidate")]
        if isinstance(limit, Limit):
            named += [limit.candidate, limit.baseline]
        if getattr(item, "originalname", "") == "test_latency" or params.get("candidate"):
            named.append(baseline)  # its rounds are interleaved with the baseline's
        yield from ((variant, role) for variant in named if variant)


@pytest.hookimpl(trylast=True)  # after -k and -m deselected theirs
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Leave the live fidelity trial out unless asked for by -m; note which per-token figures
    are wanted; autosave every run that times something, raw samples included: that is the
    history."""
    if "fidelity" not in (config.option.markexpr or ""):
        live = [item for item in items if item.get_closest_marker("fidelity")]
        if live:
            config.hook.pytest_deselected(items=live)
            items[:] = [item for item in items if not item.get_closest_marker("fidelity")]
    gate = config.stash.get(GATE_KEY, None)
    if gate is not None:
        gate.token_timings_wanted = {
            (item.callspec.params["variant"], item.callspec.params["shape"].id)
            for item in items if getattr(item, "originalname", "") == "test_token_timing"}
        gate.memory_wanted = frozenset(memory_variants(items))
        gate.build_wanted = tuple(dict.fromkeys(build_variants(items, gate.config.baseline)))
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled:
        return
    if any("benchmark" in getattr(item, "fixturenames", ()) for item in items):
        from pytest_benchmark.utils import get_tag

        session.autosave = session.autosave or get_tag()
        session.save_data = True


def pytest_benchmark_update_json(config, benchmarks, output_json) -> None:
    """Every figure of the run (memory, BLEU, ratios, verdicts) rides along in its history file."""
    gate = config.stash.get(GATE_KEY, None)
    if gate is not None and gate.used:
        output_json["perf_gate"] = {"run_id": gate.run_id, **summary.build(gate)}


def pytest_report_header(config: pytest.Config) -> list[str]:
    gate = config.stash.get(GATE_KEY, None)
    return [*gate.config.header_lines(), *(f"perf-gate: NOTE {n}" for n in gate.notes)] \
        if gate else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    gate = metafunc.config.stash.get(GATE_KEY, None)
    if gate is None:
        return
    if "variant" in metafunc.fixturenames:
        metafunc.parametrize("variant", gate.config.variants, ids=str)
    if "candidate" in metafunc.fixturenames:  # every variant but the baseline
        candidates = [v for v in gate.config.variants if v != gate.config.baseline]
        metafunc.parametrize("candidate", candidates, ids=str)
    if "shape" in metafunc.fixturenames:
        metafunc.parametrize("shape", gate.config.shapes, ids=lambda s: s.id)
    if "limit" in metafunc.fixturenames:
        metric = metafunc.definition.get_closest_marker("judges").args[0]
        chosen = [lim for lim in gate.limits.of_metric(metric)
                  if {lim.candidate, lim.baseline} <= set(gate.config.variants)]
        if metric == "latency":  # pairs with the baseline are judged inside test_latency
            chosen = [lim for lim in chosen if lim.baseline != gate.config.baseline]
        metafunc.parametrize("limit", chosen, ids=lambda lim: lim.pair)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """An artifact that cannot be used even after a rebuild fails its test with one line."""
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(ArtifactError):
        report.longrepr = f"perf-gate: {call.excinfo.value}"
    return report


@pytest.fixture(scope="session")
def gate(pytestconfig: pytest.Config) -> Gate:
    return pytestconfig.stash[GATE_KEY]


def _finishing_gate(session: pytest.Session) -> Gate | None:
    gate = session.config.stash.get(GATE_KEY, None)
    if gate is None or not gate.used or hasattr(session.config, "workerinput"):
        return None
    return gate


# The end of a run takes two hooks, because pytest calls every wrapper's first half, then the
# plain implementations, then the wrappers' second halves. pytest-benchmark saves the run in the
# first half of its wrapper, and pytest's terminal reporter prints the terminal summary in the
# second half of its own. So the second measurements are taken in the first half of a wrapper
# outside pytest-benchmark's (they must be in the saved run), and the run is finished in a plain
# implementation: after the save, and before the terminal summary that prints its outcome.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    """Before pytest-benchmark saves this run, measure again each test whose latency regressed
    (confirm.py); then hold the history's lock while it saves and the run is finished."""
    gate = _finishing_gate(session)
    if gate is None:
        return (yield)
    _measure_again(session, gate)
    # pytest-benchmark numbers the run it saves after the files already there, without a lock:
    # two runs finishing at once could take one number, and the later write replace the earlier
    # run. So the runs of one history save, and read it back, one at a time.
    folder = history.storage_folder(gate.config.results_dir, gate.config.arch)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".save.lock")):
        return (yield)


@pytest.hookimpl(specname="pytest_sessionfinish")  # pytest registers pytest_* names only
def pytest_sessionfinish_after_save(session: pytest.Session) -> None:
    """Once pytest-benchmark has saved this run, write the summary and reports and run the
    regression check. Here and not in the terminal summary, so that nothing is lost when another
    plugin's summary raises (pytest-benchmark's --benchmark-compare-fail does)."""
    gate = _finishing_gate(session)
    if gate is None:
        return
    from perf_tests.harness import reporting

    gate.outcome = reporting.finish_run(gate)
    if gate.outcome.failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _measure_again(session: pytest.Session, gate: Gate) -> None:
    """The second measurement of what regressed; one that cannot be taken leaves the verdict to
    the first, with the reason in the summary's notes."""
    benchmark_session = getattr(session.config, "_benchmarksession", None)
    if (benchmark_session is None or benchmark_session.disabled or not gate.store.latency
            or session.exitstatus == pytest.ExitCode.INTERRUPTED):  # Ctrl-C: stop now
        return
    from perf_tests.harness import confirm

    try:
        confirm.measure_again(gate, benchmark_session.benchmarks)
    except Exception as error:  # noqa: BLE001 - the run and its figures must still be saved
        # the error may come before anything regressed (reading the history), so no claim here
        gate.check_notes.append(f"the second measurements could not be taken, so every figure's "
                                f"first is judged: {type(error).__name__}: {error}")


@pytest.hookimpl(wrapper=True, tryfirst=True)  # the outermost wrapper: its end comes last
def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config):
    """The gate's summary closes the output, printed even when another plugin's summary raises:
    pytest-benchmark's --benchmark-compare-fail (the README's recipe) raises PerformanceRegression
    from its own, which left the gate's verdicts unprinted."""
    try:
        return (yield)
    finally:
        _print_summary(terminalreporter, config)


def _print_summary(terminalreporter, config: pytest.Config) -> None:
    gate = config.stash.get(GATE_KEY, None)
    outcome = getattr(gate, "outcome", None)
    if outcome is None:
        return
    terminalreporter.section("perf-gate summary")
    for line in outcome.lines:
        terminalreporter.write_line(line)
    if outcome.failures:
        terminalreporter.write_line("perf-gate: FAILED, regression against the history: "
                                    + "; ".join(outcome.failures), red=True)
