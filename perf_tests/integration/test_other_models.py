"""Not only T5: local BART and Marian folders, and a folder written by optimum-cli, all load."""

import pytest
import torch

from perf_tests.harness import models, variants, workloads
from perf_tests.harness.cache import ArtifactCache
from perf_tests.harness.config import Shape, build_config
from perf_tests.harness.cpu import detect
from perf_tests.harness.declared import VariantSpec
from perf_tests.harness.engines import onnxruntime, onnxruntime_beamsearch
from perf_tests.harness.pool import VariantPool
from perf_tests.unit.test_models import tiny_seq2seq_folder

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("model_type", ["bart", "marian"])
def test_local_folder_is_a_model_under_test(tmp_path, model_type, monkeypatch):
    folder = tiny_seq2seq_folder(tmp_path / model_type, model_type)
    exports, export = [], onnxruntime.export
    monkeypatch.setattr(onnxruntime, "export",
                        lambda model, out: exports.append(model.name) or export(model, out))
    config = build_config({"model": str(folder), "cache_dir": str(tmp_path / "cache"),
                           "results_dir": str(tmp_path / "results"), "threads": "1"}, detect())
    spec = models.resolve(str(folder))
    pool = VariantPool(config, ArtifactCache(config.cache_dir), {"perf": spec, "quality": spec})
    inputs = workloads.latency_inputs(pool.tokenizer("perf"), spec.prefix, Shape(2, 12))
    settings = workloads.latency_settings(6)
    outputs = {v: pool.engine(v, "perf").generate(inputs, **settings)
               for v in ("pytorch-fp32", "onnx-fp32", "onnx-int8", "onnx-int8-tuned")}
    assert all(out.shape == (2, 7) for out in outputs.values()), {k: o.shape for k, o in outputs.items()}
    assert torch.equal(outputs["pytorch-fp32"], outputs["onnx-fp32"])
    # the BeamSearch tools build T5 only: the tuned recipe falls back and says so
    built = pool.built("onnx-int8-tuned")
    assert f"not {model_type}" in built["fallback"], built
    weights = onnxruntime_beamsearch.weights_for("preset", config.preset)  # this CPU's
    preset = onnxruntime_beamsearch.FALLBACK_PRESETS[weights]
    assert built["levers"][0].startswith(f"int8 weights ({weights} as optimum's {preset} preset")
    assert pool.skip_reason("onnx-int8-tuned") == ""
    assert exports == [folder.name], exports  # the fallback reused the ONNX recipes' export
    hypotheses = workloads.translate(pool.engine("onnx-fp32", "quality"), pool.tokenizer("quality"),
                                     spec, ["The cat sees the car.", "Where are my keys?"])
    assert len(hypotheses) == 2


def test_optimum_cli_export_loads_as_onnx_fp32(cli_export):
    engine = variants.load(VariantSpec("cli", "onnxruntime", folder=cli_export), cli_export,
                           threads=1)
    assert {p.name for p in engine.loaded_files} == {onnxruntime.ENCODER,
                                                      onnxruntime.DECODER_MERGED}
    reference = variants.load(VariantSpec("pytorch-fp32", "pytorch"), models.TINY_DIR, threads=1)
    spec = models.resolve("t5-tiny-enfr")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models.TINY_DIR)
    sentences = ["The small cat sees the red car.", "There are three dogs near the station."]
    assert (workloads.translate(engine, tokenizer, spec, sentences)
            == workloads.translate(reference, tokenizer, spec, sentences))
