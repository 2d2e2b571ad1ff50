"""Word counts of a word prior (``decode.scorers.word_prior.path``): counting, mixing and
writing ``word<TAB>count`` files (``python -m slamasr.bin.prepare_word_counts``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence


def is_word(token: str) -> bool:
    """Letters (any script) and apostrophes, at least one letter."""
    return any(c.isalpha() for c in token) and all(c.isalpha() or c == "'" for c in token)


def count_words(texts: Iterable[str]) -> dict[str, float]:
    """Counts of the words (:func:`is_word`; other tokens skipped) of already normalized,
    space-separated texts."""
    counts: dict[str, float] = {}
    for text in texts:
        for token in text.split():
            if is_word(token):
                counts[token] = counts.get(token, 0.0) + 1.0
    return counts


def wordfreq_counts(lang: str = "en", wordlist: str = "large") -> dict[str, float]:
    """Word frequencies of general text in ``lang`` from the ``wordfreq`` package
    (Wikipedia, subtitles, news, books, web text...), words only (:func:`is_word`)."""
    try:
        import wordfreq
    except ImportError as e:
        raise ImportError(
            "the wordfreq package is not installed: pip install wordfreq (or pip install "
            '-e ".[cpu-recipe]"), or build the counts from text with --text'
        ) from e
    try:
        freqs = wordfreq.get_frequency_dict(lang, wordlist)
    except LookupError as e:
        raise ValueError(f"wordfreq has no {wordlist!r} word list for {lang!r}: {e}") from e
    return {w: f for w, f in freqs.items() if f > 0 and is_word(w)}


def most_frequent(counts: dict[str, float], num: int) -> dict[str, float]:
    """The ``num`` most frequent words of ``counts`` (ties: first seen kept)."""
    if len(counts) <= num:
        return counts
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:num])


def mix_counts(parts: Sequence[tuple[dict[str, float], float]]) -> dict[str, float]:
    """Interpolate several word distributions: ``sum_i weight_i * count_i(w) / total_i``."""
    out: dict[str, float] = {}
    for counts, weight in parts:
        total = sum(counts.values())
        if weight <= 0 or total <= 0:
            continue
        for word, count in counts.items():
            out[word] = out.get(word, 0.0) + weight * count / total
    return out


def write_word_counts(path: str | Path, counts: dict[str, float], header: str = "") -> int:
    """Write ``word<TAB>count`` lines, most frequent first (ties alphabetical); returns the
    number of words."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in header.splitlines():
            f.write(f"# {line}\n")
        for word, count in items:
            f.write(f"{word}\t{count:.6g}\n")
    tmp.replace(path)
    return len(items)
