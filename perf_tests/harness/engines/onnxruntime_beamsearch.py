"""The whole decode inside ONNX Runtime: one graph around ORT's BeamSearch contrib operator.

optimum's ONNX path runs one ONNX Runtime call per new token from Hugging Face ``generate()``
in Python; here the loop over tokens is the BeamSearch operator's own (C++), with the encoder
and decoder as its subgraphs. ``num_beams`` is an input of the graph, so one artifact serves
the latency workload (one beam: exact greedy) and the quality one (the model's beams).

Built with ONNX Runtime's own T5 tools, unoptimized (the T5 fusion adds RelativePositionBias,
which has no CPU kernel): ``models.t5.convert_to_onnx`` exports the encoder (with the decoder's
first step) and the decoder, ``quantization.quantize_dynamic`` makes each int8, and
``convert_generation`` combines them (the shared input embedding moves to the main graph, stored
once for encoder and decoder). Those tools build T5 and mT5 only: for another model type (BART,
Marian) the recipe falls back to what works there, optimum's export quantized with the same
weights and decoded by ``generate()`` (see ``_fallback``); artifact.json and the report say which
levers each artifact uses, and why one was left out.

Recipe options: ``quantize`` ("preset": this CPU's, see ``weights_for``; "u8-symmetric": uint8
weights with a zero point of 128, the same weights as optimum's avx2 preset; "s8": symmetric
int8 weights; none: fp32), ``per_channel`` and
``share_embedding`` (see ``share_embedding``).
Research behind it: ../shared/research/beamsearch-trial.md (the trial that first ran it here).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from perf_tests.harness.engines import Loaded, Option, import_problem
from perf_tests.harness.engines import onnxruntime as optimum_path
from perf_tests.harness.engines._hf import copy_side_files, has_tokenizer, tracing

NAME = "onnxruntime-beamsearch"
BUILD_VERSION = 4  # part of the artifact key: bump when build() writes something else
SOURCE = "model"
GRAPH = "model_beamsearch.onnx"
MODEL_TYPES = ("t5", "mt5")
RECIPE = {
    "quantize": Option(str, "int8 weights of both subgraphs: this CPU's (see weights_for) or "
                            "named", ("preset", "u8-symmetric", "s8")),
    "per_channel": Option(bool, "int8 scales per output channel instead of per tensor",
                          requires="quantize"),
    "share_embedding": Option(bool, "read the input embedding from the LM head's int8 table "
                                    "(default true; needs symmetric per-tensor weights)",
                              requires="quantize"),
    "external_data": Option(bool, "weights in a file beside the graph, memory-mapped (default "
                                  "true)"),
}
LOAD = {
    "prepacking": Option(bool, "ONNX Runtime's prepacked copies of the int8 weights (default "
                               "true; off: less memory, slower at batch 1)"),
}


def unavailable() -> str:
    return import_problem("onnxruntime.transformers.convert_generation")


def unsupported(model_type: str) -> str:
    """The BeamSearch graph is built for T5 and mT5; any other type falls back to optimum's
    export, which must then take it."""
    return optimum_path.unsupported(model_type) if beam_search_problem(model_type) else ""


def beam_search_problem(model_type: str) -> str:
    """Why the BeamSearch graph cannot be built for this model type ("" when it can)."""
    if model_type not in MODEL_TYPES:
        return (f"ONNX Runtime's BeamSearch tools build T5 and mT5 graphs only, not "
                f"{model_type}")
    return ""


def source_for(model_type: str) -> str:
    """The fallback of a model the BeamSearch tools do not build starts from optimum's export,
    the cached intermediate every ONNX recipe of that model shares."""
    return "export" if beam_search_problem(model_type) else SOURCE


def holds_model(folder: Path) -> str:
    folder = Path(folder)
    if not (folder / GRAPH).is_file() and optimum_path.holds_model(folder):
        return (f"{folder} holds no {GRAPH} (a BeamSearch graph built by convert_generation) "
                f"and no optimum export")
    if not has_tokenizer(folder):
        return f"{folder} holds no tokenizer files"
    return ""


def import_libraries() -> None:
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401
    from transformers import AutoTokenizer  # noqa: F401


# ---------------------------------------------------------------- building

@contextlib.contextmanager
def cache_objects_for_t5_export():
    """The one run-time patch this engine needs, undone on exit.

    ORT 1.32's ``PastKeyValuesHelper.group_by_layer`` builds transformers' ``EncoderDecoderCache``
    only for transformers >= 5.0 and gives 4.57 legacy tuples, which 4.57's T5 no longer takes
    ("'tuple' object has no attribute 'get_seq_length'" while exporting the decoder). The patch
    wraps the tuples in the cache object. ``perf_tests/unit/test_engines.py`` fails the day
    upstream returns a cache object itself, so the patch can go.
    """
    from onnxruntime.transformers.models.t5 import t5_decoder
    from transformers.cache_utils import EncoderDecoderCache

    helper = t5_decoder.PastKeyValuesHelper  # the tools import it as a top-level module
    original = helper.__dict__["group_by_layer"]

    def group_by_layer(past, num_layers):
        layers = original.__func__(past, num_layers)
        if isinstance(layers, EncoderDecoderCache):
            return layers
        return EncoderDecoderCache.from_legacy_cache(layers)

    helper.group_by_layer = staticmethod(group_by_layer)
    try:
        yield
    finally:
        helper.group_by_layer = original


def _quantize(source: Path, target: Path, recipe: dict) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weights = QuantType.QUInt8 if recipe["quantize"] == "u8-symmetric" else QuantType.QInt8
    quantize_dynamic(str(source), str(target), per_channel=recipe.get("per_channel", False),
                     weight_type=weights, extra_options={"WeightSymmetric": True})


def uses_preset(recipe: dict) -> bool:
    return recipe.get("quantize") == "preset"


def weights_for(quantize: str | None, preset: str) -> str | None:
    """The weights a ``quantize`` value stands for on this CPU.

    "preset" picks s8 where the CPU has AVX-512 VNNI, which multiplies u8 activations by s8
    weights without saturating (0.69-0.86x of u8's latency at b8-s64 on this project's Zen 4 VM),
    and u8 symmetric elsewhere: AVX2's and AVX-512BW's u8 x s8 instruction (VPMADDUBSW) can
    saturate, which ONNX Runtime's quantization docs give as the cause of accuracy drops, and on
    the AVX2-only VM of the first trial s8 diverged more from fp32 greedy (11 of 20 sentences
    identical against 13 of 20 for u8).
    """
    if quantize != "preset":
        return quantize
    return "s8" if preset == "avx512_vnni" else "u8-symmetric"


SHARED_TABLE = "shared_lm_head_T_quantized"  # one name in both subgraphs: stored once


def _initializers(model) -> dict:
    return {tensor.name: tensor for tensor in model.graph.initializer}


def share_embedding(path: Path, tied: bool = True) -> str:
    """Read the input embedding from the LM head's int8 table, in place.

    Returns how: "lossless", "requantized", or "" when nothing was changed.

    T5 ties the input embedding and the LM head, but the export stores the table twice per
    subgraph: a [vocab, d_model] Gather table and the LM head's transposed [d_model, vocab]
    MatMulInteger weight. ``Gather(lm_head, ids, axis=1)`` transposed to [batch, seq, d_model]
    reads the same rows from the head's table, which is then given one name in both subgraphs,
    and ``convert_generation`` moves it to the main graph, stored once for both.

    - "lossless": with u8 symmetric weights both tables are quantized with the same scale and
      zero point, so the rows read are the very same int8 values (a unit test checks it).
    - "requantized": with s8 weights ORT's quantizer keeps the Gather table in uint8 with an
      asymmetric zero point while the head is symmetric int8, so the embedding is then read in
      the head's symmetric quantization of the same tied table: a different rounding of the same
      weights, off by at most half the head's scale per value, as the LM head itself is.
    Untied models (T5 v1.1, mT5: ``tie_word_embeddings`` false) are left alone.
    """
    import numpy
    import onnx
    from onnx import helper, numpy_helper

    if not tied:
        return ""
    model = onnx.load(str(path))
    tensors = _initializers(model)
    nodes = list(model.graph.node)
    heads = [n for n in nodes if n.op_type == "MatMulInteger" and n.input[1] in tensors
             and len(tensors[n.input[1]].dims) == 2]
    gathers = [n for n in nodes if n.op_type == "Gather" and n.input[0] in tensors
               and any(list(tensors[n.input[0]].dims) == list(reversed(tensors[h.input[1]].dims))
                       for h in heads)]
    heads = [h for h in heads if gathers and list(reversed(tensors[h.input[1]].dims))
             == list(tensors[gathers[0].input[0]].dims)]
    if not gathers or len(heads) != 1 or len({g.input[0] for g in gathers}) != 1:
        return ""
    table, head = gathers[0].input[0], heads[0].input[1]
    base_table, base_head = table.removesuffix("_quantized"), head.removesuffix("_quantized")

    def value(name):
        return numpy_helper.to_array(tensors[name])

    if (numpy.array_equal(value(f"{base_table}_scale"), value(f"{base_head}_scale"))
            and numpy.array_equal(value(f"{base_table}_zero_point"),
                                  value(f"{base_head}_zero_point"))):
        how = "lossless"
    elif (tensors[head].data_type == onnx.TensorProto.INT8
          and not value(f"{base_head}_zero_point").any()
          and value(f"{base_head}_scale").size == 1):
        # per tensor only: with per_channel the head's scale has one value per vocabulary
        # column, which a row read through the Gather cannot take (its DequantizeLinear
        # failed at run time, after the artifact was built and cached)
        how = "requantized"
    else:
        return ""
    for gather in gathers:
        position = list(model.graph.node).index(gather)
        picked = gather.output[0] + "_columns"
        model.graph.node.remove(gather)
        model.graph.node.insert(position, helper.make_node(
            "Transpose", [picked], [gather.output[0]], perm=[1, 2, 0]))
        model.graph.node.insert(position, helper.make_node(
            "Gather", [SHARED_TABLE, gather.input[1]], [picked], axis=1))
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = {head: SHARED_TABLE, f"{base_table}_scale": f"{base_head}_scale",
                                 f"{base_table}_zero_point": f"{base_head}_zero_point"
                                 }.get(name, name)
    for name in (table, f"{base_table}_scale", f"{base_table}_zero_point"):
        model.graph.initializer.remove(tensors[name])
    tensors[head].name = SHARED_TABLE
    onnx.save(model, str(path))
    return how


def build(source: Path, out: Path, recipe: dict, preset: str) -> dict:
    from onnxruntime.transformers import convert_generation
    from onnxruntime.transformers.models.t5 import convert_to_onnx

    from perf_tests.harness.progress import outline

    config = json.loads((Path(source) / "config.json").read_text())
    for_preset = f" for {preset}" if uses_preset(recipe) else ""
    recipe = {**recipe, "quantize": weights_for(recipe.get("quantize"), preset)}
    if beam_search_problem(config["model_type"]):  # source is then optimum's export
        return _fallback(source, out, recipe, beam_search_problem(config["model_type"]))
    work = out / ".work"
    with outline(f"exporting {Path(source).name}'s encoder and decoder with ORT's T5 tools"):
        with cache_objects_for_t5_export(), tracing():
            exported = convert_to_onnx.export_onnx_models(
                str(source), str(work / "hf"), str(work / "raw"), use_int32_inputs=True,
                optimize_onnx=False, overwrite=True, model_type="t5",
                encoder_decoder_init=True)
    parts = {("encoder" if "encoder" in Path(p).name else "decoder"): Path(p) for p in exported}
    shared = ""
    if recipe.get("quantize"):
        with outline(f"quantizing both subgraphs ({recipe['quantize']})"):
            for role, path in list(parts.items()):
                parts[role] = work / f"{role}_int8.onnx"
                _quantize(path, parts[role], recipe)
        if recipe.get("share_embedding", True):
            with outline("reading the input embedding from the LM head's int8 table"):
                tied = config.get("tie_word_embeddings", True)
                ways = {share_embedding(path, tied) for path in parts.values()}
                shared = ways.pop() if len(ways) == 1 else ""
    with outline("combining them into one BeamSearch graph"):
        # convert_generation_model, not main(): main() then opens the graph and decodes sample
        # sentences with it, work the gate does itself
        convert_generation.convert_generation_model(convert_generation.parse_arguments([
            "-m", str(source), "--model_type", "t5", "--cache_dir", str(work / "hf"),
            "--encoder_decoder_init_onnx", str(parts["encoder"]),
            "--decoder_onnx", str(parts["decoder"]), "--num_beams", "1", "--early_stopping",
            "--custom_attention_mask",
            "--output", str(out / GRAPH)]))
    shutil.rmtree(work)
    if recipe.get("external_data", True):
        optimum_path.externalize(out / GRAPH, out / GRAPH)
    copy_side_files(source, out)
    return {"graph": GRAPH, "levers": _levers(out / GRAPH, recipe, shared, for_preset)}


# the optimum preset whose weights match each ``quantize`` value (see the module docstring)
FALLBACK_PRESETS = {"u8-symmetric": "avx2", "s8": "avx512_vnni"}


def _fallback(export: Path, out: Path, recipe: dict, why: str) -> dict:
    """What works for a model the BeamSearch tools do not build: optimum's export (the cached
    one, see ``source_for``), quantized with the same int8 weights as the tuned graph, weights
    stored apart, decoded by ``generate()``. The levers left out are listed with the reason."""
    if recipe.get("quantize"):
        optimum_path.quantize(export, out, FALLBACK_PRESETS[recipe["quantize"]],
                              {"per_channel": recipe.get("per_channel", False)})
    else:
        optimum_path.fp32(export, out)
    levers = ["weights stored apart and memory-mapped"]
    if recipe.get("quantize"):
        levers.insert(0, f"int8 weights ({recipe['quantize']} as optimum's "
                         f"{FALLBACK_PRESETS[recipe['quantize']]} preset, "
                         f"{'per channel' if recipe.get('per_channel') else 'per tensor'})")
    return {"levers": levers, "fallback": f"{why}: decoded by transformers generate() over "
                                          f"optimum's sessions; not used: the decoding loop "
                                          f"inside ONNX Runtime, tables stored once, the input "
                                          f"embedding read from the LM head"}


def _levers(graph: Path, recipe: dict, shared: str, for_preset: str) -> list[str]:
    """What the built graph actually uses, read back where it can be (artifact.json, report)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    moved = [t.name for t in model.graph.initializer]  # tables both subgraphs share
    levers = ["decoding loop inside ONNX Runtime (BeamSearch op, one call per generate)"]
    if recipe.get("quantize"):
        levers.append(f"int8 weights ({recipe['quantize']}{for_preset}, "
                      f"{'per channel' if recipe.get('per_channel') else 'per tensor'})")
    if moved:
        levers.append(f"{len(moved)} tables stored once for encoder and decoder"
                      + (" (the LM head's among them)" if f"s_e_{SHARED_TABLE}" in moved else ""))
    if shared:
        levers.append(f"input embedding read from the LM head's int8 table ({shared})")
    return levers


