"""Model resolution: every kind of name, and every way it can fail, in one line."""

import json
from pathlib import Path

import pytest

from perf_tests.harness import models
from perf_tests.harness.models import ModelError

pytestmark = pytest.mark.unit


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    return tmp_path


def tiny_seq2seq_folder(path, model_type):
    """A randomly initialised BART or Marian model, small enough to save in a blink."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    config = AutoConfig.for_model(
        model_type, vocab_size=700, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=128, pad_token_id=0, eos_token_id=1,
        bos_token_id=0, decoder_start_token_id=0, forced_eos_token_id=1)
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(models.TINY_DIR).save_pretrained(path)
    return path


def test_embedded_quality_model_reads_prefix_from_its_config():
    spec = models.resolve("t5-tiny-enfr")
    assert spec.kind == "embedded" and spec.model_type == "t5"
    assert spec.prefix == "translate English to French: " and spec.quality_beams == 4
    assert spec.folder == models.TINY_DIR


def test_embedded_model_read_without_transformers_is_the_one_transformers_checks():
    """The embedded model's config is read as plain JSON (a run that only collects imports no
    torch); the same folder given as a user's folder goes through transformers' check."""
    embedded, checked = models.resolve("t5-tiny-enfr"), models.resolve(str(models.TINY_DIR))
    assert checked.kind == "folder"
    fields = ("model_type", "prefix", "source_lang", "target_lang", "quality_beams",
              "fingerprint", "parameters")  # the length cap is the embedded kind's own
    assert [getattr(embedded, f) for f in fields] == [getattr(checked, f) for f in fields]


def test_scale_model_resolves_without_building():
    spec = models.resolve("t5-small-random")
    assert spec.folder is None and spec.fingerprint == models.resolve("t5-small-random").fingerprint


@pytest.mark.parametrize("model_type", ["bart", "marian"])
def test_local_bart_or_marian_folder(tmp_path, model_type):
    spec = models.resolve(str(tiny_seq2seq_folder(tmp_path / model_type, model_type)))
    assert spec.kind == "folder" and spec.model_type == model_type
    assert spec.prefix == ""  # no T5 prefix forced on other models


def test_folder_that_is_not_seq2seq(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="holds a 'bert' model, which is not a seq2seq"):
        models.resolve(str(tmp_path))


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelError, match="has no config.json"):
        models.resolve(str(tmp_path))


def safetensors_header(header: dict) -> bytes:
    body = json.dumps(header).encode()
    return len(body).to_bytes(8, "little") + body


@pytest.mark.parametrize("files, problem", [
    ({"config.json": "[]"}, r"config.json in .* cannot be read \(list indices must be integers"),
    ({"config.json": json.dumps({"model_type": "t5", "task_specific_params": [1]})},
     r"a setting in .* cannot be read \(AttributeError: 'list' object has no attribute 'get'\)"),
    ({"generation_config.json": "{"}, r"a setting in .* cannot be read \(JSONDecodeError: "),
    ({"generation_config.json": json.dumps({"num_beams": "four"})},
     r"a setting in .* cannot be read \(ValueError: invalid literal for int\(\) .* 'four'\)"),
    ({"config.json": json.dumps({"model_type": "bart", "max_position_embeddings": "x"})},
     r"a setting in .* cannot be read \(ValueError: invalid literal"),
    ({"model.safetensors": safetensors_header({"weight": {"dtype": "F32"}})},
     r"a setting in .* cannot be read \(KeyError: 'shape'\): check its config.json, "
     r"generation_config.json and \*.safetensors"),
])
def test_a_folder_whose_settings_are_of_other_types_is_one_line(tmp_path, files, problem):
    """A setting of another type than transformers writes, or a damaged file beside the
    config, is one line naming the folder, not a traceback."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    for name, content in files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(tmp_path / name, mode) as handle:
            handle.write(content)
    with pytest.raises(ModelError, match=f"model {tmp_path}: {problem}") as error:
        models.resolve(str(tmp_path))
    assert "\n" not in str(error.value)


