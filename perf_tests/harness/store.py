"""The result store: every figure of the session, measured once, on first request.

Judging tests ask the store and never another test, so ``-k`` selections work: a memory or
quality figure that no test has measured yet is measured on the miss. Latency is measured inside
its own test (pytest-benchmark must time it), with the baseline's rounds interleaved, and
recorded here for the summary.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from perf_tests.harness import child_run, tokens, workloads
from perf_tests.harness.config import GateConfig, Shape
from perf_tests.harness.files import written_whole
from perf_tests.harness.pool import VariantPool
from perf_tests.harness.progress import outline

PROBES_AT_ONCE = 2  # memory probes run side by side: this project's machines have 2 cores
# Timed calls of a per-token timing, at each shape and in the full profile's sweep alike. The
# figures are reported, not judged; per-token time is the median of the 2 x 31 gaps between
# decoding steps, and for noise that is roughly normal a mean of 2 calls is about as precise as
# the median of 3 calls taken before (which weighs like 2.2 calls). With 3 calls the 14 timings
# of the default run took 24.1 s and 24.8 s on the Zen 4 VM (report.md's steps, 2026-12-07).
TOKEN_CALLS = 2


class MeasurementError(Exception):
    """A measurement could not be taken (a child process failed, for example)."""


PROBE_TIMEOUT_S = 900


def run_memory_probe(request: dict) -> subprocess.CompletedProcess:
    """One probe in a fresh process; a probe that cannot finish (a timeout, no interpreter) is
    a failed one with the reason as its last line, so that it fails its own variant's test
    only, and the probes beside it keep their figures."""
    command = [sys.executable, "-m", "perf_tests.harness.memory_probe", json.dumps(request)]
    try:
        return child_run.run(command, PROBE_TIMEOUT_S)  # stopped there with its reason last
    except OSError as error:
        return subprocess.CompletedProcess(command, -1, "", f"could not start ({error})")


def probe_figures(probe: subprocess.CompletedProcess) -> dict | None:
    """The figures a probe printed as its last line, or None (it failed, or printed no JSON
    object last)."""
    lines = probe.stdout.strip().splitlines() if probe.returncode == 0 else []
    try:
        figures = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return figures if isinstance(figures, dict) else None


def percentile(samples: list[float], fraction: float) -> float:
    """Linear-interpolated percentile; statistics.quantiles needs two points and n buckets."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def round_ratios(samples: list[float], paired: list[float]) -> list[float]:
    """Each candidate round over the baseline round run just before it (B C B C ...)."""
    return [candidate / baseline for candidate, baseline in zip(samples, paired)]


@dataclass
class LatencyResult:
    variant: str
    shape: str
    samples_s: list[float]
    first_call_s: float
    load_s: float
    paired_baseline_s: list[float] = field(default_factory=list)
    # shares of all CPUs' time during the rounds: other processes', and the hypervisor's steal
    others_cpu: float | None = None
    steal: float | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_s) * 1000

    def percentile_ms(self, fraction: float) -> float:
        return percentile(self.samples_s, fraction) * 1000

    @property
    def round_ratios(self) -> list[float]:
        """Each round over the baseline round interleaved with it (the ratio benchmark group)."""
        return round_ratios(self.samples_s, self.paired_baseline_s)

    @property
    def ratio(self) -> float | None:
        """Median over the median of the baseline rounds interleaved with these rounds."""
        if not self.paired_baseline_s:
            return None
        return statistics.median(self.samples_s) / statistics.median(self.paired_baseline_s)

    def shares(self) -> dict:
        """Others' and the hypervisor's share of the CPUs during the rounds, where measured."""
        if self.others_cpu is None:
            return {}
        return {"others_cpu_share": round(self.others_cpu, 4),
                "steal_share": round(self.steal or 0.0, 4)}

    def as_measured_again(self) -> dict:
        """These rounds as a second measurement of a test (``measured_again`` in extra_info)."""
        return {"data": self.samples_s, "paired_baseline_s": self.paired_baseline_s,
                **self.shares()}

    def as_dict(self) -> dict:
        out = {"median_ms": round(self.median_ms, 2), "p90_ms": round(self.percentile_ms(0.9), 2),
               "p99_ms": round(self.percentile_ms(0.99), 2), "rounds": len(self.samples_s),
               "first_call_ms": round(self.first_call_s * 1000, 1),
               "load_s": round(self.load_s, 3)}
        out.update(self.shares())
        if self.paired_baseline_s:
            out["paired_baseline_median_ms"] = round(
                statistics.median(self.paired_baseline_s) * 1000, 2)
            out["ratio_to_baseline"] = round(self.ratio, 4)
        return out


