"""The hand-written out-of-domain test sentences stay out of the generator's reach."""

from __future__ import annotations

from slamasr.corpora.espeak_corpus import ood_sentences
from slamasr.corpora.sentences import generate_sentences, generator_vocabulary

MIN_UNSEEN_TYPE_SHARE = 0.4


def test_enough_distinct_natural_sentences():
    sentences = ood_sentences()
    assert len(sentences) >= 220
    assert len({s.text for s in sentences}) == len(sentences)
    for sentence in sentences:
        assert 4 <= len(sentence.text.split()) <= 25, sentence.display
        assert sentence.display[-1] in ".?!", sentence.display


def test_many_word_types_are_unknown_to_the_generator():
    types = {word for s in ood_sentences() for word in s.text.split()}
    unseen = types - generator_vocabulary()
    assert len(unseen) / len(types) >= MIN_UNSEEN_TYPE_SHARE
    assert len(unseen) >= 300


def test_no_ood_sentence_is_generated():
    ood = {s.text for s in ood_sentences()}
    for split, num in (("train", 20000), ("dev", 1000), ("test", 1000)):
        generated = {s.text for s in generate_sentences(num, seed=0, split=split)}
        assert not ood & generated, split
