"""Declared variants: read ``variants.toml`` into checked ``VariantSpec``s.

A variant is an engine (a module of ``perf_tests.harness.engines``), a recipe (how it is built
from the model, options the engine defines) and load options, or an engine and a folder a team
built itself (loaded as it is, never built). Every mistake in the file is one ``ConfigError``
line naming the variant and the key, raised before anything is built.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from perf_tests.harness.engines import ENGINES
from perf_tests.harness.parsing import ConfigError, path_of

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.]*(-[a-z0-9_.]+)*$")
KEYS = ("engine", "recipe", "load", "folder", "default")
RESERVED = ("all",)  # --perf-plant all:... means every variant


@dataclass(frozen=True)
class VariantSpec:
    name: str
    engine: str
    recipe: dict = field(default_factory=dict)
    load: dict = field(default_factory=dict)
    folder: Path | None = None  # a folder the team built: loaded as it is, never built
    default: bool = True  # run when --perf-variants does not name the variants

    @property
    def module(self) -> ModuleType:
        return ENGINES[self.engine]

    @property
    def uses_preset(self) -> bool:
        return self.folder is None and self.module.uses_preset(self.recipe)

    def as_dict(self) -> dict:
        """JSON-ready: what the memory probe is sent, summary.json records and keys build on."""
        return {"name": self.name, "engine": self.engine, "recipe": dict(self.recipe),
                "load": dict(self.load), "folder": str(self.folder) if self.folder else None,
                "default": self.default}

    @classmethod
    def from_dict(cls, data: dict) -> VariantSpec:
        folder = Path(data["folder"]) if data.get("folder") else None
        return cls(data["name"], data["engine"], data.get("recipe") or {},
                   data.get("load") or {}, folder, data.get("default", True))


def _options(given, allowed: dict, where: str, what: str) -> dict:
    if not isinstance(given, dict):
        raise ConfigError(f"{where}.{what}: expected a table of options, for example "
                          f"{what} = {{ {next(iter(allowed), 'option')} = ... }}")
    for key, value in given.items():
        if key not in allowed:
            offered = ", ".join(allowed) or "none"
            raise ConfigError(f"{where}.{what}.{key}: the engine has no such {what} option "
                              f"(it has: {offered})")
        problem = allowed[key].problem(value)
        if problem:
            raise ConfigError(f"{where}.{what}.{key}: {problem}")
    unmet = {key: allowed[key].requires for key in given
             if allowed[key].requires and not given.get(allowed[key].requires)}
    if unmet:
        needed = next(iter(unmet.values()))
        names = ", ".join(key for key, requires in unmet.items() if requires == needed)
        raise ConfigError(f"{where}.{what}: {names} take effect only with {needed}, which this "
                          f"{what} leaves out (it would be built without them): set {needed} or "
                          f"drop {names}")
    return dict(given)


def _folder(text, base: Path, engine: ModuleType, where: str) -> Path:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}.folder: expected a path to a folder")
    folder = path_of(text, f"{where}.folder", base)
    if not folder.is_dir():
        raise ConfigError(f"{where}.folder: {folder} does not exist or is not a folder")
    problem = engine.holds_model(folder)
    if problem:
        raise ConfigError(f"{where}.folder: {problem}")
    return folder


def _variant(name: str, table, base: Path, file_name: str) -> VariantSpec:
    where = f"{file_name}: [{name}]"
    if not NAME_PATTERN.match(name) or "-vs-" in name or name in RESERVED:
        raise ConfigError(f"{where}: a variant name is lowercase words joined by - (not -vs-, "
                          "not all), for example onnx-int8-per-channel")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with engine = ...")
    unknown = [key for key in table if key not in KEYS]
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; a variant takes "
                          f"{', '.join(KEYS)}")
    engine_name = table.get("engine")
    if not isinstance(engine_name, str) or engine_name not in ENGINES:
        raise ConfigError(f"{where}.engine: unknown engine {engine_name!r}: choose from "
                          f"{', '.join(sorted(ENGINES))}")
    engine = ENGINES[engine_name]
    recipe = _options(table.get("recipe", {}), engine.RECIPE, where, "recipe")
    problem = engine.recipe_problem(recipe)
    if problem:
        raise ConfigError(f"{where}.recipe: {problem}")
    load = _options(table.get("load", {}), engine.LOAD, where, "load")
    if not isinstance(table.get("default", True), bool):
        raise ConfigError(f"{where}.default: expected true or false")
    folder = None
    if "folder" in table:
        if recipe:
            raise ConfigError(f"{where}: a variant takes a recipe (built here) or a folder "
                              "(built by you), not both")
        folder = _folder(table["folder"], base, engine, where)
    return VariantSpec(name, engine_name, recipe, load, folder, table.get("default", True))


def read(path: Path, baseline: str) -> dict[str, VariantSpec]:
    """Every variant the file declares, in its order; the baseline must be one of them."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"variants file {path} is not UTF-8 text (byte {error.start}): save "
                          "it as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"variants file {path} is not valid TOML ({error})") from None
    except OSError as error:
        raise ConfigError(f"variants file {path} cannot be read ({error.strerror}): pass "
                          "--perf-variants-file FILE") from None
    specs = {name: _variant(name, table, path.parent, path.name) for name, table in data.items()}
    if baseline not in specs:
        raise ConfigError(f"variants file {path} does not declare {baseline}, the baseline "
                          "every ratio is taken against")
    return specs
