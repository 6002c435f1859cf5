"""Model specs: turn the name a user gives into a checked, fully described model under test.

A name is one of the embedded models (``t5-tiny-enfr``, trained and committed; ``t5-small-random``,
built on demand into the artifact cache), a local folder holding a saved Hugging Face seq2seq
model, or a hub id. The input prefix and generation settings come from the model's own config,
never from a T5 default. Every way this can fail raises ``ModelError`` with one line.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from fixtures.models import scale
from perf_tests.harness.cache import ArtifactCache, content_key, hash_files, library_versions
from perf_tests.harness.parsing import ConfigError, path_of

TINY_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "t5-tiny-enfr"
EMBEDDED = ("t5-tiny-enfr", "t5-small-random")
WEIGHT_PATTERNS = ("config.json", "*.safetensors", "*.bin", "*.model", "tokenizer*.json",
                   "vocab*", "merges.txt", "*.spm", "generation_config.json")


class ModelError(Exception):
    """The model under test cannot be used: one line naming it and saying what to do."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "embedded", "folder" or "hub"
    folder: Path | None  # None until an embedded model is built
    fingerprint: str
    model_type: str
    prefix: str
    source_lang: str
    target_lang: str
    quality_beams: int
    quality_max_new_tokens: int
    parameters: int = 0  # from the weights files' headers; 0 when unknown

    @property
    def embedded(self) -> bool:
        return self.kind == "embedded"


def _seq2seq_config(folder: Path, shown_name: str):
    """Load and check a folder's config: it must be an encoder-decoder for AutoModelForSeq2SeqLM."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

    if not (folder / "config.json").is_file():
        raise ModelError(f"model {shown_name}: {folder} has no config.json, so it is not a saved "
                         "Hugging Face model; pass a folder written by save_pretrained()")
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ModelError(f"model {shown_name}: config.json in {folder} cannot be read "
                         f"({first_line})") from None
    if config.model_type not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(f"model {shown_name}: {folder} holds a {config.model_type!r} model, "
                         "which is not a seq2seq (encoder-decoder) model; pass one that "
                         "AutoModelForSeq2SeqLM loads (T5, mT5, BART, Marian)")
    return config


def _embedded_config(folder: Path) -> SimpleNamespace:
    """An embedded model's config.json as written: this project trained it (a T5), so it needs no
    check by transformers, whose import (about 2 s with torch) a run that only collects, or stops
    on bad input, should not wait for."""
    return SimpleNamespace(**json.loads((folder / "config.json").read_text(encoding="utf-8")))


def _generation_settings(config, folder: Path | None, source: str, target: str):
    """Prefix and beam count from the model's task params or generation config."""
    task = (getattr(config, "task_specific_params", None) or {}).get(
        f"translation_{source}_to_{target}", {})
    beams = task.get("num_beams")
    if beams is None and folder is not None and (folder / "generation_config.json").is_file():
        beams = json.loads((folder / "generation_config.json").read_text()).get("num_beams")
    # null is no prefix, as transformers' pipelines read it; 0 beams is not the default 4
    prefix = "" if task.get("prefix") is None else task["prefix"]
    beams = 4 if beams is None else beams
    # read here, where a wrong one is one line, not where generate() or the prefix's
    # concatenation would raise mid-run
    if not isinstance(prefix, str):
        raise TypeError(f"the prefix {prefix!r} is not text")
    if isinstance(beams, bool) or isinstance(beams, float) and not beams.is_integer():
        raise TypeError(f"num_beams {beams!r} is not a whole number")
    if int(beams) < 1:
        raise ValueError(f"num_beams {beams} is below 1")
    return prefix, int(beams)


