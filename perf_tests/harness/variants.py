"""Variant builders and loaders, kept in a registry keyed by variant name.

A builder turns the model folder into an artifact folder in the cache (export, optimize, quantize)
and never times anything; a loader opens an artifact with a given thread count and returns an
``Engine``, the one face every variant shows to the measurements. Each ONNX variant lives in its
own folder holding only the files it loads, because ``ORTModelForSeq2SeqLM.from_pretrained``
silently prefers fp32 file names when several are present.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from perf_tests.harness.progress import outline

ONNX_EXPORT_TASK = "text2text-generation-with-past"
ENCODER, DECODER = "encoder_model.onnx", "decoder_model.onnx"
DECODER_WITH_PAST, DECODER_MERGED = "decoder_with_past_model.onnx", "decoder_model_merged.onnx"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INTEGER_OPS = frozenset({"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul",
                         "QAttention", "ConvInteger", "QGemm"})


@dataclass
class Engine:
    """A loaded variant: ``generate`` runs Hugging Face generation on it, nothing else differs."""

    variant: str
    model: object
    loaded_files: tuple[Path, ...]
    load_seconds: float
    slowdown: float = 0.0  # planted regression: extra busy time as a fraction of each call's
    info: dict = field(default_factory=dict)

    def generate(self, inputs: dict, **settings):
        import torch

        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, **settings)
        if self.slowdown:
            _busy_wait((time.perf_counter() - started) * self.slowdown)
        return output

    @property
    def disk_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.loaded_files)


# ---------------------------------------------------------------- builders (never time anything)

def export_onnx(model_folder: Path, out: Path) -> dict:
    """optimum's export with past key values: the same layout ``optimum-cli export onnx`` writes.

    This folder is an intermediate: O3 and int8 are built from it, and onnx-fp32 takes the two
    graphs it loads from it. It is never rewritten (ORTOptimizer deletes a source graph's
    external data file, which is why the export keeps its weights inside the graphs).
    """
    from optimum.exporters.onnx import main_export

    with outline(f"exporting {model_folder.name} to ONNX ({ONNX_EXPORT_TASK})"):
        main_export(str(model_folder), output=out, task=ONNX_EXPORT_TASK, do_validation=False,
                    device="cpu")
    return {"files": sorted(p.name for p in out.glob("*.onnx"))}


def onnx_fp32(export_folder: Path, out: Path) -> dict:
    """The graphs optimum loads by default (encoder, merged decoder), weights stored apart."""
    for name in (ENCODER, DECODER_MERGED):
        externalize(export_folder / name, out / name)
    _copy_side_files(export_folder, out)
    return {"files": [ENCODER, DECODER_MERGED]}


def externalize(source: Path, target: Path) -> None:
    """Write a graph with its weights in ``<name>_data`` beside it.

    ONNX Runtime memory-maps external data on the CPU instead of parsing the weights into a
    protobuf and copying them into tensors: measured here on t5-small-random int8, RSS added by
    loading fell from 199 MB to 88 MB and peak memory above baseline from 255 MB to 160 MB.
    """
    import onnx

    with outline(f"storing {target.name} weights as external data"):
        model = onnx.load(str(source))
        for stale in (target.with_name(target.name + "_data"), target.with_suffix(".onnx.data")):
            stale.unlink(missing_ok=True)
        onnx.save_model(model, str(target), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=target.name + "_data",
                        size_threshold=1024)


def optimize_o3(export_folder: Path, out: Path) -> dict:
    """ORTOptimizer at O3 on the unmerged graphs (it cannot optimize the merged decoder)."""
    from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer

    files = [ENCODER, DECODER, DECODER_WITH_PAST]
    with outline("optimizing encoder, decoder and decoder_with_past at O3"):
        optimizer = ORTOptimizer.from_pretrained(export_folder, file_names=files)
        optimizer.optimize(AutoOptimizationConfig.O3(), save_dir=out, file_suffix="")
    fused = {name: ORTOptimizer.get_fused_operators(out / name) for name in files}
    for name in files:
        externalize(out / name, out / name)
    return {"fused_operators": fused}


def quantization_config(preset: str):
    from optimum.onnxruntime import AutoQuantizationConfig

    factory = {"arm64": AutoQuantizationConfig.arm64, "avx2": AutoQuantizationConfig.avx2,
               "avx512": AutoQuantizationConfig.avx512,
               "avx512_vnni": AutoQuantizationConfig.avx512_vnni}[preset]
    return factory(is_static=False, per_channel=False)


def quantize_int8(export_folder: Path, out: Path, preset: str) -> dict:
    """Dynamic int8 of the unfused export (quantizing a fused graph fails shape inference)."""
    from optimum.onnxruntime import ORTQuantizer

    counts = {}
    for name in (ENCODER, DECODER_MERGED):
        with outline(f"quantizing {name.removesuffix('.onnx')} ({preset})"):
            quantizer = ORTQuantizer.from_pretrained(export_folder, file_name=name)
            quantizer.quantize(quantization_config(preset), save_dir=out, file_suffix="")
            counts[name] = integer_op_count(out / name)
            if counts[name] == 0:
                raise RuntimeError(f"quantizing {name} produced no integer operators")
        externalize(out / name, out / name)
    _copy_side_files(export_folder, out)
    return {"integer_ops": counts, "preset": preset}


def integer_op_count(onnx_file: Path) -> int:
    """How many integer (quantized) operators a graph holds, subgraphs of If nodes included."""
    import onnx

    def count(graph) -> int:
        total = 0
        for node in graph.node:
            total += node.op_type in INTEGER_OPS
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    total += count(attribute.g)
        return total

    return count(onnx.load(str(onnx_file), load_external_data=False).graph)


def _copy_side_files(source: Path, out: Path) -> None:
    """Config, generation config and tokenizer files travel with every ONNX variant."""
    for path in source.iterdir():
        if path.is_file() and path.suffix != ".onnx" and not (out / path.name).exists():
            shutil.copy2(path, out / path.name)


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
        _copy_side_files(model_folder, out)
    return {"noise": noise, "seed": seed}


# ---------------------------------------------------------------- loaders

def ort_session_options(threads: int):
    """Same thread count as torch, and no spinning, so ORT threads cannot slow torch code."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # No arena: it keeps the largest activations ever seen; measured here on t5-small-random int8
    # at b8-s64, peak memory above baseline fell from 160 MB to 142 MB (latency: see README).
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def load_pytorch(folder: Path, threads: int) -> tuple[object, tuple[Path, ...]]:
    import torch
    from transformers import AutoModelForSeq2SeqLM

    torch.set_num_threads(threads)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=torch.float32).eval()
    files = tuple(folder / name for name in WEIGHT_FILES if (folder / name).is_file())
    return model, files


