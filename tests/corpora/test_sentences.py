"""The sentence generator: reproducible, split-disjoint, broad, grammatical."""

from __future__ import annotations

import random
import re

import pytest

from slamasr.corpora import templates
from slamasr.corpora.grammar import PhraseBuilder, number_words, ordinal_words, year_words
from slamasr.corpora.lexicon import load_lexicon, make_verb
from slamasr.corpora.sentences import (
    MAX_WORDS,
    MIN_WORDS,
    generate_sentences,
    generator_vocabulary,
    normalize_text,
    split_of,
)

THIRD_PERSON = ("he", "she")
OTHER_PERSONS = ("i", "you", "we", "they")


@pytest.fixture(scope="module")
def train() -> list:
    return generate_sentences(5000, seed=3, split="train")


def test_same_seed_gives_same_sentences():
    assert generate_sentences(200, seed=7) == generate_sentences(200, seed=7)
    assert generate_sentences(200, seed=7) != generate_sentences(200, seed=8)


def test_shorter_request_is_a_prefix():
    assert generate_sentences(50, seed=1) == generate_sentences(100, seed=1)[:50]


def test_splits_are_disjoint_and_sentences_unique(train):
    dev = generate_sentences(300, seed=3, split="dev")
    test = generate_sentences(300, seed=3, split="test")
    other_seed_dev = generate_sentences(300, seed=4, split="dev")
    texts = {name: {s.text for s in sents} for name, sents in [("train", train), ("dev", dev)]}
    texts["test"] = {s.text for s in test}
    assert len(texts["train"]) == len(train) and len(texts["dev"]) == len(dev)
    assert not texts["train"] & texts["dev"]
    assert not texts["train"] & texts["test"]
    assert not texts["dev"] & texts["test"]
    assert not {s.text for s in other_seed_dev} & texts["train"]
    assert all(split_of(s.text) == "test" for s in test)


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="split"):
        generate_sentences(3, split="validation")


def test_target_and_display_forms(train):
    for sentence in train:
        assert re.fullmatch(r"[a-z']+( [a-z']+)*", sentence.text), sentence.text
        assert MIN_WORDS <= len(sentence.text.split()) <= MAX_WORDS
        assert sentence.display[0].isupper() and sentence.display[-1] in ".?!"
        assert normalize_text(sentence.display) == sentence.text


def test_vocabulary_is_large(train):
    assert len(generator_vocabulary()) >= 4500
    used = {word for sentence in train for word in sentence.text.split()}
    assert len(used) >= 2500
    assert len({s.text for s in train}) == 5000


def test_many_sentence_shapes(train):
    assert len(templates.weighted_templates()) >= 50
    kinds = {s.display[-1] for s in train}
    assert kinds == {".", "?", "!"}
    first_words = {s.text.split()[0] for s in train}
    assert {"did", "where", "please", "if", "when", "who", "let's"} <= first_words


def test_subject_verb_agreement_after_frequency_adverbs(train):
    pattern = re.compile(
        r"^(he|she|i|you|we|they) (always|usually|often|sometimes|rarely|never) (\S+)"
    )
    lex = load_lexicon()
    bases = {v.base.split()[0] for verbs in lex.verbs.values() for v in verbs}
    thirds = {v.third.split()[0] for verbs in lex.verbs.values() for v in verbs}
    checked = 0
    for sentence in train:
        match = pattern.match(sentence.text)
        if match:
            subject, _, verb = match.groups()
            assert verb in (thirds if subject in THIRD_PERSON else bases), sentence.text
            checked += 1
    assert checked >= 10


def test_do_support_agrees_with_subject():
    builder = PhraseBuilder(load_lexicon(), random.Random(5))
    for _ in range(300):
        words, kind = templates.yes_no_do(builder)
        aux, subject = words.split()[:2]
        assert kind == "question"
        if subject in THIRD_PERSON:
            assert aux in ("does", "did"), words
        elif subject in OTHER_PERSONS:
            assert aux in ("do", "did"), words


def test_articles_match_the_next_sound(train):
    for sentence in train:
        assert not re.search(r"\ba [aeio]", sentence.text), sentence.text
        assert not re.search(r"\ban [^aeiouh ]", sentence.text), sentence.text


def test_verb_inflections():
    assert make_verb("stop") == make_verb("stop").__class__(
        "stop", "stops", "stopped", "stopped", "stopping"
    )
    assert make_verb("try").third == "tries" and make_verb("try").past == "tried"
    assert make_verb("go").participle == "gone" and make_verb("go").third == "goes"
    assert make_verb("make").ing == "making" and make_verb("see").ing == "seeing"
    assert make_verb("look for").past == "looked for"
    assert make_verb("scrub").past == "scrubbed" and make_verb("grin").ing == "grinning"


def test_every_verb_form_is_an_english_word():
    """No misspelt inflection (``scrubed``, ``kniting``: a doubled consonant missing from
    ``verb_forms.txt``): every form is a word of general English text (wordfreq)."""
    wordfreq = pytest.importorskip("wordfreq")
    lexicon = load_lexicon()
    unknown = sorted(
        {
            form.split()[0]
            for verbs in lexicon.verbs.values()
            for verb in verbs
            for form in (verb.third, verb.past, verb.participle, verb.ing)
            if wordfreq.zipf_frequency(form.split()[0], "en", "large") < 1.0
        }
    )
    assert not unknown, f"not English words: {unknown}; add the verbs to verb_forms.txt"


def test_numbers_as_words():
    assert number_words(342) == "three hundred forty two"
    assert number_words(7015) == "seven thousand fifteen"
    assert ordinal_words(21) == "twenty first" and ordinal_words(12) == "twelfth"
    assert year_words(1998) == "nineteen ninety eight"
    assert year_words(2007) == "two thousand seven" and year_words(1905) == "nineteen oh five"


def test_noun_entries_use_the_comma_plural_format():
    for cls, nouns in load_lexicon().nouns.items():
        for noun in nouns:
            words = noun.singular.split()
            assert len(words) == 1 or words[1][:3] != words[0][:3], (cls, noun)
