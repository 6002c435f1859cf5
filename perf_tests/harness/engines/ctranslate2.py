"""CTranslate2: the usual alternative for translation models on CPUs.

The artifact is written by CTranslate2's own converter from the Hugging Face folder
(``recipe = { quantization = "int8" }``); the model's tokenizer files travel with it, because
CTranslate2 takes tokens, not ids. One translator with ``intra_threads`` = the gate's threads and
one inter thread, as every engine gets. ``generate`` maps Hugging Face's settings onto
``translate_batch`` (greedy or beam, min and max new tokens, the end token kept so that a
hypothesis cut by the length cap can be told from a finished one) and returns ids the way
``transformers`` does: each row starts with the decoder start token and is padded with the pad id.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from perf_tests.harness.engines import Loaded, Option, import_problem
from perf_tests.harness.engines._hf import copy_side_files, has_tokenizer

NAME = "ctranslate2"
SOURCE = "model"
QUANTIZATIONS = ("int8", "int8_float32", "int16", "float32")
RECIPE = {"quantization": Option(str, "the converter's weight type", QUANTIZATIONS)}
LOAD = {"compute_type": Option(str, "the type computed in (default: the converted one)",
                               ("default", "auto", *QUANTIZATIONS))}
MODEL_FILES = ("model.bin", "config.json", "shared_vocabulary.json", "shared_vocabulary.txt",
               "source_vocabulary.json", "target_vocabulary.json")


def unavailable() -> str:
    return import_problem("ctranslate2", ": pip install ctranslate2")


def unsupported(model_type: str) -> str:
    from transformers import CONFIG_MAPPING

    try:
        from ctranslate2.converters.transformers import _MODEL_LOADERS
    except ImportError:
        return unavailable()
    config_class = CONFIG_MAPPING[model_type].__name__ if model_type in CONFIG_MAPPING else ""
    if config_class not in _MODEL_LOADERS:
        return f"CTranslate2's converter does not take {model_type} models"
    return ""


def holds_model(folder: Path) -> str:
    folder = Path(folder)
    if not (folder / "model.bin").is_file():
        return f"{folder} holds no model.bin (is it a CTranslate2 model folder?)"
    # tokenizer_config.json too: without it AutoTokenizer reads CTranslate2's own config.json,
    # which names no model type, and the load fails mid-run
    if not has_tokenizer(folder) or not (folder / "tokenizer_config.json").is_file():
        return (f"{folder} holds no tokenizer files (tokenizer_config.json beside tokenizer.json "
                "or spiece.model): copy the Hugging Face model's tokenizer files beside model.bin "
                "(CTranslate2 takes tokens, not ids)")
    return ""


def before_torch() -> str:
    """Import CTranslate2 before torch, so that it keeps an OpenMP runtime of its own.

    torch loads its libgomp into the process's global symbol scope, and a library loaded after
    it binds its OpenMP calls there: CTranslate2's worker thread then becomes a second team
    master in torch's runtime, which then counts more threads than CPUs and stops spinning
    between parallel regions. PyTorch rounds interleaved with CTranslate2 ran 2.0x (b1-s16) and
    1.6x (b8-s64) slower than PyTorch's own test for it on a 2-vCPU Emerald Rapids VM (22
    recorded gate runs; results/README.md), which made CTranslate2's ratio look twice as good.
    Imported first, it binds its own bundled libgomp (a unit test reads the dynamic linker's
    bindings)."""
    if "ctranslate2" in sys.modules:
        return ""
    if "torch" in sys.modules:
        return ("torch was imported before ctranslate2 in this process: CTranslate2 shares "
                "torch's OpenMP runtime, which slows the PyTorch rounds interleaved with it "
                "(about 2x here); run the gate from its own pytest process")
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        pass  # unavailable() says why, for each variant of this engine
    return ""


def import_libraries() -> None:
    import ctranslate2  # noqa: F401
    import torch  # noqa: F401
    from transformers import AutoTokenizer  # noqa: F401


def build(source: Path, out: Path, recipe: dict, preset: str) -> dict:
    from ctranslate2.converters import TransformersConverter

    from perf_tests.harness.progress import outline

    quantization = recipe.get("quantization", "int8")
    with outline(f"converting {Path(source).name} with CTranslate2 ({quantization})"):
        TransformersConverter(str(source)).convert(str(out), quantization=quantization,
                                                   force=True)
    # the converter writes its own config.json; the tokenizer's files join it, not Hugging
    # Face's config (which would overwrite it)
    copy_side_files(source, out, skip=("config.json", "generation_config.json"))
    return {"quantization": quantization}


class Ct2Generator:
    def __init__(self, translator, tokenizer, start_token: str):
        self.translator, self.tokenizer = translator, tokenizer
        self.start_id = tokenizer.convert_tokens_to_ids(start_token)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _tokens(self, inputs: dict) -> list[list[str]]:
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        rows = [row[m.bool()] if mask is not None else row for row, m in
                zip(ids, mask if mask is not None else ids)]
        return [self.tokenizer.convert_ids_to_tokens(row.tolist()) for row in rows]

    def generate(self, inputs: dict, settings: dict, clock=None):
        import torch

        beams = settings.get("num_beams", 1)
        step_callback = None
        if clock is not None:
            if beams != 1:
                raise ValueError("CTranslate2 reports decoding steps for greedy search only")
            step_callback = lambda step: clock.tick(step.step) or False  # noqa: E731
        results = self.translator.translate_batch(
            self._tokens(inputs), beam_size=beams, max_decoding_length=settings["max_new_tokens"],
            min_decoding_length=settings.get("min_new_tokens", 0), return_end_token=True,
            max_input_length=0, callback=step_callback)
        rows = [[self.start_id, *self.tokenizer.convert_tokens_to_ids(r.hypotheses[0])]
                for r in results]
        width = max(len(row) for row in rows)
        return torch.tensor([row + [self.pad_id] * (width - len(row)) for row in rows])

    def encode(self, inputs: dict) -> bool:
        return False  # the Python API has no encoder-only call for a translator

    def close(self) -> None:
        self.translator.unload_model()
        self.translator = None


def load(folder: Path, threads: int, options: dict) -> Loaded:
    import ctranslate2
    from transformers import AutoTokenizer

    folder = Path(folder)
    translator = ctranslate2.Translator(str(folder), device="cpu",
                                        compute_type=options.get("compute_type", "default"),
                                        inter_threads=1, intra_threads=threads)
    config = json.loads((folder / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    generator = Ct2Generator(translator, tokenizer, config.get("decoder_start_token") or "<pad>")
    files = tuple(folder / name for name in MODEL_FILES if (folder / name).is_file())
    return Loaded(generator, files)
