"""The plugin seen from outside: bad input stops the session with one line and exit code 4."""

import json
import os
from pathlib import Path

import pytest

from perf_tests.harness.config import ROOT

pytestmark = pytest.mark.unit

A_TEST = "def test_nothing(gate):\n    assert gate.config.threads >= 1\n"


@pytest.fixture
def run(pytester, tmp_path):
    pytester.makepyfile(test_dummy=A_TEST)
    cache, results = tmp_path / "cache", tmp_path / "results"

    def run(*args, **env):
        for name, value in env.items():
            pytester._monkeypatch.setenv(name, value)
        return pytester.runpytest_subprocess(
            "-p", "perf_tests.harness.plugin", "-p", "no:cacheprovider",
            f"--perf-cache-dir={cache}", f"--perf-results-dir={results}", *args)

    pytester._monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for name in [name for name in os.environ if name.startswith("PERF_")]:
        # the README's settings in the shell (tox passes PERF_* on) would change what runs
        pytester._monkeypatch.delenv(name)
    run.cache, run.results = cache, results
    return run


def assert_one_line_usage_error(result, run, expected):
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert errors == [f"ERROR: perf-gate: {expected}"] or (
        len(errors) == 1 and expected in errors[0]), result.errlines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not run.cache.exists() and not run.results.exists(), "bad input touched a folder"


def test_good_options_run(run):
    result = run()
    result.assert_outcomes(passed=1)
    assert "perf-gate: arch" in result.stdout.str()


def test_the_gate_summary_closes_the_output_and_names_a_damaged_history_file(run, pytester):
    """The summary is written once pytest-benchmark has saved the run and printed after the
    tests; a damaged history file is named there, skipped and left as it was."""
    pytester.makepyfile(test_dummy="def test_measures(gate):\n    gate.store\n")
    damaged = run.results / "history" / "x86_64" / "Linux-CPython-3.11-64bit" / "0001_abc.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"benchmarks": [')
    result = run()
    result.assert_outcomes(passed=1)
    out = result.outlines
    section = next(i for i, line in enumerate(out) if "perf-gate summary" in line)
    assert section > next(i for i, line in enumerate(out) if "test_dummy.py ." in line)
    summary = "\n".join(out[section:])
    assert "verdicts: 0 passed, 0 failed" in summary, summary
    assert f"perf-gate: WARNING skipping unreadable history file {damaged}" in summary, summary
    assert (run.results / "latest" / "summary.json").is_file()
    assert damaged.read_text() == '{"benchmarks": ['


BENCHMARKED = """
import os, time

def test_sleeps(benchmark, gate):
    gate.store
    benchmark.pedantic(time.sleep, args=(float(os.environ["NAP_S"]),), rounds=5)
"""


def test_the_gate_summary_is_printed_when_benchmark_compare_fail_raises(run, pytester):
    """pytest-benchmark raises from its terminal summary when --benchmark-compare-fail trips
    (the README's recipe); the gate's summary must still close the output. The check compares
    the best of 5 rounds: no sleep against sleeps of 250 ms, which only five stalls of over
    225 ms in a row on the fast run could hide, whatever the machine's mood."""
    pytester.makepyfile(test_dummy=BENCHMARKED)
    run(NAP_S="0").assert_outcomes(passed=1)
    result = run("--benchmark-compare", "--benchmark-compare-fail=min:10%", NAP_S="0.25")
    out = result.stdout.str() + result.stderr.str()
    assert "PerformanceRegression" in out or "Performance has regressed" in out, out
    assert result.ret != pytest.ExitCode.OK
    assert "perf-gate summary" in out and "verdicts: 0 passed, 0 failed" in out, out


def test_tonights_summary_is_written_before_the_history_is_judged(run, pytester):
    """An error in the regression check (a history nobody foresaw) loses no figure of tonight."""
    pytester.makeconftest("""
from perf_tests.harness import reporting

def broken_check(*args):
    raise RuntimeError("a history nobody foresaw")

reporting.compare_with_history = broken_check
""")
    pytester.makepyfile(test_dummy="def test_measures(gate):\n    gate.store\n")
    result = run()
    assert "a history nobody foresaw" in result.stdout.str() + result.stderr.str()
    written = json.loads((run.results / "latest" / "summary.json").read_text())
    assert "variants" in written and "regression" not in written


