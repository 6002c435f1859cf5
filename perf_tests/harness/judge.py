"""The judge: limits from one TOML file, and verdicts in one message format.

The file is keyed preset -> metric -> pair (-> shape)::

    [avx2.latency.onnx-int8-vs-pytorch-fp32]
    max = 0.50                       # median latency ratio, every shape
    shapes = { b8-s64 = 0.60 }       # a shape of its own
    only_at = ["b8-s64"]             # judged at these shapes alone (latency only)

A ``[default]`` table holds limits for every preset; a preset's own table overrides it pair by
pair. Those are t5-small's limits. Limits that fit another model sit in sections of the same
shape under ``sizes.<class>`` (a size class: every model of at most ``max_parameters``
parameters; the smallest class that holds the model applies) or ``models."<name>"`` (a model by
the name given, its folder's name or its fingerprint), and override, pair by pair, in the order
base < size class < model. Latency, memory and disk limits follow the latency model, BLEU, chrF
and exact match the quality model. Each limit remembers its section, and a verdict names it::

    onnx-int8 vs pytorch-fp32 [b1-s16, x86_64/avx2] median latency ratio 0.71 > max 0.50
        (41.2 ms vs 58.0 ms; limits [avx2])          <- one line in the output
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from perf_tests.harness import declared
from perf_tests.harness.config import BASELINE, VARIANTS_FILE, ConfigError, Shape
from perf_tests.harness.cpu import PRESETS
from perf_tests.harness.parsing import unique

# metric -> (what the ratio is called in a message, unit of the raw numbers)
METRICS = {
    "latency": ("median latency ratio", "ms"),
    "peak_memory": ("peak memory ratio", "MB"),
    "disk": ("size on disk ratio", "MB"),
    "bleu": ("BLEU ratio", "BLEU"),
    "chrf": ("chrF ratio", "chrF"),
    "exact_match": ("exact-match rate", "sentences"),
}
# which model a metric is measured on: the latency/memory model or the quality model
METRIC_ROLE = {"latency": "perf", "peak_memory": "perf", "disk": "perf", "bleu": "quality",
               "chrf": "quality", "exact_match": "quality"}
SECTION_KINDS = ("sizes", "models")  # top-level tables that are not presets


@dataclass(frozen=True)
class ModelFacts:
    """What limits sections are chosen by: the name given, a fingerprint, a parameter count."""

    names: tuple[str, ...]  # the name given and, for a folder, its own name
    fingerprint: str = ""
    parameters: int = 0  # 0: unknown, no size class applies


@dataclass(frozen=True)
class Limit:
    metric: str
    candidate: str
    baseline: str
    bound: str  # "max" or "min"
    value: float
    shapes: tuple[tuple[str, float], ...] = ()
    section: str = "default"  # the limits file's table that set it, e.g. sizes.small.default
    only_at: tuple[str, ...] = ()  # the shapes a latency limit is judged at; empty: every shape

    @property
    def pair(self) -> str:
        return f"{self.candidate}-vs-{self.baseline}"

    def value_for(self, shape: str | None) -> float:
        return dict(self.shapes).get(shape, self.value) if shape else self.value

    def judged_at(self, shape: str) -> bool:
        return not self.only_at or shape in self.only_at


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    measured: float
    limit: float


def _split_pair(pair: str, where: str, variants: tuple[str, ...]) -> tuple[str, str]:
    candidate, sep, baseline = pair.partition("-vs-")
    if not sep or candidate not in variants or baseline not in variants:
        raise ConfigError(f"{where}: {pair!r} is not <variant>-vs-<variant> with variants "
                          f"declared in the variants file ({', '.join(variants)})")
    return candidate, baseline


def _parse_limit(metric: str, pair: str, table, where: str, section: str,
                 variants: tuple[str, ...]) -> Limit:
    where = f"{where}.{metric}.{pair}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with max or min")
    bounds = [b for b in ("max", "min") if b in table]
    unknown = set(table) - {"max", "min", "shapes", "only_at"}
    if len(bounds) != 1 or unknown:
        raise ConfigError(f"{where}: needs exactly one of max or min (and optional shapes, "
                          f"only_at), found {', '.join(sorted(table)) or 'nothing'}")
    value = _positive(table[bounds[0]], f"{where}.{bounds[0]}")
    shapes = table.get("shapes", {})
    if not isinstance(shapes, dict):
        raise ConfigError(f"{where}.shapes: expected a table of shape = limit")
    # each shape by its id (b08-s64 is b8-s64), so that the limit is found where it is judged
    per_shape = unique(f"{where}.shapes", ((Shape.parse(shape, f"{where}.shapes").id,
                                            _positive(limit, f"{where}.shapes.{shape}"))
                                           for shape, limit in shapes.items()),
                       key=lambda item: item[0])
    candidate, baseline = _split_pair(pair, where, variants)
    return Limit(metric, candidate, baseline, bounds[0], value, per_shape, section,
                 _only_at(metric, table.get("only_at"), where))


def _positive(value, where: str) -> float:
    """A limit: a finite number above 0 (not true or false, which TOML keeps apart)."""
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not math.isfinite(value) or value <= 0):
        raise ConfigError(f"{where}: {value!r} is not a positive number")
    return float(value)


def _only_at(metric: str, shapes, where: str) -> tuple[str, ...]:
    if shapes is None:
        return ()
    if metric != "latency":
        raise ConfigError(f"{where}.only_at: only latency is measured per shape")
    if not isinstance(shapes, list) or not shapes or not all(isinstance(s, str) for s in shapes):
        raise ConfigError(f"{where}.only_at: expected a list of shapes, e.g. [\"b8-s64\"]")
    return tuple(Shape.parse(shape, f"{where}.only_at").id for shape in shapes)


def _parse_section(section, file_name: str, label: str,
                   variants: tuple[str, ...]) -> dict[tuple[str, str], Limit]:
    where = f"{file_name}: {label}"
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
            limits[(metric, pair)] = _parse_limit(metric, pair, table, where, label, variants)
    return limits


def _size_class(sizes, parameters: int, where: str) -> str | None:
    """The smallest size class holding a model of ``parameters`` parameters, or None."""
    if not isinstance(sizes, dict):
        raise ConfigError(f"{where}: sizes: expected tables of size classes")
    fitting = []
    for name, table in sizes.items():
        bound = table.get("max_parameters") if isinstance(table, dict) else None
        if not isinstance(bound, int) or isinstance(bound, bool) or bound <= 0:
            raise ConfigError(f"{where}: sizes.{name}: needs max_parameters = <a positive whole "
                              "number>, the largest model of the class")
        if parameters and parameters <= bound:
            fitting.append((bound, name))
    return min(fitting)[1] if fitting else None


def _check_sections(data: dict, file_name: str, variants: tuple[str, ...]) -> None:
    """Parse every preset, size and model section, not only those that apply to this machine
    and this run's models, so a typo is found on any machine and with any model."""
    for key, section in data.items():
        if key in SECTION_KINDS:
            continue
        if key != "default" and key not in PRESETS:
            raise ConfigError(f"{file_name}: [{key}]: expected default, a preset "
                              f"({', '.join(PRESETS)}), {' or '.join(SECTION_KINDS)}")
        _parse_section(section, file_name, key, variants)
    for kind in SECTION_KINDS:
        tables = data.get(kind, {})
        if not isinstance(tables, dict):
            raise ConfigError(f"{file_name}: {kind}: expected tables of sections")
        for name, table in tables.items():
            label = f'{kind}."{name}"' if kind == "models" else f"{kind}.{name}"
            if not isinstance(table, dict):
                raise ConfigError(f"{file_name}: {label}: expected a table")
            for key, section in table.items():
                if kind == "sizes" and key == "max_parameters":
                    continue
                if key != "default" and key not in PRESETS:
                    raise ConfigError(f"{file_name}: {label}.{key}: expected default or a preset"
                                      f" ({', '.join(PRESETS)})")
                _parse_section(section, file_name, f"{label}.{key}", variants)


