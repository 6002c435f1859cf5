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


@pytest.mark.parametrize("prefix", ["translate English to French: ", ""])
def test_a_shape_larger_than_the_test_split_reads_it_again(prefix):
    tokenizer = AutoTokenizer.from_pretrained(models.TINY_DIR)
    batch = workloads.latency_inputs(tokenizer, prefix, Shape(32, 512))
    assert tuple(batch["input_ids"].shape) == (32, 512)
    assert (batch["input_ids"][:, -1] == tokenizer.eos_token_id).all()


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


class NeverEnds:
    """An engine whose hypotheses end only for the first row of each batch, recording settings."""

    def __init__(self):
        self.settings = []

    def generate(self, inputs, **settings):
        import torch

        self.settings.append(settings)
        rows = inputs["input_ids"].shape[0]
        output = torch.full((rows, settings["max_new_tokens"] + 1), 5, dtype=torch.long)
        output[:, 0] = 0  # the decoder start token
        output[0, 3], output[0, 4:] = 1, 0  # row 0: end of sequence, then padding
        return output


def test_quality_length_cap_follows_the_source_and_counts_capped_hypotheses():
    tokenizer = AutoTokenizer.from_pretrained(models.TINY_DIR)
    spec = models.resolve("t5-tiny-enfr")
    sources = ["The cat.", "The small cat sees the red car near the station every day."] * 3
    engine = NeverEnds()
    done = workloads.translate_counted(engine, tokenizer, spec, sources, batch_size=3)
    assert len(done.hypotheses) == 6 and done.capped == 4  # two batches, one ended row each
    longest = [max(len(tokenizer(spec.prefix + s).input_ids) for s in chunk)
               for chunk in (sorted(sources, key=len)[:3], sorted(sources, key=len)[3:])]
    assert [s["max_new_tokens"] for s in engine.settings] == [
        min(2 * n + 10, spec.quality_max_new_tokens) for n in longest]
    assert workloads.length_cap(spec, 100) == spec.quality_max_new_tokens == 64
    assert workloads.length_cap(spec, 5) == 20


class CountingEngine:
    """Ticks a step clock twice a call and counts its generate calls."""

    variant, steps_reported = "fake", True

    def __init__(self):
        self.calls = 0

    def generate(self, inputs, clock=None, **settings):
        self.calls += 1
        if clock is not None:
            clock.tick()
            clock.tick()

    def encode(self, inputs):
        return False


@pytest.mark.parametrize("warm, calls", [(False, 4), (True, 3)])
def test_per_token_timing_warms_up_only_an_engine_that_has_not_just_run(warm, calls):
    from perf_tests.harness import tokens

    engine = CountingEngine()
    timing = tokens.measure(engine, {}, workloads.latency_settings(32), Shape(1, 16), 3, warm)
    assert engine.calls == calls
    assert timing.calls == 3 and timing.per_token_ms is not None
