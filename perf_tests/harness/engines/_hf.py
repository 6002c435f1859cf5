"""Hugging Face generation, shared by the engines whose models are transformers or optimum
models (PyTorch and ONNX Runtime): ``generate`` with the step clock as a logits processor."""

from __future__ import annotations

import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tracing():
    """An export that traces the model: torch.jit's TracerWarnings (what tracing could not
    capture, expected for a seq2seq export) are not errors there. Filtered here and not in
    pyproject.toml's filterwarnings, because pytest resolves a warning class named there by
    importing it while it reads its configuration, and importing torch that early keeps the
    gate from preparing its process first (engines.prepare_process, for CTranslate2)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def _clock_processor(clock):
    from transformers import LogitsProcessor

    class ClockProcessor(LogitsProcessor):
        """Called once per decoding step, after the model's forward pass; changes nothing."""

        def __call__(self, input_ids, scores):
            clock.tick()
            return scores

    return ClockProcessor()


class HFGenerator:
    def __init__(self, model):
        self.model = model

    def generate(self, inputs: dict, settings: dict, clock=None):
        import torch

        extra = {}
        if clock is not None:
            from transformers import LogitsProcessorList

            extra["logits_processor"] = LogitsProcessorList([_clock_processor(clock)])
        with torch.inference_mode():
            return self.model.generate(**inputs, **settings, **extra)

    def encode(self, inputs: dict) -> bool:
        import torch

        with torch.inference_mode():
            self.model.get_encoder()(input_ids=inputs["input_ids"],
                                     attention_mask=inputs["attention_mask"])
        return True


WEIGHT_SUFFIXES = (".onnx", ".safetensors", ".bin", ".pt", ".data")


def copy_side_files(source: Path, out: Path, skip: tuple[str, ...] = ()) -> None:
    """Config, generation config and tokenizer files travel with every built artifact; weights
    and files already written there do not."""
    for path in Path(source).iterdir():
        if (path.is_file() and path.suffix not in WEIGHT_SUFFIXES
                and not path.name.endswith("_data") and path.name not in skip
                and not (out / path.name).exists()):
            shutil.copy2(path, out / path.name)


# the vocabulary files transformers' seq2seq tokenizers save (tokenizer.json for every fast one;
# FSMT's vocab-src.json, ProphetNet's prophetnet.tokenizer, a BERT encoder-decoder's vocab.txt)
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "vocab.json", "source.spm",
                   "sentencepiece.bpe.model", "tokenizer.model", "vocab-src.json",
                   "prophetnet.tokenizer", "vocab.txt")


def has_tokenizer(folder: Path) -> bool:
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)
