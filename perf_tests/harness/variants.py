"""A loaded variant, the one face every engine shows to the measurements.

Building and loading are the engines' (``perf_tests.harness.engines``); which variants exist is
data (``declared``). ``load`` opens a variant's folder with an engine and checks that what it
loaded is what the recipe built; ``Engine.generate`` runs one generation, with a planted
slowdown when a test of the gate itself asks for one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from perf_tests.harness.declared import VariantSpec
from perf_tests.harness.engines import Generator, StepClock
from perf_tests.harness.engines._hf import copy_side_files
from perf_tests.harness.progress import outline


@dataclass
class Engine:
    """A loaded variant: ``generate`` runs generation on it, nothing else differs."""

    variant: str
    generator: Generator
    loaded_files: tuple[Path, ...]
    load_seconds: float
    slowdown: float = 0.0  # planted regression: extra busy time as a fraction of each call's

    def generate(self, inputs: dict, clock: StepClock | None = None, **settings):
        started = time.perf_counter()
        output = self.generator.generate(inputs, settings, clock)
        if self.slowdown:
            _busy_wait((time.perf_counter() - started) * self.slowdown)
        return output

    def encode(self, inputs: dict) -> bool:
        return self.generator.encode(inputs)

    @property
    def steps_reported(self) -> bool:
        """Whether ``generate`` ticks a step clock (not where the loop is one native call)."""
        return getattr(self.generator, "steps_reported", True)

    def close(self) -> None:
        """Let go of the engine's model (and, for engines that have one, its native runtime)."""
        close = getattr(self.generator, "close", None)
        if close is not None:
            close()
        self.generator = None

    @property
    def disk_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.loaded_files)


def load(spec: VariantSpec, folder: Path, threads: int, slowdown: float = 0.0) -> Engine:
    started = time.perf_counter()
    loaded = spec.module.load(Path(folder), threads, spec.load)
    seconds = time.perf_counter() - started
    problem = spec.module.verify(loaded, spec.recipe)
    if problem:
        raise RuntimeError(f"{spec.name} from {folder}: {problem}")
    return Engine(spec.name, loaded.generator, loaded.files, seconds, slowdown)


def perturb(model_folder: Path, out: Path, noise: float, seed: int = 7) -> dict:
    """A planted quality regression: every weight plus seeded noise of ``noise`` times its std."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    with outline(f"perturbing {model_folder.name} weights (noise {noise} x std)"):
        model = AutoModelForSeq2SeqLM.from_pretrained(model_folder)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.numel() > 1:
                    scale = parameter.std() * noise
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
        model.save_pretrained(out, safe_serialization=True)
        copy_side_files(model_folder, out)
    return {"noise": noise, "seed": seed}


def _busy_wait(seconds: float) -> None:
    """Spin, not sleep: a real regression keeps the CPU busy. A sleeping plant let the vCPUs idle
    before each interleaved pytorch-fp32 round, and those rounds came out about 14 % slower
    (median 294 ms in planted runs vs 257 ms in the unchanged runs just before), which hid part
    of the plant from the ratio."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass
