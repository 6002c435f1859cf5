"""Engine details that upstream changes could break: each fails loudly the day they do."""

import os
import subprocess
import sys

import numpy
import pytest
import torch

from perf_tests.harness.config import ROOT
from perf_tests.harness.engines import onnxruntime_beamsearch as beamsearch

pytestmark = pytest.mark.unit


def legacy_past(layers: int = 2):
    """Past key/values as ORT's T5 tools pass them: self K, V per layer, then cross K, V."""
    return [torch.zeros(1, 2, 3, 4) for _ in range(4 * layers)]


def test_ort_t5_export_still_needs_the_cache_patch():
    """ORT 1.32 gives transformers 4.57's T5 legacy tuples (it wraps them from 5.0 on). When this
    fails, upstream builds the cache object itself: remove
    ``onnxruntime_beamsearch.cache_objects_for_t5_export`` and this test."""
    from onnxruntime.transformers.models.t5 import t5_decoder

    grouped = t5_decoder.PastKeyValuesHelper.group_by_layer(legacy_past(), 2)
    assert isinstance(grouped, tuple), "upstream now returns a cache object: drop the patch"


def test_the_patch_gives_a_cache_and_is_undone():
    from onnxruntime.transformers.models.t5 import t5_decoder
    from transformers.cache_utils import EncoderDecoderCache

    helper = t5_decoder.PastKeyValuesHelper
    original = helper.__dict__["group_by_layer"]
    with beamsearch.cache_objects_for_t5_export():
        assert isinstance(helper.group_by_layer(legacy_past(), 2), EncoderDecoderCache)
    assert helper.__dict__["group_by_layer"] is original


def quantized_tied_model(path, vocab=40, width=8, head_weights="u8-symmetric"):
    """A graph shaped like a quantized T5 subgraph: a uint8 embedding table read by Gather and
    dequantized, and the LM head's transposed table in a MatMulInteger (uint8 with the same
    scale and zero point, or symmetric int8 as ORT's quantizer writes s8 weights). Returns the
    fp32 table both quantize."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy.random.default_rng(0).integers(0, 256, (vocab, width), dtype=numpy.uint8)
    scale, zero = numpy.array(0.04, numpy.float32), numpy.array(128, numpy.uint8)
    weights = (table.astype(numpy.float32) - 128) * scale
    head, head_scale, head_zero = table.T.copy(), scale, zero
    if head_weights == "s8":
        head_scale = numpy.array(numpy.abs(weights).max() / 127, numpy.float32)
        head = numpy.round(weights.T / head_scale).astype(numpy.int8)
        head_zero = numpy.array(0, numpy.int8)
    tensors = [numpy_helper.from_array(table, "emb_quantized"),
               numpy_helper.from_array(scale, "emb_scale"),
               numpy_helper.from_array(zero, "emb_zero_point"),
               numpy_helper.from_array(head, "head_quantized"),
               numpy_helper.from_array(head_scale, "head_scale"),
               numpy_helper.from_array(head_zero, "head_zero_point"),
               numpy_helper.from_array(numpy.full((1, 1, width), 130, numpy.uint8), "act")]
    nodes = [helper.make_node("Gather", ["emb_quantized", "ids"], ["picked"]),
             helper.make_node("DequantizeLinear", ["picked", "emb_scale", "emb_zero_point"],
                              ["embedded"]),
             helper.make_node("MatMulInteger", ["act", "head_quantized", "", "head_zero_point"],
                              ["logits"])]
    graph = helper.make_graph(
        nodes, "tied", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
        [helper.make_tensor_value_info("embedded", TensorProto.FLOAT, [1, 3, width]),
         helper.make_tensor_value_info("logits", TensorProto.INT32, [1, 1, vocab])], tensors)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return weights


def run(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"ids": numpy.array([[3, 0, 39]], numpy.int64)})


def test_embedding_read_from_the_lm_head_table_is_lossless(tmp_path):
    import onnx

    path = tmp_path / "tied.onnx"
    quantized_tied_model(path)
    before = run(path)
    assert beamsearch.share_embedding(path) == "lossless"
    after = run(path)
    assert all(numpy.array_equal(a, b) for a, b in zip(before, after))
    names = {t.name for t in onnx.load(str(path)).graph.initializer}
    assert "emb_quantized" not in names and beamsearch.SHARED_TABLE in names


def test_embedding_left_alone_when_the_scales_differ(tmp_path):
    import onnx
    from onnx import numpy_helper

    path = tmp_path / "tied.onnx"
    quantized_tied_model(path)
    model = onnx.load(str(path))
    scale = next(t for t in model.graph.initializer if t.name == "head_scale")
    scale.CopyFrom(numpy_helper.from_array(numpy.array(0.05, numpy.float32), "head_scale"))
    onnx.save(model, str(path))
    assert not beamsearch.share_embedding(path)


def test_embedding_read_from_a_symmetric_int8_head_stays_within_half_its_scale(tmp_path):
    """s8 weights: the Gather table is uint8 asymmetric, the head int8 symmetric; the embedding
    is then the head's rounding of the same table, as close to fp32 as the head is."""
    import onnx
    from onnx import numpy_helper

    path = tmp_path / "tied.onnx"
    weights = quantized_tied_model(path, head_weights="s8")
    head_scale = numpy_helper.to_array(
        next(t for t in onnx.load(str(path)).graph.initializer if t.name == "head_scale"))
    logits = run(path)[1]
    assert beamsearch.share_embedding(path) == "requantized"
    embedded, logits_after = run(path)
    expected = weights[[3, 0, 39]][None]
    assert numpy.abs(embedded - expected).max() <= head_scale / 2 + 1e-6
    assert numpy.array_equal(logits, logits_after), "the LM head itself must not change"
    assert not any(t.name.startswith("emb_") for t in onnx.load(str(path)).graph.initializer)