def load_onnx(folder: Path, threads: int) -> tuple[object, tuple[Path, ...]]:
    """Load an ONNX seq2seq folder (ours or one written by ``optimum-cli export onnx``).

    The merged decoder is used when present, as optimum does; the files actually opened are read
    back from the sessions, so the size on disk counts exactly what was loaded.
    """
    import torch
    from optimum.onnxruntime import ORTModelForSeq2SeqLM

    torch.set_num_threads(threads)
    merged = (folder / DECODER_MERGED).is_file()
    model = ORTModelForSeq2SeqLM.from_pretrained(
        folder, use_cache=True, use_merged=merged, session_options=ort_session_options(threads),
        provider="CPUExecutionProvider")
    parts = [model.encoder, model.decoder, getattr(model, "decoder_with_past", None)]
    files = tuple(Path(part.path) for part in parts if part is not None)
    for path in files:
        data = path.with_name(path.name + "_data")
        if data.is_file():
            files += (data,)
    return model, files


@dataclass(frozen=True)
class VariantKind:
    """How a variant is built from the model folder (or the export) and how it is loaded."""

    name: str
    source: str  # "model" (the Hugging Face folder) or "export" (the fp32 ONNX export)
    build: Callable[[Path, Path, str], dict] | None  # (source, out, preset) -> details
    load: Callable[[Path, int], tuple[object, tuple[Path, ...]]]
    uses_preset: bool = False


REGISTRY: dict[str, VariantKind] = {
    "pytorch-fp32": VariantKind("pytorch-fp32", "model", None, load_pytorch),
    "onnx-export": VariantKind("onnx-export", "model", lambda src, out, _: export_onnx(src, out),
                               load_onnx),
    "onnx-fp32": VariantKind("onnx-fp32", "export", lambda src, out, _: onnx_fp32(src, out),
                             load_onnx),
    "onnx-o3": VariantKind("onnx-o3", "export", lambda src, out, _: optimize_o3(src, out),
                           load_onnx),
    "onnx-int8": VariantKind("onnx-int8", "export", quantize_int8, load_onnx, uses_preset=True),
}


def _busy_wait(seconds: float) -> None:
    """Spin, not sleep: a real regression keeps the CPU busy. A sleeping plant let the vCPUs idle
    before each interleaved pytorch-fp32 round, and those rounds came out about 14 % slower
    (median 294 ms in planted runs vs 257 ms in the unchanged runs just before), which hid part
    of the plant from the ratio."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def load(kind: VariantKind, folder: Path, threads: int, slowdown: float = 0.0) -> Engine:
    started = time.perf_counter()
    model, files = kind.load(folder, threads)
    engine = Engine(kind.name, model, files, time.perf_counter() - started, slowdown)
    if kind.uses_preset:
        engine.info["integer_ops"] = sum(integer_op_count(f) for f in files if f.suffix == ".onnx")
        if engine.info["integer_ops"] == 0:
            raise RuntimeError(f"{kind.name} loaded fp32 graphs from {folder}: no integer ops")
    return engine
