"""The variants file: every declaration checked before anything is built, one line per mistake."""

from pathlib import Path

import pytest

from perf_tests.harness import declared
from perf_tests.harness.config import BASELINE, VARIANTS_FILE, ConfigError
from perf_tests.harness.engines import ENGINES, Option

pytestmark = pytest.mark.unit

BASE = '[pytorch-fp32]\nengine = "pytorch"\n\n'


def read(tmp_path: Path, text: str, with_baseline: bool = True):
    path = tmp_path / "variants.toml"
    path.write_text((BASE if with_baseline else "") + text)
    return declared.read(path, BASELINE)


def test_shipped_file_declares_the_variants_with_their_engines():
    specs = declared.read(VARIANTS_FILE, BASELINE)
    assert {name: spec.engine for name, spec in specs.items()} == {
        "pytorch-fp32": "pytorch", "onnx-fp32": "onnxruntime", "onnx-o3": "onnxruntime",
        "onnx-int8": "onnxruntime", "ct2-int8": "ctranslate2", "torch-int8": "pytorch",
        "onnx-int8-tuned": "onnxruntime-beamsearch"}
    assert specs["onnx-int8"].uses_preset and not specs["onnx-o3"].uses_preset
    assert specs["onnx-o3"].recipe == {"optimize": "O3"}


def test_engines_are_found_by_module():
    assert set(ENGINES) == {"pytorch", "onnxruntime", "ctranslate2", "onnxruntime-beamsearch"}
    for engine in ENGINES.values():
        for name in ("RECIPE", "LOAD", "SOURCE", "unavailable", "unsupported", "holds_model",
                     "import_libraries", "uses_preset", "builds", "build", "load", "verify"):
            assert hasattr(engine, name), (engine.NAME, name)


def test_a_teams_recipe_and_folder(tmp_path):
    folder = tmp_path / "built"
    folder.mkdir()
    for name in ("encoder_model_quantized.onnx", "decoder_model_merged_quantized.onnx",
                 "config.json"):
        (folder / name).write_text("x")
    specs = read(tmp_path, '[mine]\nengine = "onnxruntime"\nrecipe = { quantize = "avx2", '
                           'per_channel = true, nodes_to_exclude = ["/lm_head/MatMul"] }\n'
                           '[theirs]\nengine = "onnxruntime"\nfolder = "built"\ndefault = false\n'
                           'load = { encoder_file = "encoder_model_quantized.onnx" }\n')
    assert specs["mine"].recipe["per_channel"] is True and specs["mine"].folder is None
    assert specs["theirs"].folder == folder and specs["theirs"].default is False
    assert not specs["theirs"].uses_preset
    assert declared.VariantSpec.from_dict(specs["theirs"].as_dict()) == specs["theirs"]