def _layers(data: dict, preset: str, model: ModelFacts | None, where: str) -> list[tuple]:
    """(table, label) from the least to the most specific; later ones override earlier ones."""
    layers = [(data.get("default", {}), "default"), (data.get(preset, {}), preset)]
    if model is None:
        return layers
    size = _size_class(data.get("sizes", {}), model.parameters, where)
    if size:
        table = data["sizes"][size]
        layers += [(table.get("default", {}), f"sizes.{size}.default"),
                   (table.get(preset, {}), f"sizes.{size}.{preset}")]
    models = data.get("models", {})
    keys = [k for k in (*model.names, model.fingerprint) if k and k in models]
    if keys:
        label = f'models."{keys[0]}"'
        layers += [(models[keys[0]].get("default", {}), f"{label}.default"),
                   (models[keys[0]].get(preset, {}), f"{label}.{preset}")]
    return layers


class Limits:
    def __init__(self, limits: dict[tuple[str, str], Limit], source: Path, preset: str):
        self._limits, self.source, self.preset = limits, source, preset

    @classmethod
    def load(cls, path: Path, preset: str, models: dict[str, ModelFacts] | None = None,
             variants: tuple[str, ...] | None = None) -> Limits:
        """The limits for ``preset``; ``models`` (role -> facts) picks model and size sections;
        ``variants`` are the names pairs may use (default: those the shipped file declares)."""
        if variants is None:
            variants = tuple(declared.read(VARIANTS_FILE, BASELINE))
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ConfigError(f"limits file {path} is not UTF-8 text (byte {error.start}): save "
                              "it as UTF-8") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"limits file {path} is not valid TOML ({error})") from None
        except OSError as error:
            raise ConfigError(f"limits file {path} cannot be read ({error.strerror})") from None
        if preset not in data and "default" not in data:
            raise ConfigError(f"limits file {path} has neither a [{preset}] nor a [default] table:"
                              f" add limits for {preset}")
        _check_sections(data, Path(path).name, variants)
        _size_class(data.get("sizes", {}), 0, Path(path).name)
        limits: dict[tuple[str, str], Limit] = {}
        for role in ("perf", "quality"):
            model = (models or {}).get(role)
            for table, label in _layers(data, preset, model, Path(path).name):
                parsed = _parse_section(table, Path(path).name, label, variants)
                limits.update({key: limit for key, limit in parsed.items()
                               if METRIC_ROLE[key[0]] == role})
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
               f"{baseline_raw:.1f} {unit}; limits [{limit.section}])")
    return Verdict(passed, message, measured, bound_value)


def no_ratio(limit: Limit, candidate_raw: float, baseline_raw: float, context: str,
             note: str = "") -> Verdict:
    """A failed verdict for a figure whose baseline is zero: there is no ratio to judge (a
    baseline scoring 0 BLEU translates nothing the references hold, so parity means nothing)."""
    name, unit = METRICS[limit.metric]
    message = (f"{limit.candidate} vs {limit.baseline} [{context}] {name} not judged: "
               f"{limit.baseline} scores {baseline_raw:.1f} {unit}, so there is no ratio "
               f"({limit.candidate} {candidate_raw:.1f} {unit}{note}; limits [{limit.section}])")
    return Verdict(False, message, float("nan"), limit.value)
