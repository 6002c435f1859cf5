"""The variant pool: one memoizing, session-wide home for every built and loaded variant.

A parametrized session fixture holds one parameter's value at a time (pytest #13159), but a ratio
needs the baseline and the candidate alive together, so tests ask this pool instead. Each variant
is built (or found in the artifact cache) and loaded on first use, then kept for the session.
Two roles share the pool: ``perf`` (latency and memory, the scale model by default) and
``quality`` (BLEU, the trained model by default).
"""

from __future__ import annotations

import gc
import re
from pathlib import Path

from perf_tests.harness import models, variants
from perf_tests.harness.cache import MARKER, ArtifactCache, ArtifactError, library_versions
from perf_tests.harness.config import GateConfig
from perf_tests.harness.declared import VariantSpec
from perf_tests.harness.engines import onnxruntime
from perf_tests.harness.models import ModelSpec
from perf_tests.harness.progress import outline

BUILDER_VERSION = 3  # bump when a builder changes what it writes


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else 'no detail'}"[:300]


class VariantPool:
    def __init__(self, config: GateConfig, cache: ArtifactCache, specs: dict[str, ModelSpec]):
        self.config, self.cache, self.specs = config, cache, specs
        self._engines: dict[tuple[str, str], variants.Engine] = {}
        self._tokenizers: dict[str, object] = {}
        self._folders: dict[tuple[str, str], Path] = {}
        self._skip_reasons: dict[str, str] = {}

    def spec(self, variant: str) -> VariantSpec:
        return self.config.declared[variant]

    def skip_reason(self, variant: str) -> str:
        """Why a variant cannot run here (its engine, this CPU, this model), or "" when it can;
        asked by every test of the variant, found once."""
        if variant not in self._skip_reasons:
            self._skip_reasons[variant] = self._find_skip_reason(variant)
        return self._skip_reasons[variant]

    def _find_skip_reason(self, variant: str) -> str:
        spec = self.spec(variant)
        reason = spec.module.unavailable()
        if not reason and spec.folder is None:
            for role in ("perf", "quality"):
                reason = reason or spec.module.unsupported(self.specs[role].model_type)
        if reason:
            return f"{variant} ({spec.engine}): {reason}"
        return self.config.preset_skip_reason if spec.uses_preset else ""

    def model_folder(self, role: str) -> Path:
        key = ("model", role)
        if key not in self._folders:
            self._folders[key] = models.materialize(self.specs[role], self.cache)
        return self._folders[key]

    def artifact(self, variant: str, role: str) -> Path:
        """The folder a variant loads from, built into the cache on first use."""
        key = (variant, role)
        if key not in self._folders:
            self._folders[key] = self._build(variant, role)
        return self._folders[key]

    def _planted_noise(self, variant: str) -> float:
        plant = self.config.plant
        return plant.noise if plant and plant.applies_to(variant) else 0.0

    def built(self, variant: str) -> dict:
        """What the builder wrote of the variant's perf artifact in artifact.json (its levers,
        a fallback taken); {} when the variant was not built into the cache this run."""
        folder = self._folders.get((variant, "perf"))
        if folder is None or not self.cache.owns(folder):
            return {}
        return self.cache.record(folder).get("details", {})

    def _build(self, variant: str, role: str) -> Path:
        spec = self.spec(variant)
        if spec.folder is not None:
            return spec.folder  # built by the team; loaded as it is
        noise = self._planted_noise(variant)

        def model() -> Path:
            return self._perturbed_model(role, noise) if noise else self.model_folder(role)

        def source() -> Path:  # the planted model's export when this variant is planted
            return self._export(role, model(), noise) if self._from_export(spec, role) else model()

        if not spec.module.builds(spec.recipe):
            return model()
        return self._cached(spec, role, source, noise)

    def _from_export(self, spec: VariantSpec, role: str) -> bool:
        """Whether the variant's builder starts from optimum's export (else the model folder)."""
        return spec.module.source_for(self.specs[role].model_type) == "export"

    def _key_parts(self, role: str, noise: float, **parts) -> dict:
        parts = {"model": self.specs[role].fingerprint, **parts, "versions": library_versions(),
                 "builder": BUILDER_VERSION}
        if noise:
            parts["planted_noise"] = noise
        return parts

    def _cached(self, spec: VariantSpec, role: str, source, noise: float) -> Path:
        """The variant's artifact; ``source()`` (the folder it is built from) is asked for only
        when the artifact must be built, so a warm run opens no intermediate artifact."""
        name, parts = self._variant_entry(spec, role, noise)
        preset = parts["preset"] or ""
        return self.cache.get_or_build(
            name, parts, lambda out: spec.module.build(source(), out, spec.recipe, preset))

    def _variant_entry(self, spec: VariantSpec, role: str, noise: float) -> tuple[str, dict]:
        """The cache name and key parts of a variant's artifact. The key covers engine and
        recipe (and the preset where the recipe uses it), not the variant's name."""
        preset = self.config.preset if spec.uses_preset else None
        parts = self._key_parts(role, noise, engine=spec.engine, recipe=spec.recipe,
                                preset=preset, engine_version=spec.module.BUILD_VERSION)
        return f"{spec.name}-{_safe(self.specs[role].name)}", parts

    def _export(self, role: str, model: Path, noise: float) -> Path:
        """optimum's fp32 export, the intermediate every ONNX Runtime recipe is built from."""
        name, parts = self._export_entry(role, noise)
        return self.cache.get_or_build(name, parts, lambda out: onnxruntime.export(model, out))

    def _export_entry(self, role: str, noise: float) -> tuple[str, dict]:
        return (f"onnx-export-{_safe(self.specs[role].name)}",
                self._key_parts(role, noise, step="onnx-export"))

    # ---------------------------------------------- the build steps a cold run takes (prebuild)

    def build_steps(self, variant: str, role: str) -> list[tuple[str, ...]]:
        """The cache entries that loading a variant builds, each after the ones before it:
        ``("model", role)``, ``("export", role)``, ``("variant", role, variant)``, those it
        needs. None at all for a team's folder, a variant this machine skips or a planted variant
        (its perturbed model is built on first use, as everything was before prebuild)."""
        spec = self.spec(variant)
        if spec.folder is not None or self._planted_noise(variant) or self.skip_reason(variant):
            return []
        steps = [] if self.specs[role].folder is not None else [("model", role)]
        if spec.module.builds(spec.recipe):
            if self._from_export(spec, role):
                steps.append(("export", role))
            steps.append(("variant", role, variant))
        return steps

    def is_cached(self, step: tuple[str, ...]) -> bool:
        """Whether the cache holds a finished artifact for a build step (not verified here)."""
        kind, role = step[:2]
        if kind == "model":
            name, parts = models.scale_entry(self.specs[role])
        elif kind == "export":
            name, parts = self._export_entry(role, 0.0)
        else:
            name, parts = self._variant_entry(self.spec(step[2]), role, 0.0)
        return (self.cache.folder(name, parts) / MARKER).is_file()

    def build_step(self, step: tuple[str, ...]) -> Path:
        """Build (or find) one step's artifact, as loading its variant would."""
        kind, role = step[:2]
        if kind == "model":
            return self.model_folder(role)
        if kind == "export":
            return self._export(role, self.model_folder(role), 0.0)
        return self.artifact(step[2], role)

    def _perturbed_model(self, role: str, noise: float) -> Path:
        spec, source = self.specs[role], self.model_folder(role)
        parts = {"model": spec.fingerprint, "planted_noise": noise, "builder": BUILDER_VERSION}
        return self.cache.get_or_build(f"perturbed-{_safe(spec.name)}", parts,
                                       lambda out: variants.perturb(source, out, noise))

    def engine(self, variant: str, role: str, timed: bool = False) -> variants.Engine:
        """The variant's engine, loaded once. Loading one closes every other candidate first;
        so does asking for one to time (``timed``) that is loaded already: the baseline's own
        rounds, or its second measurement after the quality tests, run beside no candidate."""
        key = (variant, role)
        if timed or key not in self._engines:
            self._release_candidates(keep=variant)
        if key not in self._engines:
            # built (or found) before the load is tried, so that a build that fails fails once,
            # as itself, and is not taken for an artifact that fails to load
            folder = self.artifact(variant, role)
            try:
                self._engines[key] = self._load(variant, role, folder)
            except Exception as error:  # ORT, onnx, safetensors, transformers: any can raise
                if not self.cache.owns(folder):
                    raise  # the user's own folder: nothing to rebuild
                self.cache.discard(folder, f"failed to load ({_first_line(error)})")
                self._folders = {k: f for k, f in self._folders.items() if f != folder}
                folder = self.artifact(variant, role)
                try:
                    self._engines[key] = self._load(variant, role, folder)
                except Exception as again:
                    raise ArtifactError(
                        f"{variant} ({self.specs[role].name}) fails to load even after its "
                        f"artifact was built again: {_first_line(again)}") from None
        return self._engines[key]

    def _release_candidates(self, keep: str) -> None:
        """Close every loaded engine but the baseline and ``keep``, before loading another.

        Each candidate runs beside the baseline only, as it would in a deployment. A live
        CTranslate2 translator (idle, using no CPU) made PyTorch's dynamic int8 about 1.7 times
        slower on this project's 2-core VM (t5-small-random b1-s16: 371-377 ms with ct2-int8
        loaded before it, 212-221 ms without, 213 ms once the translator was deleted): its worker
        thread was a second OpenMP team master in torch's runtime, which then stopped spinning
        (engines.ctranslate2.before_torch, which now prevents it, slowed pytorch-fp32 too).
        Reloading costs at most a second per variant.
        """
        released = [k for k in self._engines if k[0] not in (keep, self.config.baseline)]
        for key in released:
            self._engines.pop(key).close()
        if released:
            gc.collect()  # the engines' native resources go now, not at some later collection

    def _load(self, variant: str, role: str, folder: Path) -> variants.Engine:
        plant = self.config.plant
        slowdown = plant.slowdown if plant and plant.applies_to(variant) else 0.0
        with outline(f"loading {variant} ({self.specs[role].name}, "
                     f"{self.config.threads} threads)"):
            return variants.load(self.spec(variant), folder, self.config.threads, slowdown)

    def tokenizer(self, role: str):
        if role not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[role] = AutoTokenizer.from_pretrained(self.model_folder(role))
        return self._tokenizers[role]
