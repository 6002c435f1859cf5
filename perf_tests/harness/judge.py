"""The judge: limits from one TOML file, and verdicts in one message format.

The file is keyed preset -> metric -> pair (-> shape)::

    [avx2.latency.onnx-int8-vs-pytorch-fp32]
    max = 0.50                       # median latency ratio, every shape
    shapes = { b8-s64 = 0.60 }       # a shape of its own

A ``[default]`` table holds limits for every preset; a preset's own table overrides it pair by
pair. A failure reads, for example::

    onnx-int8 vs pytorch-fp32 [b1-s16, x86_64/avx2] median latency ratio 0.71 > max 0.50 (41.2 ms vs 58.0 ms)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from perf_tests.harness.config import VARIANTS, ConfigError, Shape

# metric -> (what the ratio is called in a message, unit of the raw numbers)
METRICS = {
    "latency": ("median latency ratio", "ms"),
    "peak_memory": ("peak memory ratio", "MB"),
    "disk": ("size on disk ratio", "MB"),
    "bleu": ("BLEU ratio", "BLEU"),
    "chrf": ("chrF ratio", "chrF"),
    "exact_match": ("exact-match rate", "sentences"),
}


@dataclass(frozen=True)
class Limit:
    metric: str
    candidate: str
    baseline: str
    bound: str  # "max" or "min"
    value: float
    shapes: tuple[tuple[str, float], ...] = ()

    @property
    def pair(self) -> str:
        return f"{self.candidate}-vs-{self.baseline}"

    def value_for(self, shape: str | None) -> float:
        return dict(self.shapes).get(shape, self.value) if shape else self.value


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    measured: float
    limit: float


def _split_pair(pair: str, where: str) -> tuple[str, str]:
    candidate, sep, baseline = pair.partition("-vs-")
    if not sep or candidate not in VARIANTS or baseline not in VARIANTS:
        raise ConfigError(f"{where}: {pair!r} is not <variant>-vs-<variant> with variants from "
                          f"{', '.join(VARIANTS)}")
    return candidate, baseline


def _parse_limit(metric: str, pair: str, table, where: str) -> Limit:
    where = f"{where}.{metric}.{pair}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with max or min")
    bounds = [b for b in ("max", "min") if b in table]
    unknown = set(table) - {"max", "min", "shapes"}
    if len(bounds) != 1 or unknown:
        raise ConfigError(f"{where}: needs exactly one of max or min (and optional shapes), "
                          f"found {', '.join(sorted(table)) or 'nothing'}")
    value = table[bounds[0]]
    shapes = table.get("shapes", {})
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}.{bounds[0]}: {value!r} is not a positive number")
    if not isinstance(shapes, dict):
        raise ConfigError(f"{where}.shapes: expected a table of shape = limit")
    for shape, shape_value in shapes.items():
        Shape.parse(shape)
        if not isinstance(shape_value, (int, float)) or shape_value <= 0:
            raise ConfigError(f"{where}.shapes.{shape}: {shape_value!r} is not a positive number")
    candidate, baseline = _split_pair(pair, where)
    return Limit(metric, candidate, baseline, bounds[0], float(value),
                 tuple((s, float(v)) for s, v in shapes.items()))


def _parse_section(section, where: str) -> dict[tuple[str, str], Limit]:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a table of metrics")
    limits = {}
    for metric, pairs in section.items():
        if metric not in METRICS:
            raise ConfigError(f"{where}.{metric}: unknown metric; choose from "
                              f"{', '.join(METRICS)}")
        if not isinstance(pairs, dict):
            raise ConfigError(f"{where}.{metric}: expected a table of pairs")
        for pair, table in pairs.items():
            limits[(metric, pair)] = _parse_limit(metric, pair, table, where)
    return limits


class Limits:
    def __init__(self, limits: dict[tuple[str, str], Limit], source: Path, preset: str):
        self._limits, self.source, self.preset = limits, source, preset

    @classmethod
    def load(cls, path: Path, preset: str) -> Limits:
        try:
            data = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"limits file {path} is not valid TOML ({error})") from None
        except OSError as error:
            raise ConfigError(f"limits file {path} cannot be read ({error.strerror})") from None
        if preset not in data and "default" not in data:
            raise ConfigError(f"limits file {path} has neither a [{preset}] nor a [default] table:"
                              f" add limits for {preset}")
        limits = _parse_section(data.get("default", {}), f"{path.name}: default")
        limits.update(_parse_section(data.get(preset, {}), f"{path.name}: {preset}"))
        if not limits:
            raise ConfigError(f"limits file {path} defines no limit for {preset}")
        return cls(limits, Path(path), preset)

    def find(self, metric: str, candidate: str, baseline: str) -> Limit | None:
        return self._limits.get((metric, f"{candidate}-vs-{baseline}"))

    def of_metric(self, metric: str) -> list[Limit]:
        return [limit for (m, _), limit in sorted(self._limits.items()) if m == metric]

    def all(self) -> list[Limit]:
        return [self._limits[key] for key in sorted(self._limits)]


def judge(limit: Limit, measured: float, candidate_raw: float, baseline_raw: float,
          context: str, shape: str | None = None) -> Verdict:
    """Compare one measured ratio with its limit and say so in the house format."""
    bound_value = limit.value_for(shape)
    passed = measured <= bound_value if limit.bound == "max" else measured >= bound_value
    name, unit = METRICS[limit.metric]
    where = f"[{shape}, {context}]" if shape else f"[{context}]"
    sign = ("<=" if passed else ">") if limit.bound == "max" else (">=" if passed else "<")
    message = (f"{limit.candidate} vs {limit.baseline} {where} {name} {measured:.3f} {sign} "
               f"{limit.bound} {bound_value:.2f} ({candidate_raw:.1f} {unit} vs "
               f"{baseline_raw:.1f} {unit})")
    return Verdict(passed, message, measured, bound_value)
