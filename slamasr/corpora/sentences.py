"""A seeded generator of varied, grammatical everyday English sentences.

Sentences come from ~70 templates (statements in seven tenses, questions, commands, compound
and complex sentences, dialogue phrases, numbers, clock times and dates) filled from the word
lists in ``slamasr/corpora/data``. Each sentence has two forms::

    display: "Did Anna buy some fresh bread yesterday?"   (spoken by eSpeak NG)
    text:    "did anna buy some fresh bread yesterday"    (the ASR target)

The target form is lower case, without punctuation, numbers spelled as words, apostrophes kept
inside words ("don't", "o'clock"). Splits are assigned by a hash of the target text, so
train/dev/test never share a sentence whatever the seed.

Example::

    train = generate_sentences(1000, seed=0, split="train")
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from slamasr.corpora import templates
from slamasr.corpora.grammar import PhraseBuilder
from slamasr.corpora.lexicon import load_lexicon

SPLITS = ("train", "dev", "test")
SPLIT_BUCKETS = {"train": (0, 900), "dev": (900, 950), "test": (950, 1000)}
"""Hash buckets (out of 1000) of each split: 90% / 5% / 5% of distinct sentences."""
MIN_WORDS = 4
MAX_WORDS = 20
_NOT_TARGET = re.compile(r"[^a-z' ]+")


@dataclass(frozen=True)
class Sentence:
    """One generated sentence.

    Attributes:
        text: normalized target: lower case, no punctuation.
        display: cased and punctuated form, for synthesis.
    """

    text: str
    display: str


def normalize_text(text: str) -> str:
    """The corpus target form: lower case, letters, apostrophes inside words, single spaces.

    Args:
        text: any English text with numbers already spelled as words.

    Returns:
        e.g. ``"Don't go, Anna!"`` → ``"don't go anna"``.
    """
    words = _NOT_TARGET.sub(" ", text.lower().replace("-", " ")).split()
    return " ".join(word.strip("'") for word in words if word.strip("'"))


def split_of(text: str) -> str:
    """The split ("train", "dev" or "test") a normalized sentence belongs to."""
    bucket = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") % 1000
    for split, (low, high) in SPLIT_BUCKETS.items():
        if low <= bucket < high:
            return split
    raise AssertionError(bucket)


def to_display(words: str, kind: str) -> str:
    """Capitalizes a raw sentence and ends it with "." "?" or "!" according to its kind."""
    text = re.sub(r"\bi\b", "I", words.strip())
    text = re.sub(r"\s+([,;])", r"\1", text)
    end = {"question": "?", "command": "!" if len(text) < 25 else "."}.get(kind, ".")
    return text[0].upper() + text[1:] + end


def make_sentence(
    rng: random.Random, template: Callable[[PhraseBuilder], tuple[str, str]]
) -> Sentence:
    """Fills one template.

    Args:
        rng: random generator.
        template: a function of :mod:`slamasr.corpora.templates`.

    Returns:
        The sentence in both forms.
    """
    words, kind = template(PhraseBuilder(load_lexicon(), rng))
    display = to_display(words, kind)
    return Sentence(text=normalize_text(display), display=display)


def iter_sentences(seed: int):
    """Yields an endless, reproducible stream of sentences (all splits, may repeat)."""
    rng = random.Random(seed)
    weighted = templates.weighted_templates()
    funcs = [func for func, _ in weighted]
    weights = [weight for _, weight in weighted]
    while True:
        template = rng.choices(funcs, weights)[0]
        sentence = make_sentence(rng, template)
        if MIN_WORDS <= len(sentence.text.split()) <= MAX_WORDS:
            yield sentence


def generate_sentences(n: int, seed: int = 0, split: str = "train") -> list[Sentence]:
    """Generates ``n`` distinct sentences of one split, reproducibly.

    Args:
        n: number of sentences.
        seed: random seed; the same seed and split give the same list.
        split: "train", "dev" or "test"; splits never share a sentence.

    Returns:
        ``n`` sentences, in generation order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    seen: set[str] = set()
    out: list[Sentence] = []
    max_draws = 200 * n + 10_000
    for draws, sentence in enumerate(iter_sentences(seed * 7919 + SPLITS.index(split))):
        if len(out) == n:
            break
        if draws > max_draws:
            raise RuntimeError(f"only {len(out)} of {n} distinct {split} sentences found")
        if sentence.text not in seen and split_of(sentence.text) == split:
            seen.add(sentence.text)
            out.append(sentence)
    return out


def generator_vocabulary(num_samples: int = 20_000, seed: int = 0) -> set[str]:
    """Every word type the generator can produce: all word-list forms, number words and the
    words templates insert (collected from ``num_samples`` sampled sentences).

    Args:
        num_samples: sentences sampled to collect template words.
        seed: sampling seed.

    Returns:
        The set of lower-case word types.
    """
    vocab = {normalize_text(word) for word in load_lexicon().words()}
    stream = iter_sentences(seed)
    for _ in range(num_samples):
        vocab.update(next(stream).text.split())
    return vocab