def test_a_path_this_system_cannot_open_is_one_line():
    with pytest.raises(ModelError, match="model ~no-such-user-here/m: Could not determine home "
                                         "directory; pass a path this system can open"):
        models.resolve("~no-such-user-here/m")


def test_missing_folder():
    with pytest.raises(ModelError, match="no such folder"):
        models.resolve("./no/such/model")


def test_hub_id_offline_with_empty_cache(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as error:
        models.resolve("t5-small")
    message = str(error.value)
    assert message.startswith("model t5-small is not in the Hugging Face cache") and "\n" not in message


def test_hub_id_without_network(empty_hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ModelError, match="cannot be downloaded .* no network to the hub"):
        models.resolve("t5-small")


def test_parameters_are_read_from_the_weights_headers(tmp_path):
    """Size classes of the limits file are chosen by this count; no tensor is loaded for it."""
    trained = json.loads((models.TINY_DIR / "training.json").read_text())["parameters"]
    assert models.count_parameters(models.TINY_DIR) == trained
    assert models.resolve("t5-tiny-enfr").parameters == trained
    assert models.count_parameters(tmp_path) == 0


def test_scale_model_parameter_count_matches_its_shape():
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from fixtures.models import scale

    with torch.device("meta"):
        model = T5ForConditionalGeneration(T5Config(**scale.T5_SMALL_SHAPE))
    assert sum(p.numel() for p in model.parameters()) == scale.PARAMETERS
    assert models.resolve("t5-small-random").parameters == scale.PARAMETERS


@pytest.mark.parametrize("left_out, problem", [
    (("tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"),
     "lacks a tokenizer (tokenizer.json, spiece.model, vocab.json or source.spm: save it "
     "beside the model with tokenizer.save_pretrained)"),
    (("model.safetensors",), "lacks weights (model.safetensors, pytorch_model.bin, or either "
                             "one's *.index.json with every shard it lists)"),
])
def test_a_folder_without_weights_or_a_tokenizer_is_one_line_before_anything_is_built(
        tmp_path, left_out, problem):
    """Such a folder passed, every variant was built from it, then every test failed with a
    traceback (the tokenizer's, or transformers')."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(models.TINY_DIR, folder,
                    ignore=lambda _, names: [n for n in names if n in left_out])
    with pytest.raises(ModelError, match=f"model {folder}: {folder} ") as error:
        models.resolve(str(folder))
    assert str(error.value).endswith(problem)


def test_the_weights_are_the_files_transformers_loads(tmp_path):
    """A git clone of a hub model holds model.safetensors and pytorch_model.bin, of which
    transformers loads one; a sharded checkpoint is its index's shards."""
    from perf_tests.harness.engines import pytorch

    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        (tmp_path / name).write_text("{}")
    assert pytorch.weight_files(tmp_path) == (tmp_path / "model.safetensors",)
    (tmp_path / "model.safetensors").unlink()
    assert pytorch.weight_files(tmp_path) == (tmp_path / "pytorch_model.bin",)
    (tmp_path / "pytorch_model.bin").unlink()
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": shards[0], "b": shards[1], "c": shards[1]}}))
    assert pytorch.weight_files(tmp_path) == () and pytorch.holds_model(tmp_path)
    for shard in shards:
        (tmp_path / shard).write_text("{}")
    assert pytorch.weight_files(tmp_path) == tuple(tmp_path / shard for shard in shards)
    assert pytorch.holds_model(tmp_path) == ""


@pytest.mark.parametrize("params, problem", [
    ({"prefix": 5}, "the prefix 5 is not text"),
    ({"num_beams": -3}, "num_beams -3 is below 1"),
    ({"num_beams": 0}, "num_beams 0 is below 1"),  # was taken for the default 4
    ({"num_beams": True}, "num_beams True is not a whole number"),
    ({"num_beams": 2.5}, "num_beams 2.5 is not a whole number"),
])
def test_a_models_prefix_and_beams_are_checked_where_they_are_read(tmp_path, params, problem):
    """A prefix that is not text, or a beam count below 1, passed and failed mid-run (where the
    prefix is joined to each sentence, or in generate())."""
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "t5", "task_specific_params": {"translation_en_to_fr": params}}))
    with pytest.raises(ModelError, match=f"model {tmp_path}: a setting in .* cannot be read "
                                         rf"\((TypeError|ValueError): {problem}\)"):
        models.resolve(str(tmp_path))