def test_untied_embedding_is_left_alone(tmp_path):
    """T5 v1.1 and mT5 do not tie the LM head to the embedding: the tables differ."""
    path = tmp_path / "untied.onnx"
    quantized_tied_model(path)
    assert beamsearch.share_embedding(path, tied=False) == ""


@pytest.mark.parametrize("quantize, preset, weights", [
    ("preset", "avx512_vnni", "s8"), ("preset", "avx2", "u8-symmetric"),
    ("preset", "avx512", "u8-symmetric"), ("preset", "arm64", "u8-symmetric"),
    ("s8", "avx2", "s8"), (None, "avx2", None)])
def test_preset_weights_are_s8_only_where_vnni_multiplies_without_saturating(quantize, preset,
                                                                            weights):
    assert beamsearch.weights_for(quantize, preset) == weights


@pytest.mark.parametrize("model_type, graph", [("t5", True), ("mt5", True),
                                                ("bart", False), ("marian", False)])
def test_beamsearch_graph_for_t5_only_and_a_fallback_for_the_rest(model_type, graph):
    """BART and Marian are not skipped: they fall back to what works for them (built and
    loaded in perf_tests/integration/test_other_models.py)."""
    assert (beamsearch.beam_search_problem(model_type) == "") is graph
    assert beamsearch.unsupported(model_type) == ""
    # the fallback starts from optimum's cached export, shared with the other ONNX recipes
    assert beamsearch.source_for(model_type) == ("model" if graph else "export")


def test_beamsearch_rows_get_their_end_token_back():
    """ORT leaves the end of sequence out; a row cut by the cap must stay without one."""
    from types import SimpleNamespace

    generator = beamsearch.BeamSearchGenerator.__new__(beamsearch.BeamSearchGenerator)
    generator.tokenizer = SimpleNamespace(pad_token_id=0, eos_token_id=1)
    rows = numpy.array([[0, 5, 6, 0, 0], [0, 7, 8, 9, 4]])  # ended after 2; cut at the cap
    assert generator._with_end_tokens(rows, 5).tolist() == [[0, 5, 6, 1, 0], [0, 7, 8, 9, 4]]
    short = numpy.array([[0, 5, 6], [0, 7, 0]])  # every row ended before a cap of 5
    assert generator._with_end_tokens(short, 5).tolist() == [[0, 5, 6, 1], [0, 7, 1, 0]]


@pytest.mark.parametrize("options, disabled", [({}, ""), ({"prepacking": True}, ""),
                                               ({"prepacking": False}, "1")])
def test_prepacking_is_a_load_option_of_both_onnx_engines(options, disabled):
    from perf_tests.harness.engines import onnxruntime

    session = onnxruntime.session_options(2, options)
    try:
        found = session.get_session_config_entry("session.disable_prepacking")
    except RuntimeError:  # ORT raises for a key never set
        found = ""
    assert found == disabled
    assert "prepacking" in beamsearch.LOAD and "prepacking" in onnxruntime.LOAD


