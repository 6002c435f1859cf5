"""ONNX Runtime through optimum: every recipe starts from optimum's fp32 export.

Recipes (``recipe = { ... }`` in the declarations):
    {}                                   the export's encoder and merged decoder (onnx-fp32)
    { optimize = "O3" }                  ORTOptimizer at O1-O3 on the unmerged graphs (onnx-o3)
    { quantize = "preset" }              dynamic int8 with the CPU's preset (onnx-int8), or a named
                                         preset (avx2, avx512, avx512_vnni, arm64)
    per_channel, nodes_to_exclude, operators_to_quantize   the quantizer's own knobs
Every built graph keeps its weights in ``<name>_data`` beside it (see ``externalize``). Each
variant lives in its own folder holding only the files it loads, because
``ORTModelForSeq2SeqLM.from_pretrained`` silently prefers fp32 file names when several are present.
"""

from __future__ import annotations

from pathlib import Path

from perf_tests.harness.cpu import PRESETS
from perf_tests.harness.engines import Loaded, Option
from perf_tests.harness.engines._hf import HFGenerator, copy_side_files, tracing
from perf_tests.harness.progress import outline

NAME = "onnxruntime"
SOURCE = "export"
EXPORT_TASK = "text2text-generation-with-past"
ENCODER, DECODER = "encoder_model.onnx", "decoder_model.onnx"
DECODER_WITH_PAST, DECODER_MERGED = "decoder_with_past_model.onnx", "decoder_model_merged.onnx"
INTEGER_OPS = frozenset({"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul",
                         "QAttention", "ConvInteger", "QGemm"})
RECIPE = {
    "optimize": Option(str, "ORTOptimizer level on the unmerged graphs", ("O1", "O2", "O3")),
    "quantize": Option(str, "dynamic int8 with the CPU's preset or a named one",
                       ("preset", *PRESETS)),
    "per_channel": Option(bool, "int8 scales per output channel instead of per tensor",
                          requires="quantize"),
    "nodes_to_exclude": Option(list, "graph nodes kept in fp32", requires="quantize"),
    "operators_to_quantize": Option(list, "operator types to quantize (the preset's otherwise)",
                                    requires="quantize"),
}
LOAD = {
    "graph_optimization_level": Option(str, "ONNX Runtime's own graph optimizations at load",
                                       ("disable", "basic", "extended", "all")),
    "mem_arena": Option(bool, "ONNX Runtime's CPU memory arena (off by default, see below)"),
    "spinning": Option(bool, "let idle intra-op threads spin (off by default)"),
    "prepacking": Option(bool, "ONNX Runtime's prepacked copies of the weights (on by default)"),
    "encoder_file": Option(str, "the encoder graph's file name in a declared folder"),
    "decoder_file": Option(str, "the decoder graph's file name in a declared folder"),
    "decoder_with_past_file": Option(str, "the decoder-with-past graph's file name"),
}


def unavailable() -> str:
    return ""  # optimum-onnx[onnxruntime] is one of the suite's own requirements


# the embedded models' type, answered without importing optimum's exporters (about 7 s of CPU
# with torch), which a run of the default models should not pay to be told yes
EXPORTED_WITHOUT_ASKING = ("t5",)


def unsupported(model_type: str) -> str:
    """Why optimum cannot export a model type to ONNX ("" when it can): 17 of the seq2seq types
    transformers knows (FSMT, UMT5, LED, ProphetNet, ...) have no ONNX config there, and their
    export raised in every ONNX variant's test instead of a skip with the reason."""
    if model_type in EXPORTED_WITHOUT_ASKING:
        return ""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX configs)
    from optimum.exporters.tasks import TasksManager

    try:
        tasks = TasksManager.get_supported_tasks_for_model_type(model_type, "onnx",
                                                                library_name="transformers")
    except KeyError:
        return f"optimum cannot export {model_type} models to ONNX"
    if EXPORT_TASK not in tasks:  # each seq2seq type optimum-onnx 0.1 takes has it; not promised
        return f"optimum cannot export {model_type} models to ONNX for {EXPORT_TASK}"
    return ""