def test_a_null_prefix_is_no_prefix(tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(models.TINY_DIR, folder)
    config = json.loads((folder / "config.json").read_text())
    config["task_specific_params"] = {"translation_en_to_fr": {"prefix": None, "num_beams": 2}}
    (folder / "config.json").write_text(json.dumps(config))
    spec = models.resolve(str(folder))
    assert (spec.prefix, spec.quality_beams) == ("", 2)


def test_an_fsmt_folder_has_its_tokenizer_in_its_own_files(tmp_path):
    """FSMT (facebook/wmt19-*) saves vocab-src.json, vocab-tgt.json and merges.txt, none of
    which the tokenizer check knew: a complete folder was refused as lacking a tokenizer."""
    from transformers import FSMTConfig

    FSMTConfig().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(safetensors_header({}))
    for name in ("vocab-src.json", "vocab-tgt.json", "merges.txt"):
        (tmp_path / name).write_text("{}")
    assert models.resolve(str(tmp_path)).model_type == "fsmt"


def hub_snapshot(cache, model_id: str, files: dict) -> Path:
    """A snapshot of ``model_id`` in a Hugging Face cache, laid out as huggingface_hub writes."""
    repo = cache / "hub" / f"models--{model_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())
    return snapshot


def test_a_hub_snapshot_without_weights_is_one_line_offline(empty_hub_cache, monkeypatch):
    """A config and a tokenizer fetched alone (AutoTokenizer.from_pretrained does that) made a
    snapshot the gate took for the model; it built every variant, then failed every test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny = models.TINY_DIR
    hub_snapshot(empty_hub_cache / "hf-home", "t5-small",
                 {name: tiny / name for name in ("config.json", "tokenizer.json",
                                                 "tokenizer_config.json")})
    with pytest.raises(ModelError) as error:
        models.resolve("t5-small")
    assert str(error.value).startswith("model t5-small is in the Hugging Face cache without "
                                       "weights and HF_HUB_OFFLINE is set: download it once")


def test_a_hub_snapshot_without_weights_is_completed_online(empty_hub_cache, monkeypatch):
    """The rest is downloaded, the PyTorch .bin where the repository has no safetensors."""
    import fnmatch

    tiny = models.TINY_DIR
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    partial = hub_snapshot(empty_hub_cache / "hf-home", "t5-small",
                           {name: tiny / name for name in ("config.json", "tokenizer.json")})
    on_the_hub = {"config.json": tiny / "config.json", "tokenizer.json": tiny / "tokenizer.json",
                  "pytorch_model.bin": tiny / "spiece.model", "flax_model.msgpack": tiny / "x"}
    asked = []

    def snapshot_download(model_id, allow_patterns, local_files_only=False, **_):
        asked.append(allow_patterns)
        if not local_files_only:
            for name, source in on_the_hub.items():
                if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                    (partial / name).write_bytes(source.read_bytes())
        return str(partial)

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    spec = models.resolve("t5-small")
    assert spec.kind == "hub" and spec.folder == partial
    assert sorted(p.name for p in partial.iterdir()) == ["config.json", "pytorch_model.bin",
                                                         "tokenizer.json"]
    assert len(asked) == 3 and "pytorch_model*.bin" in asked[-1]


def test_a_hub_snapshot_still_without_weights_after_a_download_is_one_line(empty_hub_cache,
                                                                           monkeypatch):
    """huggingface_hub answers from the cache where the hub cannot be reached: the snapshot is
    then as incomplete as before, which is said, not passed on."""
    tiny = models.TINY_DIR
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    partial = hub_snapshot(empty_hub_cache / "hf-home", "t5-small",
                           {name: tiny / name for name in ("config.json", "tokenizer.json")})
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *_, **__: str(partial))
    with pytest.raises(ModelError, match=f"model t5-small: its snapshot {partial} lacks weights "
                                         r"after a download \(no network to the hub, or the "
                                         "repository has none\\): download it once"):
        models.resolve("t5-small")
