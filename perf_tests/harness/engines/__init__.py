"""Inference engines, one module each; a variant is an engine, a recipe and load options.

The variants themselves are data (``perf_tests/variants.toml``, read by ``declared``); the code
of an engine lives in one module of this package, found by its ``NAME``, so a fourth engine is one
new file. Every engine module defines:

``NAME``
    its name in the declarations (``engine = "ctranslate2"``).
``SOURCE``
    what its builder starts from: ``"model"`` (the Hugging Face folder) or ``"export"``
    (optimum's fp32 ONNX export, an intermediate artifact shared by every ONNX recipe).
``source_for(model_type)`` (optional, default ``SOURCE``)
    the same for one model type, where an engine builds some types from another source.
``RECIPE``, ``LOAD``
    option name -> ``Option``: what a declaration may set for building and for loading.
``unavailable()``
    why the engine cannot run here ("" when it can): its library does not import, for example.
``unsupported(model_type)``
    why it cannot take a model of this type ("" when it can).
``holds_model(folder)``
    "" when a folder a team built itself holds a model the engine loads, else why not.
``import_libraries()``
    imports what ``load`` needs; the memory probe calls it before reading its baseline RSS.
``before_torch()`` (optional, default nothing)
    what must happen in a process before torch is imported there (``prepare_process``, called
    by the plugin at configure time and by the memory probe first); "" or a note saying why it
    could not be done, for the session's header.
``uses_preset(recipe)``
    whether the CPU's quantization preset is part of the recipe (and so of the artifact key).
``recipe_problem(recipe)`` (optional, default none)
    what is wrong with a recipe's options taken together ("" when nothing is), checked when
    the variants file is read, before anything is built.
``builds(recipe)``
    whether the recipe builds anything (False: the variant loads its source folder as it is).
``build(source, out, recipe, preset)``
    writes the artifact into ``out`` and returns details for artifact.json.
``load(folder, threads, options)``
    returns a ``Loaded``: a ``Generator`` and the files it opened.
``BUILD_VERSION`` (optional, default 1)
    part of the artifact key: bumped when ``build`` writes something else, so only that
    engine's artifacts are built again.
``verify(loaded, recipe)``
    "" when what was loaded is what the recipe built, else what is wrong, in words.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol


@dataclass(frozen=True)
class Option:
    """One recipe or load option: its type, the values it may take, what it does, and the
    option it shapes (``requires``: a quantizer's option means nothing without ``quantize``, and
    would be built in fp32 without a word)."""

    kind: type
    help: str
    choices: tuple = ()
    requires: str = ""

    def problem(self, value) -> str:
        """"" when ``value`` fits, else what is wrong with it, in words."""
        if self.kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return f"{value!r} is not a list of names"
            return ""
        if not isinstance(value, self.kind) or (self.kind is not bool and isinstance(value, bool)):
            return f"{value!r} is not a {self.kind.__name__}"
        if self.choices and value not in self.choices:
            return f"{value!r} is not one of {', '.join(map(str, self.choices))}"
        return ""


class StepClock:
    """Timestamps of a generation: its start, then the end of each decoding step.

    Engines call ``tick`` once per step (a logits processor in Hugging Face generation, the step
    callback in CTranslate2); a step's time is the gap between two ticks, and the first tick
    closes the encoder and the first decoder step (the time to the first new token).
    """

    def __init__(self):
        self.started = time.perf_counter()
        self.ticks: list[float] = []
        self._last_step = -1

    def tick(self, step: int | None = None) -> None:
        if step is not None:  # CTranslate2 reports each step once per batch row
            if step == self._last_step:
                return
            self._last_step = step
        self.ticks.append(time.perf_counter())


class Generator(Protocol):
    def generate(self, inputs: dict, settings: dict, clock: StepClock | None = None):
        """Token ids of the batch, Hugging Face style: a tensor whose rows start with the
        decoder start token, padded with the pad id. ``settings`` are Hugging Face's."""

    def encode(self, inputs: dict) -> bool:
        """Run the encoder alone; False when the engine has no way to."""

    # optional: close() lets go of native resources when the pool releases the engine, and
    # steps_reported = False where generate() cannot tick a StepClock (one native call)


@dataclass
class Loaded:
    generator: Generator
    files: tuple[Path, ...]  # every file the engine opened, so the size on disk counts them


def import_problem(module: str, hint: str = "") -> str:
    """Why ``module`` does not import here, in one line ("" when it does): an engine's
    ``unavailable``."""
    try:
        importlib.import_module(module)
    except ImportError as error:
        return f"{module} does not import here ({error}){hint}"
    return ""


def _nothing_unsupported(*_) -> str:
    return ""


def _fixed(source: str):
    return lambda model_type: source


# What an engine module may leave out: the common case, filled in at discovery.
DEFAULTS = {"LOAD": {}, "BUILD_VERSION": 1, "unsupported": _nothing_unsupported,
            "verify": _nothing_unsupported, "builds": lambda recipe: True,
            "uses_preset": lambda recipe: False, "before_torch": lambda: "",
            "recipe_problem": _nothing_unsupported}


def _discover() -> dict[str, ModuleType]:
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        engine = importlib.import_module(f"{__name__}.{module.name}")
        for name, default in DEFAULTS.items():
            if not hasattr(engine, name):
                setattr(engine, name, default)
        if not hasattr(engine, "source_for"):
            engine.source_for = _fixed(engine.SOURCE)
        found[engine.NAME] = engine
    return found


ENGINES: dict[str, ModuleType] = _discover()


def prepare_process(engines: set[str]) -> list[str]:
    """Run the ``before_torch`` of the named engines in this process, before anything imports
    torch; the notes of those that could not do it."""
    return [note for note in (ENGINES[name].before_torch() for name in sorted(engines)) if note]
