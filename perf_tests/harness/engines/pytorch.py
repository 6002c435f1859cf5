"""PyTorch: the model as transformers loads it (fp32), or its Linear layers in dynamic int8.

``recipe = { quantize = "dynamic-int8" }`` is PyTorch's own zero-effort int8: every
``nn.Linear`` becomes a dynamically quantized one (int8 weights, activations quantized per call).
Such a model cannot be written with ``save_pretrained``, so the artifact holds its state dict and
``load`` rebuilds the module tree from the config, quantizes it, then loads the int8 weights.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from perf_tests.harness.engines import Loaded, Option
from perf_tests.harness.engines._hf import HFGenerator, copy_side_files

NAME = "pytorch"
SOURCE = "model"
# what transformers loads, in its order: one safetensors file or the shards its index lists,
# else the PyTorch .bin or its shards
WEIGHT_FILES = (("model.safetensors", "model.safetensors.index.json"),
                ("pytorch_model.bin", "pytorch_model.bin.index.json"))
INT8_STATE = "model_int8.pt"
RECIPE = {"quantize": Option(str, "dynamic int8 of every nn.Linear", ("dynamic-int8",))}


def unavailable() -> str:
    return ""  # torch and transformers are the suite's own requirements


def weight_files(folder: Path) -> tuple[Path, ...]:
    """The weights files transformers loads from a folder (a git clone of a hub model holds both
    formats, of which it reads one); () when there are none, or a shard an index lists is
    missing."""
    folder = Path(folder)
    for single, index in WEIGHT_FILES:
        if (folder / single).is_file():
            return (folder / single,)
        if (folder / index).is_file():
            try:
                shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return ()
            files = tuple(folder / shard for shard in shards)
            return files if files and all(path.is_file() for path in files) else ()
    return ()


def holds_model(folder: Path) -> str:
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        return f"{folder} has no config.json"
    if not weight_files(folder) and not (folder / INT8_STATE).is_file():
        names = ", ".join(name for pair in WEIGHT_FILES for name in pair)
        return f"{folder} holds no weights ({names} with its shards, or {INT8_STATE})"
    return ""


def import_libraries() -> None:
    import torch  # noqa: F401
    from transformers import AutoModelForSeq2SeqLM  # noqa: F401


def builds(recipe: dict) -> bool:
    return bool(recipe.get("quantize"))  # fp32 loads the model folder as it is


def _quantized(model):
    import torch

    # torch.ao.quantization is deprecated in favour of torchao, whose int8 CPU kernels need
    # torch.compile; quantize_dynamic is still what "PyTorch's own dynamic int8" means to most
    # people, and it is present in torch 2.13. The warning would fail the run (warnings are
    # errors in pytest's configuration), so it is silenced here and only here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated",
                                DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                      dtype=torch.qint8)


def build(source: Path, out: Path, recipe: dict, preset: str) -> dict:
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from perf_tests.harness.progress import outline

    with outline(f"quantizing {Path(source).name}'s Linear layers to dynamic int8 (PyTorch)"):
        model = _quantized(AutoModelForSeq2SeqLM.from_pretrained(source).eval())
        torch.save(model.state_dict(), out / INT8_STATE)
    copy_side_files(source, out)
    linears = sum(type(m).__name__ == "Linear" and "quantized" in type(m).__module__
                  for m in model.modules())
    return {"quantized_linear_layers": linears}


def load(folder: Path, threads: int, options: dict) -> Loaded:
    import torch
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    torch.set_num_threads(threads)
    folder = Path(folder)
    state = folder / INT8_STATE
    if not state.is_file():
        model = AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=torch.float32).eval()
        return Loaded(HFGenerator(model), weight_files(folder))
    from transformers.modeling_utils import no_init_weights

    # The module tree without initializing its fp32 weights: their pages are never written, so
    # they cost no RSS before quantize_dynamic replaces every Linear (the embedding is filled by
    # the state dict), and the state dict is memory-mapped, not read into a second copy.
    # Measured on t5-small-random at b8-s64 (peak RSS above baseline): 576 MB initialized and
    # read, 443 MB uninitialized and read, 407 MB uninitialized and mapped.
    with no_init_weights():
        skeleton = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(folder))
    model = _quantized(skeleton.eval())
    # weights_only=False: packed int8 parameters are pickled objects; the file is one this
    # suite's own builder wrote into its cache, hash-verified before every reuse
    model.load_state_dict(torch.load(state, weights_only=False, mmap=True))
    if (folder / "generation_config.json").is_file():
        # from_config leaves the model's own generation settings (no_repeat_ngram_size, a
        # length penalty) out, which from_pretrained reads for pytorch-fp32: both decode alike
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(folder)
    return Loaded(HFGenerator(model), (state,))
