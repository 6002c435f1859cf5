"""Translation quality with sacrebleu: BLEU and chrF per variant, parity judged per pair."""

import pytest

from perf_tests.harness.judge import judge

pytestmark = pytest.mark.gate

EMBEDDED_BLEU_FLOOR = 90.0  # t5-tiny-enfr's bar on its own test split (see fixtures/README.md)


def test_quality(gate, variant):
    gate.skip_unrunnable(variant)
    quality = gate.store.quality(variant)
    assert len(quality["hypotheses"]) == quality["sentences"] > 0
    spec = gate.specs["quality"]
    if variant == gate.config.baseline and spec.name == "t5-tiny-enfr":
        assert quality["bleu"] >= EMBEDDED_BLEU_FLOOR, (
            f"t5-tiny-enfr scores {quality['bleu']} BLEU < {EMBEDDED_BLEU_FLOOR} "
            f"({quality['bleu_signature']}): retrain it with python -m fixtures.models.train_tiny")


@pytest.mark.judges("bleu")
def test_bleu_ratio(gate, limit):
    gate.judge_pair(limit, lambda variant: gate.store.quality(variant)["bleu"])


@pytest.mark.judges("chrf")
def test_chrf_ratio(gate, limit):
    gate.judge_pair(limit, lambda variant: gate.store.quality(variant)["chrf"])


@pytest.mark.judges("exact_match")
def test_exact_match(gate, limit):
    gate.skip_unrunnable(limit.candidate)
    matched, total = gate.store.exact_match(limit.candidate, limit.baseline)
    gate.check(judge(limit, matched / total, matched, total, gate.config.arch_preset))
