"""The corpus generator: French agreement rules, determinism and disjoint splits."""

import random

import pytest

from fixtures.corpus import generate, grammar, lexicon
from fixtures.corpus.grammar import NounPhrase

pytestmark = pytest.mark.unit


def noun(en):
    return next(n for n in lexicon.ANIMATE_NOUNS + lexicon.THING_NOUNS + lexicon.PLACES
                if n.en_sg == en)


def adjective(en):
    return next(a for a in lexicon.ADJECTIVES if a.en == en)


@pytest.mark.parametrize("phrase, english, french", [
    (NounPhrase(noun("cat"), False, "the"), "the cat", "le chat"),
    (NounPhrase(noun("car"), False, "the"), "the car", "la voiture"),
    (NounPhrase(noun("man"), False, "the"), "the man", "l'homme"),          # mute h elides
    (NounPhrase(noun("egg"), False, "a"), "an egg", "un œuf"),
    (NounPhrase(noun("school"), False, "my"), "my school", "mon école"),    # ma -> mon
    (NounPhrase(noun("house"), False, "my"), "my house", "ma maison"),
    (NounPhrase(noun("computer"), False, "this"), "this computer", "cet ordinateur"),
    (NounPhrase(noun("key"), True, "this"), "these keys", "ces clés"),
    (NounPhrase(noun("car"), False, "the", adjective("red")), "the red car",
     "la voiture rouge"),                                                   # adjective after
    (NounPhrase(noun("cat"), False, "the", adjective("small")), "the small cat",
     "le petit chat"),                                                      # adjective before
    (NounPhrase(noun("man"), False, "the", adjective("old")), "the old man",
     "le vieil homme"),                                                     # vieil, no elision
    (NounPhrase(noun("computer"), False, "a", adjective("beautiful")), "a beautiful computer",
     "un bel ordinateur"),
    (NounPhrase(noun("house"), True, "a", adjective("white")), "some white houses",
     "des maisons blanches"),                                               # feminine plural
    (NounPhrase(noun("house"), True, "a", adjective("big")), "some big houses",
     "de grandes maisons"),                                                 # des -> de
    (NounPhrase(noun("horse"), True, "number", number=("two", "deux")), "two horses",
     "deux chevaux"),
])
def test_noun_phrase_agreement(phrase, english, french):
    assert (phrase.english(), phrase.french()) == (english, french)


@pytest.mark.parametrize("preposition, phrase, french", [
    ("près de", NounPhrase(noun("garden"), False, "the"), "près du jardin"),
    ("près de", NounPhrase(noun("station"), False, "the"), "près de la gare"),
    ("près de", NounPhrase(noun("airport"), False, "the"), "près de l'aéroport"),
    ("à côté de", NounPhrase(noun("school"), True, "the"), "à côté des écoles"),
    ("à", NounPhrase(noun("market"), False, "the"), "au marché"),
    ("à", NounPhrase(noun("park"), True, "the"), "aux parcs"),
    ("à", NounPhrase(noun("church"), False, "the"), "à l'église"),
    ("près de", NounPhrase(noun("hotel"), False, "a"), "près d'un hôtel"),
    ("dans", NounPhrase(noun("kitchen"), False, "the"), "dans la cuisine"),
])
def test_prepositions_contract_and_elide(preposition, phrase, french):
    assert grammar.french_with_preposition(preposition, phrase) == french


def test_negation_turns_indefinite_object_into_de():
    phrase = NounPhrase(noun("apple"), False, "a")
    assert phrase.french(negated_object=True) == "de pomme"
    assert phrase.english(negated_object=True) == "an apple"
    plural = NounPhrase(noun("egg"), True, "a")
    assert (plural.english(negated_object=True), plural.french(negated_object=True)) == (
        "any eggs", "d'œufs")


def test_verbs_agree_and_elide_in_three_tenses():
    see = next(v for v in lexicon.VERBS if v.en_base == "see")
    like = next(v for v in lexicon.VERBS if v.en_base == "like")
    i = grammar.Subject("I", "je", 0, "m", False)
    we = grammar.Subject("we", "nous", 3, "m", True)
    assert grammar.french_verb_phrase(i, like, "present", False) == "j'aime"
    assert grammar.french_verb_phrase(i, like, "present", True) == "je n'aime pas"
    assert grammar.french_verb_phrase(i, see, "past", False) == "j'ai vu"
    assert grammar.french_verb_phrase(we, see, "past", True) == "nous n'avons pas vu"
    assert grammar.french_verb_phrase(we, see, "future", False) == "nous verrons"
    assert grammar.english_verb_phrase(we, see, "future", True) == ("will not", "see")


def test_sample_sentences_are_punctuated_pairs():
    rng = random.Random(0)
    for _ in range(300):
        english, french = generate.sample_pair(rng)
        assert english[0].isupper() and french[0].isupper()
        assert english[-1] in ".?" and french[-1] in ".?"
        assert (english[-1] == "?") == french.endswith(" ?")
        assert "  " not in french and " '" not in french


def test_generation_is_deterministic_and_matches_committed_files(tmp_path):
    sizes = {"train": 200, "validation": 20, "test": 30}
    first, second = generate.build_splits(7, sizes), generate.build_splits(7, sizes)
    assert first == second
    assert generate.build_splits(8, sizes) != first
    committed = {name: generate.read_split(name) for name in generate.DEFAULT_SIZES}
    assert generate.build_splits() == {n: [tuple(p) for p in committed[n]] for n in committed}


def test_splits_are_disjoint_and_large_enough():
    splits = {name: generate.read_split(name) for name in generate.DEFAULT_SIZES}
    assert len(splits["test"]) >= 500
    for side in (0, 1):
        seen = [{pair[side] for pair in pairs} for pairs in splits.values()]
        assert sum(len(s) for s in seen) == len(set().union(*seen)), "a sentence is in two splits"
