"""The two deterministic workloads: fixed-shape latency batches and the quality test set.

Latency: every variant gets the same token ids (real sentences, cut to exactly the shape's source
length, no padding) and does identical work: greedy, ``min_new_tokens == max_new_tokens``.
Quality: beam search with a natural end of sequence over a real test set, in input order, with
a length cap tied to the source (``LENGTH_FACTOR`` x the batch's longest source + ``LENGTH_EXTRA``
new tokens, at most the model's own limit): a model that never emits an end of sequence (random
weights, a broken export) would otherwise decode the model's limit for every sentence, 256
tokens with 4 beams, for over 10 minutes on the smoke set. Hypotheses that hit the cap are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from fixtures.corpus.generate import read_split
from perf_tests.harness.config import Shape
from perf_tests.harness.models import ModelSpec


@dataclass(frozen=True)
class QualitySet:
    name: str
    sources: tuple[str, ...]
    references: tuple[str, ...]
    note: str = ""  # why a fallback was taken, if one was


def latency_settings(new_tokens: int) -> dict:
    return dict(do_sample=False, num_beams=1, min_new_tokens=new_tokens,
                max_new_tokens=new_tokens)


LENGTH_FACTOR, LENGTH_EXTRA = 2, 10


@dataclass(frozen=True)
class Translation:
    hypotheses: list[str]
    capped: int  # hypotheses that hit the length cap (no end of sequence)


def length_cap(spec: ModelSpec, source_tokens: int) -> int:
    return min(LENGTH_FACTOR * source_tokens + LENGTH_EXTRA, spec.quality_max_new_tokens)


def quality_settings(spec: ModelSpec, source_tokens: int) -> dict:
    """Beam search for a batch whose longest source has ``source_tokens`` tokens."""
    return dict(do_sample=False, num_beams=spec.quality_beams,
                max_new_tokens=length_cap(spec, source_tokens), early_stopping=True)


def latency_inputs(tokenizer, prefix: str, shape: Shape) -> dict:
    """A batch of ``shape.batch`` rows of exactly ``shape.source_tokens`` ids each.

    Rows are consecutive windows over the tokenized test-split sources, each closed by the end
    of sequence id, so that the encoder sees text and not random ids. A shape larger than the
    split reads it again from the start (b32-s512 needs about 16,000 tokens; the split holds
    about 15,000 with T5's prefix and 7,000 without one).
    """
    import torch

    needed = shape.batch * (shape.source_tokens - 1)
    sources = [prefix + english for english, _ in read_split("test")]
    stream: list[int] = []
    while len(stream) < needed:
        for text in sources:
            stream += tokenizer(text, add_special_tokens=False).input_ids
            if len(stream) >= needed:
                break
    width = shape.source_tokens - 1
    rows = [stream[i * width:(i + 1) * width] + [tokenizer.eos_token_id]
            for i in range(shape.batch)]
    input_ids = torch.tensor(rows, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def embedded_quality_set(limit: int | None = None) -> QualitySet:
    pairs = read_split("test")[:limit]
    return QualitySet("embedded-test", tuple(en for en, _ in pairs), tuple(fr for _, fr in pairs))


def wmt_quality_set(test_set: str, pair: tuple[str, str], limit: int | None) -> QualitySet:
    """A sacrebleu test set through sacrebleu's own download and cache, or the embedded split."""
    from sacrebleu.utils import get_reference_files, get_source_file

    langpair = f"{pair[0]}-{pair[1]}"
    try:
        with open(get_source_file(test_set, langpair), encoding="utf-8") as handle:
            sources = [line.rstrip("\n") for line in handle]
        with open(get_reference_files(test_set, langpair)[0], encoding="utf-8") as handle:
            references = [line.rstrip("\n") for line in handle]
    except Exception as error:  # sacrebleu raises bare Exceptions and URLErrors alike
        note = (f"test set {test_set} {langpair} could not be had ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else 'no detail'}); scoring on the "
                "embedded test split instead")
        fallback = embedded_quality_set(limit)
        return QualitySet(fallback.name, fallback.sources, fallback.references, note)
    return QualitySet(f"{test_set}:{langpair}", tuple(sources[:limit]), tuple(references[:limit]))


def quality_set_for(spec: ModelSpec, test_set: str, limit: int | None) -> QualitySet:
    if spec.embedded:
        return embedded_quality_set(limit)
    return wmt_quality_set(test_set, (spec.source_lang, spec.target_lang), limit)


def translate_counted(engine, tokenizer, spec: ModelSpec, sources,
                      batch_size: int = 32) -> Translation:
    """Beam-search translations in input order; batches are length-sorted to pad little."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    hypotheses: list[str] = [""] * len(sources)
    capped = 0
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = tokenizer([spec.prefix + sources[i] for i in chunk], padding=True,
                          return_tensors="pt")
        longest = int(batch["attention_mask"].sum(dim=1).max())
        output = engine.generate(dict(batch), **quality_settings(spec, longest))
        if tokenizer.eos_token_id is not None:
            # a finished hypothesis ends with the end of sequence; one cut by the cap has none
            capped += int((~(output[:, 1:] == tokenizer.eos_token_id).any(dim=1)).sum())
        for i, text in zip(chunk, tokenizer.batch_decode(output, skip_special_tokens=True)):
            hypotheses[i] = text.strip()
    return Translation(hypotheses, capped)


def translate(engine, tokenizer, spec: ModelSpec, sources, batch_size: int = 32) -> list[str]:
    return translate_counted(engine, tokenizer, spec, sources, batch_size).hypotheses