def holds_model(folder: Path) -> str:
    folder = Path(folder)
    if not any(p.name.startswith("encoder_model") for p in folder.glob("*.onnx")):
        return f"{folder} holds no encoder_model*.onnx (is it an optimum export?)"
    if not any(p.name.startswith("decoder_model") for p in folder.glob("*.onnx")):
        return f"{folder} holds no decoder_model*.onnx"
    if not (folder / "config.json").is_file():
        return f"{folder} has no config.json (optimum writes it beside the graphs)"
    return ""


def import_libraries() -> None:
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401
    from optimum.onnxruntime import ORTModelForSeq2SeqLM  # noqa: F401


def uses_preset(recipe: dict) -> bool:
    return recipe.get("quantize") == "preset"


# ---------------------------------------------------------------- builders (never time anything)

def export(model_folder: Path, out: Path) -> dict:
    """optimum's export with past key values: the same layout ``optimum-cli export onnx`` writes.

    This folder is an intermediate: every ONNX recipe is built from it, and it is never
    rewritten (ORTOptimizer deletes a source graph's external data file, which is why the export
    keeps its weights inside the graphs).
    """
    from optimum.exporters.onnx import main_export

    with outline(f"exporting {Path(model_folder).name} to ONNX ({EXPORT_TASK})"), tracing():
        main_export(str(model_folder), output=out, task=EXPORT_TASK, do_validation=False,
                    device="cpu")
    return {"files": sorted(p.name for p in out.glob("*.onnx"))}


def recipe_problem(recipe: dict) -> str:
    if recipe.get("optimize") and recipe.get("quantize"):
        return ("optimize and quantize do not stack (quantizing a fused graph fails optimum's "
                "shape inference): declare two variants, or keep one of them")
    return ""


def build(source: Path, out: Path, recipe: dict, preset: str) -> dict:
    if recipe.get("optimize") and recipe.get("quantize"):
        # quantizing a fused graph fails optimum's shape inference, so the two do not stack
        raise ValueError("an onnxruntime recipe takes optimize or quantize, not both")
    if recipe.get("optimize"):
        return optimize(source, out, recipe["optimize"])
    if recipe.get("quantize"):
        named = recipe["quantize"]
        return quantize(source, out, preset if named == "preset" else named, recipe)
    return fp32(source, out)


def fp32(export_folder: Path, out: Path) -> dict:
    """The graphs optimum loads by default (encoder, merged decoder), weights stored apart."""
    for name in (ENCODER, DECODER_MERGED):
        externalize(export_folder / name, out / name)
    copy_side_files(export_folder, out)
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


def optimize(export_folder: Path, out: Path, level: str) -> dict:
    """ORTOptimizer on the unmerged graphs (it cannot optimize the merged decoder)."""
    from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer

    files = [ENCODER, DECODER, DECODER_WITH_PAST]
    with outline(f"optimizing encoder, decoder and decoder_with_past at {level}"):
        optimizer = ORTOptimizer.from_pretrained(export_folder, file_names=files)
        config = getattr(AutoOptimizationConfig, level)()
        optimizer.optimize(config, save_dir=out, file_suffix="")
    fused = {name: ORTOptimizer.get_fused_operators(out / name) for name in files}
    for name in files:
        externalize(out / name, out / name)
    return {"fused_operators": fused, "level": level}


def quantization_config(preset: str, recipe: dict):
    from optimum.onnxruntime import AutoQuantizationConfig

    factory = {"arm64": AutoQuantizationConfig.arm64, "avx2": AutoQuantizationConfig.avx2,
               "avx512": AutoQuantizationConfig.avx512,
               "avx512_vnni": AutoQuantizationConfig.avx512_vnni}[preset]
    return factory(is_static=False, per_channel=recipe.get("per_channel", False),
                   nodes_to_exclude=recipe.get("nodes_to_exclude"),
                   operators_to_quantize=recipe.get("operators_to_quantize"))


