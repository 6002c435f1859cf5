"""Workloads: exact latency shapes, and the WMT test set's offline fallback."""

import urllib.error

import pytest
from transformers import AutoTokenizer

from perf_tests.harness import models, workloads
from perf_tests.harness.config import Shape

pytestmark = pytest.mark.unit


def test_latency_inputs_have_exactly_the_shape_and_no_padding():
    tokenizer = AutoTokenizer.from_pretrained(models.TINY_DIR)
    batch = workloads.latency_inputs(tokenizer, "translate English to French: ", Shape(8, 64))
    assert tuple(batch["input_ids"].shape) == (8, 64)
    assert batch["attention_mask"].all()
    assert (batch["input_ids"][:, -1] == tokenizer.eos_token_id).all()
    assert len({tuple(row.tolist()) for row in batch["input_ids"]}) == 8  # real, distinct text
    again = workloads.latency_inputs(tokenizer, "translate English to French: ", Shape(8, 64))
    assert (again["input_ids"] == batch["input_ids"]).all()


def test_identical_latency_work_for_every_variant():
    assert workloads.latency_settings(32) == dict(do_sample=False, num_beams=1,
                                                  min_new_tokens=32, max_new_tokens=32)


def test_wmt_test_set_falls_back_to_the_embedded_split_with_a_reason(monkeypatch):
    def offline(*_):
        raise urllib.error.URLError("no route to the test set's host")

    monkeypatch.setattr("sacrebleu.utils.get_source_file", offline)
    found = workloads.wmt_quality_set("wmt14", ("en", "fr"), limit=20)
    assert found.name == "embedded-test" and len(found.sources) == 20
    assert found.note.startswith("test set wmt14 en-fr could not be had (URLError")
    assert found.note.endswith("scoring on the embedded test split instead")


def test_embedded_models_score_on_the_embedded_split():
    spec = models.resolve("t5-tiny-enfr")
    found = workloads.quality_set_for(spec, "wmt14", 10)
    assert found.name == "embedded-test" and len(found.references) == 10