@pytest.mark.parametrize("text, message", [
    ('[x]\nengine = "tensorrt"\n', r"\[x\].engine: unknown engine 'tensorrt': choose from "
                                    "ctranslate2, onnxruntime, onnxruntime-beamsearch, pytorch"),
    ("[x]\nrecipe = {}\n", r"\[x\].engine: unknown engine None"),
    ('[x]\nengine = "onnxruntime"\nrecipe = { optimise = "O3" }\n',
     r"\[x\].recipe.optimise: the engine has no such recipe option \(it has: optimize, "),
    ('[x]\nengine = "onnxruntime"\nrecipe = { optimize = "O9" }\n',
     r"\[x\].recipe.optimize: 'O9' is not one of O1, O2, O3"),
    ('[x]\nengine = "onnxruntime"\nrecipe = { per_channel = "yes" }\n',
     r"per_channel: 'yes' is not a bool"),
    ('[x]\nengine = "ctranslate2"\nload = { threads = 4 }\n',
     r"\[x\].load.threads: the engine has no such load option \(it has: compute_type\)"),
    ('[x]\nengine = "pytorch"\nload = { compile = true }\n', r"\(it has: none\)"),
    ('[x]\nengine = "onnxruntime"\nfolder = "/no/such/folder"\n',
     r"\[x\].folder: /no/such/folder does not exist or is not a folder"),
    ('[x]\nengine = "ctranslate2"\nfolder = "."\n', r"\[x\].folder: .* holds no model.bin"),
    ('[x]\nengine = "onnxruntime"\nfolder = "."\nrecipe = { optimize = "O3" }\n',
     r"takes a recipe \(built here\) or a folder \(built by you\), not both"),
    ('[x]\nengine = "pytorch"\ndefault = "no"\n', r"\[x\].default: expected true or false"),
    ('[x]\nengine = "pytorch"\nfolders = "a"\n', r"\[x\].folders: unknown key"),
    ('[int8-vs-fp32]\nengine = "pytorch"\n', r"a variant name is lowercase words joined by -"),
    ('[all]\nengine = "pytorch"\n', r"a variant name is lowercase words"),
    ('[x]\nengine = "pytorch"\n[x.y]\n', r"\[x\].y: unknown key"),
    ("[x\n", r"is not valid TOML"),
    ('[x]\nengine = ["onnxruntime"]\n', r"\[x\].engine: unknown engine \['onnxruntime'\]"),
    # recipes whose options do not go together: refused before anything is built (one raised
    # after the export was built, the other was built in fp32 without a word)
    ('[x]\nengine = "onnxruntime"\nrecipe = { optimize = "O3", quantize = "preset" }\n',
     r"\[x\].recipe: optimize and quantize do not stack"),
    ('[x]\nengine = "onnxruntime"\nrecipe = { per_channel = true }\n',
     r"\[x\].recipe: per_channel take effect only with quantize, which this recipe leaves "
     r"out \(it would be built without them\): set quantize or drop per_channel"),
    ('[x]\nengine = "onnxruntime-beamsearch"\nrecipe = { share_embedding = false }\n',
     r"\[x\].recipe: share_embedding take effect only with quantize"),
    ('[x]\nengine = "onnxruntime"\nrecipe = { nodes_to_exclude = ["a"], per_channel = true }\n',
     r"\[x\].recipe: nodes_to_exclude, per_channel take effect only with quantize"),
    ('[x]\nengine = "onnxruntime"\nfolder = "a\\u0000b"\n',
     r"\[x\].folder 'a\\x00b': embedded null byte; pass a path this system can open"),
])
def test_bad_declaration_is_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as error:
        read(tmp_path, text)
    assert "\n" not in str(error.value)


def test_a_variants_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "variants.toml"
    path.write_bytes('# variantes déclarées\n[pytorch-fp32]\nengine = "pytorch"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=f"variants file {path} is not UTF-8 text \\(byte 13\\)"):
        declared.read(path, BASELINE)


def test_the_baseline_must_be_declared(tmp_path):
    with pytest.raises(ConfigError, match="does not declare pytorch-fp32, the baseline"):
        read(tmp_path, '[x]\nengine = "pytorch"\n', with_baseline=False)
    with pytest.raises(ConfigError, match="cannot be read"):
        declared.read(tmp_path / "none.toml", BASELINE)


def test_option_types():
    assert Option(bool, "").problem(True) == "" and Option(int, "").problem(True)
    assert Option(list, "").problem(["a"]) == "" and Option(list, "").problem([1])


def test_a_ctranslate2_folder_needs_the_tokenizers_config_too(tmp_path):
    """Without tokenizer_config.json, AutoTokenizer reads CTranslate2's own config.json, which
    names no model type: the folder passed and its load failed mid-run."""
    from perf_tests.harness.engines import ctranslate2

    for name in ("model.bin", "config.json", "spiece.model"):
        (tmp_path / name).write_text("x")
    assert "holds no tokenizer files (tokenizer_config.json" in ctranslate2.holds_model(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{}")
    assert ctranslate2.holds_model(tmp_path) == ""