def quantize(export_folder: Path, out: Path, preset: str, recipe: dict) -> dict:
    """Dynamic int8 of the unfused export (quantizing a fused graph fails shape inference)."""
    from optimum.onnxruntime import ORTQuantizer

    counts = {}
    for name in (ENCODER, DECODER_MERGED):
        with outline(f"quantizing {name.removesuffix('.onnx')} ({preset})"):
            quantizer = ORTQuantizer.from_pretrained(export_folder, file_name=name)
            quantizer.quantize(quantization_config(preset, recipe), save_dir=out,
                               file_suffix="")
            counts[name] = integer_op_count(out / name)
            if counts[name] == 0:
                raise RuntimeError(f"quantizing {name} produced no integer operators")
        externalize(out / name, out / name)
    copy_side_files(export_folder, out)
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


# ---------------------------------------------------------------- loading

def session_options(threads: int, options: dict | None = None):
    """Same thread count as torch, and no spinning, so ORT threads cannot slow torch code."""
    import onnxruntime

    options = options or {}
    session = onnxruntime.SessionOptions()
    session.intra_op_num_threads = threads
    session.inter_op_num_threads = 1
    session.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # No arena: it keeps the largest activations ever seen; measured here on t5-small-random int8
    # at b8-s64, peak memory above baseline fell from 160 MB to 142 MB (latency: see README).
    session.enable_cpu_mem_arena = options.get("mem_arena", False)
    if not options.get("prepacking", True):
        # the kernels then pack weights per call: less memory, slower (results/README.md)
        session.add_session_config_entry("session.disable_prepacking", "1")
    spin = "1" if options.get("spinning", False) else "0"
    session.add_session_config_entry("session.intra_op.allow_spinning", spin)
    session.add_session_config_entry("session.inter_op.allow_spinning", spin)
    if "graph_optimization_level" in options:
        level = onnxruntime.GraphOptimizationLevel
        session.graph_optimization_level = {
            "disable": level.ORT_DISABLE_ALL, "basic": level.ORT_ENABLE_BASIC,
            "extended": level.ORT_ENABLE_EXTENDED,
            "all": level.ORT_ENABLE_ALL}[options["graph_optimization_level"]]
    return session


def load(folder: Path, threads: int, options: dict) -> Loaded:
    """Load an ONNX seq2seq folder (ours or one written by ``optimum-cli``).

    optimum picks the graphs (the merged decoder when present) unless the declaration names
    them; the files actually opened are read back from the sessions, so the size on disk counts
    exactly what was loaded.
    """
    import torch
    from optimum.onnxruntime import ORTModelForSeq2SeqLM

    torch.set_num_threads(threads)
    names = {key: options[f"{key}_file"] for key in ("encoder", "decoder", "decoder_with_past")
             if f"{key}_file" in options}
    model = ORTModelForSeq2SeqLM.from_pretrained(
        folder, use_cache=True, session_options=session_options(threads, options),
        provider="CPUExecutionProvider",
        **{f"{key}_file_name": name for key, name in names.items()})
    parts = [model.encoder, model.decoder, getattr(model, "decoder_with_past", None)]
    files = tuple(Path(part.path) for part in parts if part is not None)
    for path in files:
        for data in (path.with_name(path.name + "_data"), path.with_suffix(".onnx.data")):
            if data.is_file():
                files += (data,)
    return Loaded(HFGenerator(model), files)


def verify(loaded: Loaded, recipe: dict) -> str:
    """"" when what was loaded is what the recipe built, else what is wrong: a quantize recipe
    whose graphs hold no integer operator ran fp32 graphs (optimum prefers fp32 file names)."""
    if not recipe.get("quantize"):
        return ""
    integer_ops = sum(integer_op_count(f) for f in loaded.files if f.suffix == ".onnx")
    return "" if integer_ops else "loaded fp32 graphs: no integer operators"