def _openmp_of_ctranslate2(tmp_path, code: str) -> set[str]:
    """The libgomp files that CTranslate2's library binds its OpenMP calls to, as glibc's dynamic
    linker reports them (LD_DEBUG=bindings), in a fresh process running ``code``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(tmp_path / "ld")}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    found = set()
    for log in tmp_path.glob("ld.*"):
        for line in log.read_text(errors="replace").splitlines():
            if "libctranslate2" in line.split(" to ")[0] and "`GOMP_parallel'" in line:
                found.add(line.split(" to ")[1].split()[0].rsplit("/", 2)[-2])
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="reads glibc's LD_DEBUG")
def test_ctranslate2_keeps_its_own_openmp_runtime_when_prepared_before_torch(tmp_path):
    """Imported after torch, CTranslate2 binds torch's libgomp and PyTorch's rounds interleaved
    with it run twice as slow (engines.ctranslate2.before_torch); the gate prepares its
    process first. The folder each binding lands in says whose runtime it is."""
    pytest.importorskip("ctranslate2")
    prepared = ("from perf_tests.harness import engines; "
                "assert not engines.prepare_process({'ctranslate2'}); import torch")
    assert _openmp_of_ctranslate2(tmp_path / "prepared", prepared) == {"ctranslate2.libs"}
    late = "import torch, ctranslate2"  # the order that slowed PyTorch: the test can fail
    assert _openmp_of_ctranslate2(tmp_path / "late", late) == {"lib"}  # torch/lib/libgomp.so.1


def test_a_late_ctranslate2_is_one_note_for_the_header():
    code = ("import torch; from perf_tests.harness import engines; "
            "print(engines.prepare_process({'ctranslate2'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert "torch was imported before ctranslate2" in done.stdout


def test_nothing_imports_torch_before_the_gate_prepares_its_process(tmp_path):
    """pytest's own start (its configuration, warning filters that name a class, other plugins)
    must leave torch unimported until the plugin has run engines.prepare_process; the header
    says so when it could not (a warning filter naming torch.jit.TracerWarning did this)."""
    # the gate's folder only: the header is written before any test module is collected
    done = subprocess.run([sys.executable, "-m", "pytest", "perf_tests/gate", "--collect-only",
                           "-p", "no:cacheprovider", f"--perf-results-dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert "perf-gate: arch" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "NOTE torch was imported before" not in done.stdout


def test_torch_int8_decodes_with_the_models_own_generation_settings(tmp_path):
    """pytorch-fp32 reads generation_config.json with from_pretrained; torch-int8 builds its
    module tree from the config alone, and decoded with transformers' defaults instead (a
    model's no_repeat_ngram_size was honoured by one and not the other)."""
    import json
    import shutil

    from perf_tests.harness.engines import pytorch
    from perf_tests.harness.models import TINY_DIR

    source = tmp_path / "model"
    shutil.copytree(TINY_DIR, source)
    settings = json.loads((source / "generation_config.json").read_text())
    (source / "generation_config.json").write_text(json.dumps(
        {**settings, "no_repeat_ngram_size": 2, "length_penalty": 0.6}))
    built = tmp_path / "torch-int8"
    built.mkdir()
    pytorch.build(source, built, {"quantize": "dynamic-int8"}, "avx2")
    fp32, int8 = (pytorch.load(folder, 1, {}).generator.model.generation_config
                  for folder in (source, built))
    assert (int8.no_repeat_ngram_size, int8.length_penalty) == (2, 0.6)
    assert (fp32.no_repeat_ngram_size, fp32.length_penalty) == (2, 0.6)


def test_embedding_left_alone_when_the_head_is_quantized_per_channel(tmp_path):
    """s8 weights with per_channel = true (the avx512_vnni preset's, declared): the head's scale
    has a value per vocabulary column, so its table cannot stand in for the embedding."""
    import onnx
    from onnx import numpy_helper

    path = tmp_path / "tied.onnx"
    quantized_tied_model(path, vocab=40, head_weights="s8")
    model = onnx.load(str(path))
    for name, values in (("head_scale", numpy.full(40, 0.01, numpy.float32)),
                         ("head_zero_point", numpy.zeros(40, numpy.int8))):
        tensor = next(t for t in model.graph.initializer if t.name == name)
        tensor.CopyFrom(numpy_helper.from_array(values, name))
    onnx.save(model, str(path))
    assert beamsearch.share_embedding(path) == ""
    assert "emb_quantized" in {t.name for t in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("model_type, reason", [
    ("t5", ""), ("bart", ""), ("marian", ""),
    ("fsmt", "optimum cannot export fsmt models to ONNX"),
])
def test_a_model_type_optimum_cannot_export_is_a_skip_of_every_onnx_variant(model_type, reason):
    """FSMT (facebook/wmt19-*) loads in transformers but has no ONNX export: its export raised
    in each ONNX variant's test instead of a skip with the reason."""
    from perf_tests.harness.engines import onnxruntime

    assert onnxruntime.unsupported(model_type) == reason
    assert beamsearch.unsupported(model_type) == reason


def test_a_model_type_optimum_exports_without_the_seq2seq_task_is_a_skip(monkeypatch):
    """optimum lists the tasks it exports per model type; the ONNX variants need
    text2text-generation-with-past, not only some export of the type."""
    from optimum.exporters.tasks import TasksManager

    from perf_tests.harness.engines import onnxruntime

    monkeypatch.setattr(TasksManager, "get_supported_tasks_for_model_type",
                        lambda *_, **__: {"feature-extraction": None})
    assert onnxruntime.unsupported("bart") == ("optimum cannot export bart models to ONNX for "
                                               "text2text-generation-with-past")
    assert onnxruntime.unsupported("t5") == ""  # answered without asking optimum
