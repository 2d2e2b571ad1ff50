"""The hand-written out-of-domain dev sentences share nothing with test_ood or training."""

from __future__ import annotations

import difflib

from slamasr.corpora.espeak_corpus import dev_ood_sentences, ood_sentences
from slamasr.corpora.sentences import generate_sentences, generator_vocabulary

NEAR_DUPLICATE = 0.7
"""difflib ratio from which two sentences count as the same one reworded."""


def test_enough_distinct_natural_sentences():
    sentences = dev_ood_sentences()
    assert len(sentences) >= 150
    assert len({s.text for s in sentences}) == len(sentences)
    for sentence in sentences:
        assert 4 <= len(sentence.text.split()) <= 25, sentence.display
        assert sentence.display[-1] in ".?!", sentence.display


def test_no_dev_ood_sentence_is_a_test_ood_sentence_or_a_rewording_of_one():
    test_ood = [s.text for s in ood_sentences()]
    for sentence in dev_ood_sentences():
        close = difflib.get_close_matches(sentence.text, test_ood, n=1, cutoff=NEAR_DUPLICATE)
        assert not close, (sentence.text, close)


def test_no_dev_ood_sentence_is_generated_for_training():
    dev_ood = {s.text for s in dev_ood_sentences()}
    for split, num in (("train", 20000), ("dev", 1000), ("test", 1000)):
        generated = {s.text for s in generate_sentences(num, seed=0, split=split)}
        assert not dev_ood & generated, split


def test_many_word_types_are_unknown_to_the_generator():
    types = {word for s in dev_ood_sentences() for word in s.text.split()}
    assert len(types - generator_vocabulary()) / len(types) >= 0.4
