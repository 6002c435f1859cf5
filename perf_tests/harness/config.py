"""The gate's configuration: one frozen, validated object built once from options and environment.

Fixtures and tests read this object, never ``request.config.getoption``. Every check that can fail
on bad input happens here, at session start, and raises ``ConfigError`` with one line saying what
was wrong and what to do; the plugin turns it into a pytest usage error (exit code 4).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from perf_tests.harness.cpu import PRESETS, CpuInfo

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("pytorch-fp32", "onnx-fp32", "onnx-o3", "onnx-int8")
BASELINE = "pytorch-fp32"
ALL_VARIANTS = "all"  # --perf-plant all:...: every variant
DEFAULT_PERF_MODEL = "t5-small-random"
DEFAULT_QUALITY_MODEL = "t5-tiny-enfr"
SHAPE_PATTERN = re.compile(r"^b(\d+)-s(\d+)$")


class ConfigError(Exception):
    """Bad input, found before anything was built: one line, what was wrong and what to do."""


@dataclass(frozen=True)
class Profile:
    """How hard to measure: enough rounds to be stable on a noisy 2-core machine, and no more."""

    name: str
    shapes: tuple[str, ...]
    rounds: int
    warmup_rounds: int
    memory_calls: int
    quality_sentences: int | None  # None: the whole test split


PROFILES = {
    "smoke": Profile("smoke", ("b1-s16", "b8-s64"), rounds=8, warmup_rounds=1, memory_calls=2,
                     quality_sentences=300),
    "full": Profile("full", ("b1-s16", "b1-s64", "b8-s64"), rounds=16, warmup_rounds=2,
                    memory_calls=4, quality_sentences=None),
}


@dataclass(frozen=True)
class Shape:
    """A latency workload: batch size and source length in tokens, named like ``b8-s64``."""

    batch: int
    source_tokens: int

    @property
    def id(self) -> str:
        return f"b{self.batch}-s{self.source_tokens}"

    @classmethod
    def parse(cls, text: str) -> Shape:
        match = SHAPE_PATTERN.match(text.strip())
        if not match or int(match[1]) < 1 or int(match[2]) < 2:
            raise ConfigError(f"shape {text!r} is not of the form b<batch>-s<source tokens>, "
                              "for example b1-s16 or b8-s64")
        return cls(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class Plant:
    """A regression planted on purpose, so the suite can test itself: off unless asked for.

    ``slowdown=F`` spins F times each generate call's own duration after it (a 25 % slower
    variant for F = 0.25); ``noise=S`` builds the variant from weights with seeded Gaussian noise
    of S times each tensor's standard deviation added (a quality regression). The variant
    ``all`` plants it in every variant: ``all:slowdown=0.3`` is a machine 30 % slower, which the
    regression check must not take for a regression.
    """

    variant: str
    slowdown: float = 0.0
    noise: float = 0.0

    def applies_to(self, variant: str) -> bool:
        return self.variant in (variant, ALL_VARIANTS)

    @classmethod
    def parse(cls, text: str) -> Plant:
        variant, _, spec = text.partition(":")
        key, _, value = spec.partition("=")
        if variant not in (*VARIANTS, ALL_VARIANTS) or key not in ("slowdown", "noise"):
            raise ConfigError(f"--perf-plant {text!r}: expected <variant>:slowdown=<fraction> or "
                              "<variant>:noise=<scale> (<variant> may be all), for example "
                              "onnx-int8:slowdown=0.25")
        try:
            amount = float(value)
        except ValueError:
            raise ConfigError(f"--perf-plant {text!r}: {value!r} is not a number") from None
        if amount <= 0:
            raise ConfigError(f"--perf-plant {text!r}: the amount must be positive")
        return cls(variant, **{key: amount})


@dataclass(frozen=True)
class GateConfig:
    perf_model: str
    quality_model: str
    variants: tuple[str, ...]
    preset: str
    preset_skip_reason: str  # "" when the CPU runs the preset
    cpu: CpuInfo
    threads: int
    profile: Profile
    shapes: tuple[Shape, ...]
    new_tokens: int
    rounds: int
    cache_dir: Path
    results_dir: Path
    limits_file: Path
    test_set: str
    plant: Plant | None = None
    baseline_run: str = "latest"  # the history run(s) the regression check compares with
    baseline_runs: int = 20  # how many of the last runs the machine's noise is read from
    regression_factor: float = 1.10  # the smallest latency change that counts
    false_alarm_rate: float = 0.01  # per run, split over its latency figures
    baseline: str = BASELINE
    environment: dict = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.cpu.machine

    @property
    def arch_preset(self) -> str:
        return f"{self.cpu.machine}/{self.preset}"

    def header_lines(self) -> list[str]:
        return [
            f"perf-gate: arch {self.arch_preset}, threads {self.threads}, profile "
            f"{self.profile.name}, rounds {self.rounds}, {self.new_tokens} new tokens",
            f"perf-gate: latency/memory model {self.perf_model}, quality model "
            f"{self.quality_model}, variants {', '.join(self.variants)}",
            f"perf-gate: cache {self.cache_dir}, results {self.results_dir}, limits "
            f"{self.limits_file}",
        ]


def _parse_variants(text: str | None) -> tuple[str, ...]:
    if not text:
        return VARIANTS
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant {unknown[0]!r}: choose from {', '.join(VARIANTS)}")
    if BASELINE not in names:
        names = (BASELINE, *names)  # every ratio is taken against the baseline
    return names


def _resolve_preset(requested: str | None, required_arch: str | None,
                    cpu: CpuInfo) -> tuple[str, str]:
    if required_arch:
        machine, _, preset = required_arch.partition("-")
        if preset not in PRESETS or PRESETS[preset][0] != machine:
            raise ConfigError(f"--perf-arch {required_arch!r} is not one of "
                              + ", ".join(f"{PRESETS[p][0]}-{p}" for p in PRESETS))
        runs, reason = cpu.can_run(preset)
        if not runs:
            raise ConfigError(f"--perf-arch {required_arch}: this machine cannot run it ({reason});"
                              " pick the environment that matches this CPU")
        return preset, ""
    if requested is None or requested == "auto":
        return cpu.best_preset(), ""
    if requested not in PRESETS:
        raise ConfigError(f"unknown preset {requested!r}: choose from auto, {', '.join(PRESETS)}")
    return requested, cpu.can_run(requested)[1]


def _writable_dir(path: Path, what: str) -> Path:
    """Check, without creating anything, that the folder exists writable or can be made."""
    path = path.expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder: pass a writable folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} is not writable (checked {existing}): "
                          "pass a writable folder")
    return path


def build_config(options: dict, cpu: CpuInfo) -> GateConfig:
    """Validate raw option values (None where not given) into a GateConfig."""
    profile_name = options.get("profile") or "smoke"
    if profile_name not in PROFILES:
        raise ConfigError(f"unknown profile {profile_name!r}: choose from {', '.join(PROFILES)}")
    profile = PROFILES[profile_name]
    shapes = tuple(Shape.parse(s) for s in (options.get("shapes") or ",".join(profile.shapes))
                   .split(",") if s.strip())
    preset, skip_reason = _resolve_preset(options.get("preset"), options.get("arch"), cpu)
    threads = int(options.get("threads") or os.cpu_count() or 1)
    new_tokens = int(options.get("new_tokens") or 32)
    rounds = int(options.get("rounds") or profile.rounds)
    if threads < 1 or new_tokens < 1 or rounds < 2:
        raise ConfigError("threads and new tokens must be at least 1, rounds at least 2")
    limits_file = Path(options.get("limits") or ROOT / "perf_tests" / "limits.toml")
    if not limits_file.is_file():
        raise ConfigError(f"limits file {limits_file} does not exist: pass --perf-limits FILE")
    model = options.get("model")
    plant = Plant.parse(options["plant"]) if options.get("plant") else None
    baseline_run = options.get("baseline") or "latest"
    if not (baseline_run == "latest" or baseline_run.isdigit() or Path(baseline_run).is_file()):
        raise ConfigError(f"--perf-baseline {baseline_run!r}: expected latest, a run number or "
                          "an existing history file")
    try:
        factor = float(options.get("regression_factor") or 1.10)
        alpha = float(options.get("false_alarm_rate") or 0.01)
        baseline_runs = int(options.get("baseline_runs") or 20)
    except ValueError:
        raise ConfigError("--perf-regression-factor, --perf-false-alarm-rate and "
                          "--perf-baseline-runs take numbers") from None
    if factor <= 1.0 or not 0.0 < alpha < 0.5 or baseline_runs < 2:
        raise ConfigError("--perf-regression-factor must be above 1, --perf-false-alarm-rate "
                          "between 0 and 0.5 and --perf-baseline-runs at least 2")
    return GateConfig(
        perf_model=model or DEFAULT_PERF_MODEL,
        quality_model=model or DEFAULT_QUALITY_MODEL,
        variants=_parse_variants(options.get("variants")),
        preset=preset, preset_skip_reason=skip_reason, cpu=cpu, threads=threads,
        profile=profile, shapes=shapes, new_tokens=new_tokens, rounds=rounds,
        cache_dir=_writable_dir(Path(options.get("cache_dir") or ROOT / ".perf-cache"),
                                "cache folder"),
        results_dir=_writable_dir(Path(options.get("results_dir") or ROOT / "results"),
                                  "results folder"),
        limits_file=limits_file.resolve(),
        test_set=options.get("test_set") or "wmt14",
        plant=plant, baseline_run=baseline_run, baseline_runs=baseline_runs,
        regression_factor=factor,
        false_alarm_rate=alpha,
    )