def count_parameters(folder: Path) -> int:
    """Parameters stored in a folder's safetensors files, read from their headers (no tensor is
    loaded); a PyTorch .bin file is counted as fp32 from its size. 0 when there is no weights file.
    """
    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with path.open("rb") as handle:
                size = struct.unpack("<Q", handle.read(8))[0]
                header = json.loads(handle.read(size))
        except (OSError, ValueError, struct.error):
            return 0
        total += sum(math.prod(entry["shape"]) for name, entry in header.items()
                     if name != "__metadata__")
    if not total:
        total = sum(path.stat().st_size // 4 for path in folder.glob("pytorch_model*.bin"))
    return total


def _missing(folder: Path, brief: bool = False) -> list[str]:
    """What a model folder lacks to be loaded, built and scored: weights and a tokenizer (a
    folder saved without ``tokenizer.save_pretrained`` passed, built every variant, then failed
    every test). ``brief``: the names alone."""
    from perf_tests.harness.engines import _hf, pytorch

    missing = []
    if not pytorch.weight_files(folder):
        missing.append("weights" if brief else
                       "weights (model.safetensors, pytorch_model.bin, or either one's "
                       "*.index.json with every shard it lists)")
    if not _hf.has_tokenizer(folder):
        missing.append("a tokenizer" if brief else
                       "a tokenizer (tokenizer.json, spiece.model, vocab.json or source.spm: "
                       "save it beside the model with tokenizer.save_pretrained)")
    return missing


def _spec_from_folder(name: str, kind: str, folder: Path, pair: tuple[str, str],
                      fingerprint: str | None = None) -> ModelSpec:
    config = _embedded_config(folder) if kind == "embedded" else _seq2seq_config(folder, name)
    try:
        prefix, beams = _generation_settings(config, folder, *pair)
        max_new_tokens = 64 if kind == "embedded" else 256
        positions = getattr(config, "max_position_embeddings", None)  # BART, Marian: a limit
        if positions:
            max_new_tokens = min(max_new_tokens, int(positions) - 2)
        parameters = count_parameters(folder)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        # a setting of another type than transformers writes (num_beams = "four"), a damaged
        # generation_config.json or safetensors header
        raise ModelError(f"model {name}: a setting in {folder} cannot be read ({type(error).__name__}"
                         f": {error}): check its config.json, generation_config.json and "
                         "*.safetensors") from None
    missing = [] if kind == "embedded" else _missing(folder)
    if missing:
        raise ModelError(f"model {name}: {folder} lacks {' and '.join(missing)}")
    return ModelSpec(name, kind, folder, fingerprint or hash_files(folder, WEIGHT_PATTERNS),
                     config.model_type, prefix, pair[0], pair[1], beams, max_new_tokens,
                     parameters)


HUB_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.spm", "vocab*", "*.tokenizer")


def _cached_snapshot(model_id: str) -> tuple[Path | None, str]:
    """A hub model's complete snapshot in the cache, else None and what the cache holds of it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        cached = Path(snapshot_download(model_id, allow_patterns=list(HUB_PATTERNS),
                                        local_files_only=True))
    except HFValidationError:
        raise ModelError(f"model {model_id!r} is neither an embedded model ({', '.join(EMBEDDED)}),"
                         " an existing folder, nor a valid hub id") from None
    except Exception:  # not in the cache
        return None, "is not in the Hugging Face cache"
    lacking = _missing(cached, brief=True)  # a config and a tokenizer fetched alone, say
    if lacking:
        return None, f"is in the Hugging Face cache without {' and '.join(lacking)}"
    return cached, ""


def _hub_folder(model_id: str) -> Path:
    """The local snapshot of a hub model: from the cache, or downloaded where the network allows
    (also where the cache holds only part of it)."""
    from huggingface_hub import snapshot_download

    cached, where = _cached_snapshot(model_id)
    if cached is not None:
        return cached
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ModelError(f"model {model_id} {where} and HF_HUB_OFFLINE is set: download it once "
                         "with network access, or pass a local folder or an embedded model "
                         f"({', '.join(EMBEDDED)})")
    try:
        folder = Path(snapshot_download(model_id, allow_patterns=list(HUB_PATTERNS),
                                        etag_timeout=10))
        if _missing(folder):  # the .bin weights only where there are no safetensors: not both
            folder = Path(snapshot_download(model_id, etag_timeout=10,
                                            allow_patterns=[*HUB_PATTERNS, "pytorch_model*.bin"]))
    except Exception as error:
        raise ModelError(f"model {model_id} {where} and cannot be downloaded "
                         f"({type(error).__name__}: no network to the hub?): download it once with "
                         "network access, or pass a local folder or an embedded model "
                         f"({', '.join(EMBEDDED)})") from None
    lacking = _missing(folder, brief=True)
    if lacking:  # huggingface_hub answers from the cache where the hub cannot be reached
        raise ModelError(f"model {model_id}: its snapshot {folder} lacks {' and '.join(lacking)} "
                         "after a download (no network to the hub, or the repository has none): "
                         "download it once with network access, or save the model and its "
                         "tokenizer into a folder and pass that")
    return folder


def resolve(name: str, pair: tuple[str, str] = ("en", "fr")) -> ModelSpec:
    """Check a model name and describe it; builds nothing."""
    if name == "t5-tiny-enfr":
        if not (TINY_DIR / "model.safetensors").is_file():
            raise ModelError(f"embedded model t5-tiny-enfr is missing from {TINY_DIR}: "
                             "rebuild it with python -m fixtures.models.train_tiny")
        return _spec_from_folder(name, "embedded", TINY_DIR, pair)
    if name == "t5-small-random":
        fingerprint = content_key({**scale.SPEC, "tokenizer": hash_files(TINY_DIR, ("spiece*",)),
                                   "torch": library_versions(("torch",))})
        return ModelSpec(name, "embedded", None, fingerprint, "t5", scale.PREFIX, *pair,
                         quality_beams=4, quality_max_new_tokens=64, parameters=scale.PARAMETERS)
    try:
        path = path_of(name, "model")
    except ConfigError as error:
        raise ModelError(str(error)) from None
    if path.is_dir():
        return _spec_from_folder(name, "folder", path, pair)
    if name.startswith((".", "/", "~")) or os.sep in name and path.parent.is_dir():
        raise ModelError(f"model {name}: no such folder; pass an existing folder, a hub id or an "
                         f"embedded model ({', '.join(EMBEDDED)})")
    folder = _hub_folder(name)
    return _spec_from_folder(name, "hub", folder, pair, fingerprint=folder.name)


def materialize(spec: ModelSpec, cache: ArtifactCache) -> Path:
    """The folder holding the model's files, building the random scale model if needed."""
    if spec.folder is not None:
        return spec.folder
    return cache.get_or_build(*scale_entry(spec), lambda out: {"parameters": scale.build(out)})


def scale_entry(spec: ModelSpec) -> tuple[str, dict]:
    """The cache name and key parts of the random scale model's folder."""
    return "t5-small-random", {"fingerprint": spec.fingerprint}