def test_latest_holds_tonights_files_alone(run, pytester):
    """A plot or translations an earlier run left in latest/ and tonight did not write again
    would be read as tonight's; they go, and what tonight wrote stays."""
    latest = run.results / "latest"
    (latest / "hypotheses").mkdir(parents=True)
    for stale in (latest / "memory.png", latest / "quality.png", latest / "hypotheses" / "x.txt"):
        stale.write_bytes(b"an earlier run's")
    pytester.makepyfile(test_dummy="def test_measures(gate):\n    gate.store\n")
    run().assert_outcomes(passed=1)
    assert sorted(p.name for p in latest.rglob("*") if p.is_file()) == [
        "benchmark-bigger-is-better.json", "benchmark-smaller-is-better.json", "latency.png",
        "report.md", "summary.json"]


@pytest.mark.parametrize("args, expected", [
    (["--perf-variants=onnx-int4"], "unknown variant 'onnx-int4'"),
    (["--perf-preset=sse2"], "unknown preset 'sse2'"),
    (["--perf-limits=/nope.toml"], "limits file /nope.toml does not exist"),
    (["--perf-shapes=b8"], "shape 'b8' is not of the form"),
    # every numeric option, non-numeric and out of range (the space form was an INTERNALERROR)
    (["--perf-threads", "two"], "--perf-threads 'two' is not a whole number: pass a whole "
                                "number at least 1 and at most"),
    (["--perf-threads=100000"], "--perf-threads 100000 is out of range"),
    (["--perf-rounds=1"], "--perf-rounds 1 is out of range"),
    (["--perf-new-tokens=ten"], "--perf-new-tokens 'ten' is not a whole number"),
    (["--perf-sentences=-3"], "--perf-sentences -3 is out of range"),
    (["--perf-baseline-runs=0"], "--perf-baseline-runs 0 is out of range"),
    (["--perf-regression-factor=0.9"], "--perf-regression-factor 0.9 is out of range"),
    (["--perf-false-alarm-rate=rarely"], "--perf-false-alarm-rate 'rarely' is not a number"),
    (["--perf-false-alarm-rate=0.7"], "--perf-false-alarm-rate 0.7 is out of range"),
    (["--perf-measure-again=twice"], "--perf-measure-again 'twice': choose from regressed"),
    (["--perf-shapes=b0-s16"], "--perf-shapes b0-s16: batch 0 is out of range"),
    (["--perf-plant=onnx-int8:slowdown=lots"], "slowdown 'lots' is not a number"),
    (["--perf-baseline=9999"], "--perf-baseline 9999: no such run in"),
    (["--perf-shapes=b1-s16,b1-s16"], "--perf-shapes lists b1-s16 twice"),
    (["--perf-variants=onnx-int8,onnx-int8"], "--perf-variants lists onnx-int8 twice"),
])
def test_bad_option_is_one_line_exit_4(run, args, expected):
    assert_one_line_usage_error(run(*args), run, expected)


def test_environment_variable_is_read(run):
    assert_one_line_usage_error(run(PERF_VARIANTS="onnx-int4"), run, "unknown variant")