class ResultStore:
    def __init__(self, config: GateConfig, pool: VariantPool,
                 memory_wanted: frozenset[str] = frozenset()):
        self.config, self.pool = config, pool
        self.latency: dict[tuple[str, str], LatencyResult] = {}
        # the second measurement of a test whose latency regressed on its first (confirm.py)
        self.latency_again: dict[tuple[str, str], LatencyResult] = {}
        self._memory: dict[str, dict] = {}
        self.memory_wanted = memory_wanted  # the variants whose memory the selected tests need
        self._quality: dict[str, dict] = {}
        self.quality_set = None
        self.tokens: dict[tuple[str, str], tokens.TokenTiming] = {}  # the gate's shapes
        self.sweep: dict[tuple[str, str], tokens.TokenTiming] = {}  # the full profile's sweep

    def token_timing(self, variant: str, shape: Shape, sweep: bool = False,
                     warm: bool = False) -> tokens.TokenTiming:
        """Per-token figures of one variant at one shape, measured on first request; ``warm``:
        its engine has just run this shape (the latency test's rounds), so no warm-up call."""
        found = self.sweep if sweep else self.tokens
        if (variant, shape.id) not in found:
            engine = self.pool.engine(variant, "perf", timed=True)
            inputs = workloads.latency_inputs(self.pool.tokenizer("perf"),
                                              self.pool.specs["perf"].prefix, shape)
            with outline(f"per-token timing of {variant} at {shape.id} ({TOKEN_CALLS} calls)"):
                found[(variant, shape.id)] = tokens.measure(
                    engine, inputs, workloads.latency_settings(self.config.new_tokens), shape,
                    TOKEN_CALLS, warm)
        return found[(variant, shape.id)]

    @property
    def memory_shape(self) -> str:
        """The largest configured shape: peak memory grows with batch and length."""
        return max(self.config.shapes, key=lambda s: s.batch * s.source_tokens).id

    def memory(self, variant: str) -> dict:
        """Peak memory and size on disk of a variant; on a miss, every variant the run's tests
        will ask for (``memory_wanted``) is measured with it, PROBES_AT_ONCE at a time."""
        if variant not in self._memory:
            wanted = [v for v in self.config.variants if v in self.memory_wanted
                      and v not in self._memory and not self.pool.skip_reason(v)]
            self._measure_memory([variant, *(v for v in wanted if v != variant)])
        return self._memory[variant]

    def _measure_memory(self, names: list[str]) -> None:
        """Peak RSS is the process's own high-water mark, which a neighbour's CPU time does not
        move, so the probes run side by side (each takes a few seconds of imports); the
        artifacts are built first, one at a time, in this process."""
        requests = {names[0]: self._memory_request(names[0])}
        for variant in names[1:]:
            try:
                requests[variant] = self._memory_request(variant)
            except Exception:  # noqa: BLE001  its own test asks again and reports the error
                continue
        names = list(requests)
        with outline(f"measuring peak memory of {', '.join(names)} in fresh processes "
                     f"({min(PROBES_AT_ONCE, len(names))} at a time)"):
            with ThreadPoolExecutor(max_workers=PROBES_AT_ONCE) as probes:
                done = dict(zip(names, probes.map(run_memory_probe, requests.values())))
        for variant, probe in done.items():
            figures = probe_figures(probe)
            if figures is not None:
                self._memory[variant] = figures
        if names[0] not in self._memory:  # another variant's failure is its own test's
            requested = done[names[0]]
            last = (requested.stderr.strip().splitlines() or ["no figures printed"])[-1]
            raise MeasurementError(f"memory probe for {names[0]} exited "
                                   f"{requested.returncode}: {last}")

    def _memory_request(self, variant: str) -> dict:
        return {"declaration": self.pool.spec(variant).as_dict(),
                "folder": str(self.pool.artifact(variant, "perf")),
                "threads": self.config.threads, "prefix": self.pool.specs["perf"].prefix,
                "shape": self.memory_shape, "new_tokens": self.config.new_tokens,
                "calls": self.config.profile.memory_calls}

    def quality(self, variant: str) -> dict:
        if variant not in self._quality:
            self._quality[variant] = self._measure_quality(variant)
        return self._quality[variant]

    def _quality_set(self):
        if self.quality_set is None:
            self.quality_set = workloads.quality_set_for(
                self.pool.specs["quality"], self.config.test_set,
                self.config.sentences)
            if self.quality_set.note:
                print(f"perf-gate: {self.quality_set.note}", file=sys.stderr)
        return self.quality_set

    def _measure_quality(self, variant: str) -> dict:
        import sacrebleu

        test_set = self._quality_set()
        engine = self.pool.engine(variant, "quality")
        spec = self.pool.specs["quality"]
        with outline(f"translating {len(test_set.sources)} sentences with {variant} "
                     f"(beam {spec.quality_beams})") as step:
            translation = workloads.translate_counted(engine, self.pool.tokenizer("quality"),
                                                      spec, test_set.sources)
        hypotheses = translation.hypotheses
        references = [list(test_set.references)]
        bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
        self._save_hypotheses(variant, hypotheses)
        return {"bleu": round(bleu.corpus_score(hypotheses, references).score, 2),
                "chrf": round(chrf.corpus_score(hypotheses, references).score, 2),
                "bleu_signature": str(bleu.get_signature()),
                "chrf_signature": str(chrf.get_signature()),
                "sentences": len(hypotheses), "test_set": test_set.name,
                "capped": translation.capped,
                "length_cap": f"{workloads.LENGTH_FACTOR} x source tokens + "
                              f"{workloads.LENGTH_EXTRA}, at most {spec.quality_max_new_tokens}",
                "translate_seconds": round(step.seconds, 1), "hypotheses": hypotheses}

    def _save_hypotheses(self, variant: str, hypotheses: list[str]) -> None:
        folder = self.config.results_dir / "latest" / "hypotheses"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{variant}.txt"
        with written_whole(path) as tmp:
            tmp.write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")

    def exact_match(self, candidate: str, baseline: str) -> tuple[int, int]:
        """How many sentences the candidate translates exactly as the baseline does."""
        ours, theirs = self.quality(candidate)["hypotheses"], self.quality(baseline)["hypotheses"]
        return sum(a == b for a, b in zip(ours, theirs)), len(theirs)

    def measured_memory(self) -> dict[str, dict]:
        return dict(self._memory)

    def measured_quality(self) -> dict[str, dict]:
        return {v: {k: x for k, x in q.items() if k != "hypotheses"}
                for v, q in self._quality.items()}


def write_json(path: Path, data: dict) -> None:
    """Write a JSON file whole: a reader sees the old file or the new one, never half. A figure
    that is no finite number (a growth from 0 MB, a t-test of two flat segments) is written as
    null: Python's NaN and Infinity are not JSON, and jq or a browser refuse the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite_only(data), indent=2, default=str, allow_nan=False)
    with written_whole(path) as tmp:
        tmp.write_text(text + "\n")


def _finite_only(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_only(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_only(item) for item in value]
    return value
