"""English sound-alike keys: words a listener would write alike share one
(:func:`sound_key`), used to propose real words for a spelling heard by ear."""

from __future__ import annotations

import re

# spellings of one sound, rewritten in this order (then soft c = s, other c = k)
_SOUND_SPELLINGS = (
    ("ph", "f"),
    ("ck", "k"),
    ("tch", "ch"),
    ("dg", "j"),
    ("wh", "w"),
    ("qu", "kw"),
    ("x", "ks"),
    ("gh", ""),
    ("z", "s"),
    ("q", "k"),
)
_SOFT_C = re.compile(r"c(?=[eiy])")
_VOWELS = re.compile(r"[aeiouy]")
_DOUBLES = re.compile(r"(.)\1+")


def sound_key(word: str) -> str:
    """A rough key of how an English spelling sounds: its consonants, with common spellings
    of one sound made one letter (*ph* = *f*, soft *c* = *s*, hard *c* = *k*, *x* = *ks* ...),
    every vowel but a leading one dropped (a leading vowel kept as ``a``), doubles
    collapsed. Words that a listener would write alike share it, though they differ by many
    letters: ``vagitabels`` and ``vegetables`` (``vgtbls``), ``farmassist`` and
    ``pharmacist`` (``frmst``). Apostrophes are ignored."""
    w = word.lower().replace("'", "")
    for spelling, sound in _SOUND_SPELLINGS:
        w = w.replace(spelling, sound)
    w = _SOFT_C.sub("s", w).replace("c", "k")
    if not w:
        return ""
    head = "a" if w[0] in "aeiouy" else w[0]
    return _DOUBLES.sub(r"\1", head + _VOWELS.sub("", w[1:]))