# ---------------------------------------------------------------- loading

class BeamSearchGenerator:
    steps_reported = False  # the loop runs inside one ONNX Runtime call: no per-step clock

    def __init__(self, session, tokenizer):
        self.session, self.tokenizer = session, tokenizer
        # Built with --custom_attention_mask: without the tokenizer's mask the operator attends
        # to the padding of a batch (beam search on the tiny model: 115 of 120 translations as
        # at batch 1 when batched by 32, against 120 of 120 for transformers)
        self.takes_mask = any(i.name == "attention_mask" for i in session.get_inputs())

    def generate(self, inputs: dict, settings: dict, clock=None):
        import numpy
        import torch

        new_tokens = settings["max_new_tokens"]
        feeds = {
            "input_ids": inputs["input_ids"].numpy().astype(numpy.int32),
            # lengths count the decoder start token the sequences begin with
            "max_length": numpy.array([new_tokens + 1], dtype=numpy.int32),
            "min_length": numpy.array([settings.get("min_new_tokens", 0) + 1], dtype=numpy.int32),
            "num_beams": numpy.array([settings.get("num_beams", 1)], dtype=numpy.int32),
            "num_return_sequences": numpy.array([1], dtype=numpy.int32),
            "length_penalty": numpy.array([1.0], dtype=numpy.float32),
            "repetition_penalty": numpy.array([1.0], dtype=numpy.float32),
        }
        if self.takes_mask:
            feeds["attention_mask"] = inputs["attention_mask"].numpy().astype(numpy.int32)
        (sequences,) = self.session.run(["sequences"], feeds)
        return torch.from_numpy(self._with_end_tokens(sequences[:, 0, :], new_tokens + 1))

    def _with_end_tokens(self, rows, max_length: int):
        """The operator leaves the end of sequence out and pads after it; put it back where a
        row ended, as transformers returns it, so that a finished hypothesis can be told from
        one cut by the length cap (a row that fills ``max_length`` without padding)."""
        import numpy

        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        rows = rows.astype(numpy.int64)
        if rows.shape[1] < max_length:  # every row ended before the cap
            rows = numpy.pad(rows, ((0, 0), (0, 1)), constant_values=pad)
        for row in rows:
            padding = numpy.flatnonzero(row[1:] == pad)
            if padding.size:
                row[1 + padding[0]] = eos
        return rows

    def encode(self, inputs: dict) -> bool:
        return False  # the encoder is a subgraph of the one BeamSearch node



def load(folder: Path, threads: int, options: dict) -> Loaded:
    import onnxruntime
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not (folder / GRAPH).is_file():  # built by _fallback
        return optimum_path.load(folder, threads, options)
    session = onnxruntime.InferenceSession(
        str(folder / GRAPH), optimum_path.session_options(threads, options),
        providers=["CPUExecutionProvider"])
    generator = BeamSearchGenerator(session, AutoTokenizer.from_pretrained(folder))
    data = folder / (GRAPH + "_data")
    return Loaded(generator, (folder / GRAPH, *([data] if data.is_file() else [])))


# a quantize recipe must load integer operators (the BeamSearch subgraphs' are counted)
verify = optimum_path.verify