def test_malformed_limits_file(run, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[default.latency.onnx-int8-vs-pytorch-fp32]\nmax = 'fast'\n")
    assert_one_line_usage_error(run(f"--perf-limits={bad}"), run, "is not a positive number")


def test_incomplete_limits_file(run, tmp_path):
    bad = tmp_path / "empty.toml"
    bad.write_text("[default]\n")
    assert_one_line_usage_error(run(f"--perf-limits={bad}"), run, "defines no limit")


@pytest.mark.parametrize("declaration, expected", [
    ('[x]\nengine = "tensorrt"\n', "variants.toml: [x].engine: unknown engine 'tensorrt'"),
    ('[x]\nengine = "ctranslate2"\nrecipe = { quantization = "int4" }\n',
     "[x].recipe.quantization: 'int4' is not one of int8"),
    ('[x]\nengine = "onnxruntime"\nfolder = "no-such-folder"\n', "does not exist"),
    ('[x]\nengine = "onnxruntime"\nfolder = "."\n', "holds no encoder_model*.onnx"),
])
def test_bad_variants_file(run, tmp_path, declaration, expected):
    path = tmp_path / "variants.toml"
    path.write_text('[pytorch-fp32]\nengine = "pytorch"\n' + declaration)
    assert_one_line_usage_error(run(f"--perf-variants-file={path}"), run, expected)


def test_limits_naming_an_undeclared_variant(run, tmp_path):
    path = tmp_path / "variants.toml"
    path.write_text('[pytorch-fp32]\nengine = "pytorch"\n')  # the shipped limits name others
    assert_one_line_usage_error(run(f"--perf-variants-file={path}"), run,
                                "is not <variant>-vs-<variant> with variants declared")


def test_folder_that_is_not_seq2seq(run, tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert_one_line_usage_error(run(f"--perf-model={folder}"), run, "is not a seq2seq")


def test_hub_model_offline(run, tmp_path):
    result = run("--perf-model=t5-small", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    assert_one_line_usage_error(result, run, "model t5-small is not in the Hugging Face cache")


def test_cache_folder_that_cannot_be_created(pytester, tmp_path):
    pytester.makepyfile(test_dummy=A_TEST)
    pytester._monkeypatch.setenv("PYTHONPATH", str(ROOT))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = pytester.runpytest_subprocess("-p", "perf_tests.harness.plugin",
                                           f"--perf-cache-dir={blocker / 'cache'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "cache folder" in result.stderr.str() and "is a file" in result.stderr.str()


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs /sys, where even root cannot write")
@pytest.mark.parametrize("option", ["results-dir", "cache-dir"])
def test_folder_that_cannot_be_written(run, option):
    """Tried, not read off permission bits: root passes os.access on /sys yet cannot write."""
    result = run(f"--perf-{option}=/sys/perf-gate-test")
    what = "results folder" if option == "results-dir" else "cache folder"
    assert_one_line_usage_error(result, run, f"{what} /sys/perf-gate-test is not writable (tried "
                                "/sys, where it would be made)")


def test_arch_environment_on_a_cpu_without_its_flags(run):
    """What `tox -e x86_64-avx512_vnni-smoke` prints on an AVX2-only CPU."""
    cpuinfo = ROOT / "perf_tests" / "unit" / "data" / "cpuinfo-avx2.txt"
    result = run(PERF_ARCH="x86_64-avx512_vnni", PERF_CPUINFO=str(cpuinfo))
    assert_one_line_usage_error(
        result, run, "--perf-arch x86_64-avx512_vnni: this machine cannot run it (preset "
        "avx512_vnni needs CPU flags avx512_vnni, avx512f, which this CPU lacks); pick the "
        "environment that matches this CPU")


def test_unrunnable_preset_is_skipped_with_its_reason(run, pytester):
    pytester.makepyfile(test_dummy="""
def test_skip_reason(gate):
    assert gate.pool.skip_reason("onnx-int8").startswith("preset avx512_vnni needs CPU flags")
    assert gate.pool.skip_reason("onnx-fp32") == ""
""")
    cpuinfo = ROOT / "perf_tests" / "unit" / "data" / "cpuinfo-avx2.txt"
    run("--perf-preset=avx512_vnni", PERF_CPUINFO=str(cpuinfo)).assert_outcomes(passed=1)


def test_latency_tests_take_per_token_figures_only_where_selected(run, pytester):
    """test_latency takes the per-token figures of the selected test_token_timing items, after
    -k deselected the rest: a latency-only run (the live trial) takes none."""
    pytester.makepyfile(test_gate_like='''
def test_token_timing(gate, variant, shape):
    pass

def test_wanted(gate):
    print("WANTED", sorted(gate.token_timings_wanted))
''')
    result = run("-s", "-k", "wanted or (token_timing and onnx-int8-tuned)",
                 "--perf-shapes=b1-s16")
    assert "WANTED [('onnx-int8-tuned', 'b1-s16')]" in result.stdout.str(), result.stdout.str()
    result = run("-s", "-k", "wanted", "--perf-shapes=b1-s16")
    assert "WANTED []" in result.stdout.str(), result.stdout.str()


def test_memory_is_measured_for_the_variants_the_selected_tests_judge(run, pytester):
    """The memory probes run side by side for every variant a selected test needs (a ratio
    test's candidate and baseline, a test_peak_memory's variant), and for no other."""
    pytester.makepyfile(test_gate_like='''
import pytest

def test_peak_memory(gate, variant):
    pass

@pytest.mark.judges("disk")
def test_disk_ratio(gate, limit):
    pass

def test_wanted(gate):
    print("WANTED", sorted(gate.memory_wanted), sorted(gate.store.memory_wanted))
''')
    result = run("-s", "-v", "-k", "wanted or (peak_memory and ct2-int8)")
    assert "WANTED ['ct2-int8'] ['ct2-int8']" in result.stdout.str(), result.stdout.str()
    result = run("-s", "-v", "-k", "wanted or (disk_ratio and onnx-int8-vs-pytorch)")
    assert "WANTED ['onnx-int8', 'pytorch-fp32']" in result.stdout.str(), result.stdout.str()
    no_disk = pytester.path / "limits.toml"  # a team's limits without a disk table
    no_disk.write_text("[default.bleu.onnx-int8-vs-pytorch-fp32]\nmin = 0.99\n")
    result = run("-s", "-k", "wanted or disk_ratio", f"--perf-limits={no_disk}")
    assert "WANTED [] []" in result.stdout.str(), result.stdout.str()


def test_the_builds_wanted_are_those_the_selected_gate_tests_load(run, pytester):
    """A latency test loads its variant and the baseline from the perf model, a quality test or
    a BLEU pair from the quality model; a test without the gate marker loads nothing."""
    pytester.makepyfile(test_gate_like='''
import pytest

@pytest.mark.gate
def test_latency(gate, variant, shape):
    pass

@pytest.mark.gate
def test_quality(gate, variant):
    pass

@pytest.mark.gate
@pytest.mark.judges("bleu")
def test_bleu_ratio(gate, limit):
    pass

def test_helper(gate, variant):
    pass

def test_wanted(gate):
    print("WANTED", list(gate.build_wanted))
''')
    result = run("-s", "-k", "wanted or (latency and ct2-int8) or (quality and torch-int8)",
                 "--perf-shapes=b1-s16")
    assert ("WANTED [('ct2-int8', 'perf'), ('pytorch-fp32', 'perf'), ('torch-int8', 'quality')]"
            in result.stdout.str()), result.stdout.str()
    result = run("-s", "-k", "wanted or (bleu_ratio and onnx-int8-vs-pytorch) or helper")
    assert ("WANTED [('onnx-int8', 'quality'), ('pytorch-fp32', 'quality')]"
            in result.stdout.str()), result.stdout.str()


def test_the_run_is_saved_and_finished_under_the_historys_lock(tmp_path):
    """pytest-benchmark's save takes the next free run number without a lock; the gate holds
    one around it (and the finishing that reads the history back), so two runs finishing at
    once cannot take one number and overwrite each other's file."""
    import fcntl
    from types import SimpleNamespace

    from perf_tests.harness import plugin

    gate = SimpleNamespace(used=True, config=SimpleNamespace(results_dir=tmp_path, arch="x86_64"))
    session = SimpleNamespace(config=SimpleNamespace(stash={plugin.GATE_KEY: gate}), exitstatus=0)
    lock = tmp_path / "history" / "x86_64" / ".save.lock"

    def held() -> bool:
        with open(lock) as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(other, fcntl.LOCK_UN)
            return False

    hook = plugin.pytest_sessionfinish(session, 0)
    next(hook)  # here pytest-benchmark saves the run, and the gate finishes it
    assert held()
    with pytest.raises(StopIteration):
        hook.send(None)
    assert not held()


@pytest.mark.parametrize("given, message", [
    ({"benchmark_timer": "time.process_time"},
     "--benchmark-timer time.process_time: the gate times the baseline rounds between a "
     "candidate's with time.perf_counter"),
    ({"benchmark_disable_gc": True},
     "--benchmark-disable-gc: the baseline rounds between a candidate's run with the garbage "
     "collector on"),
])
def test_a_benchmark_option_that_would_time_the_two_halves_of_a_ratio_unlike_is_refused(
        given, message):
    from types import SimpleNamespace

    from perf_tests.harness import plugin
    from perf_tests.harness.config import ConfigError

    options = {"benchmark_timer": "time.perf_counter", "benchmark_disable_gc": False, **given}
    config = SimpleNamespace(getoption=lambda name, default=None: options.get(name, default))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        plugin.unlike_timings(config)
    plugin.unlike_timings(SimpleNamespace(getoption=lambda name, default=None: default))
