"""Text normalization: one function for training targets, decoding output and scoring.

``normalize_text(text, mode)`` with ``mode`` one of:

- ``upper``: LibriSpeech style. Upper-case words separated by single spaces; no
  punctuation except apostrophes *inside* words (``don't`` -> ``DON'T``, ``'tis`` ->
  ``TIS``, ``students'`` -> ``STUDENTS``); digits kept (``4 2`` stays ``4 2``).
- ``lower``: the same, lower-case.
- ``none``: the text as given, only whitespace collapsed and the ends stripped.

Unicode decisions (``upper``/``lower``):

- NFKC first (full-width forms, ligatures such as ``ﬁ`` and superscripts become plain
  characters).
- Curly/modifier apostrophes and backticks (``’ ‘ ʼ ` ´``) become ``'``; hyphens and dashes
  (``- ‐ ‑ ‒ – — ―  −``) separate words (``twenty-one`` -> ``TWENTY ONE``).
- Latin letters with diacritics are folded to ASCII (``café`` -> ``CAFE``, ``Zoë`` ->
  ``ZOE``), since LibriSpeech references are ASCII. Letters without an ASCII decomposition
  (``ß æ ø``, Greek, Cyrillic, CJK ...) are kept, case-mapped by Python's rules
  (``ß`` upper-cases to ``SS``). Combining marks of non-Latin scripts are kept.
- Every other character that is not a letter, digit or mark (punctuation, symbols, control
  characters) becomes a space.
"""

from __future__ import annotations

import re
import unicodedata

TEXT_NORM_MODES = ("upper", "lower", "none")

_APOSTROPHES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc\u0060\u00b4\u2032\u02b9"})
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2e3a\u2e3b"
_WHITESPACE = re.compile(r"\s+")
# An apostrophe not between two word characters is punctuation, not part of a word.
_LOOSE_APOSTROPHE = re.compile(r"(?<![^\W_])'|'(?![^\W_])")


def _fold_latin_diacritics(text: str) -> str:
    """Drop combining marks that sit on an ASCII base letter (é -> e); keep the rest."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch) and out and out[-1].isascii() and out[-1].isalpha():
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _keep_char(ch: str) -> str:
    """Map one character to itself (letter, digit, mark, apostrophe) or a space."""
    if ch == "'" or ch.isspace():
        return ch
    category = unicodedata.category(ch)
    if category[0] in ("L", "N", "M"):
        return ch
    return " "


def _strip_punctuation(text: str) -> str:
    """Replace punctuation/symbols by spaces, keeping apostrophes inside words."""
    text = "".join(" " if ch in _DASHES else _keep_char(ch) for ch in text)
    return _LOOSE_APOSTROPHE.sub(" ", text)


def collapse_whitespace(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return _WHITESPACE.sub(" ", text).strip()


def normalize_text(text: str, mode: str = "upper") -> str:
    """Normalize a transcript or hypothesis.

    Args:
        text: Any unicode string.
        mode: ``upper`` | ``lower`` | ``none`` (see the module docstring).

    Returns:
        The normalized string (possibly empty).

    Raises:
        ValueError: for an unknown mode.
    """
    if mode not in TEXT_NORM_MODES:
        raise ValueError(f"text_norm mode {mode!r}; choose one of {list(TEXT_NORM_MODES)}")
    if mode == "none":
        return collapse_whitespace(text)
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    text = _fold_latin_diacritics(text)
    text = _strip_punctuation(text)
    text = text.upper() if mode == "upper" else text.lower()
    return collapse_whitespace(text)
