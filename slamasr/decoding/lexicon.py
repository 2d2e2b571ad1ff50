"""A word unigram prior for joint CTC/LLM beam search, scored letter by letter.

The frozen LLM is the language model of SLAM-ASR, but fed speech it has not seen in training
(the CPU recipe's out-of-domain test) it is a weak one, and the character CTC head then
spells what it hears: ``microweve``, ``vegitables``. A unigram over real words, scored while
the word is still being spelled, keeps beams on words that exist:

- a hypothesis' score is the sum of ``log p(w)`` over its completed words, plus for the word
  being spelled the log of the total probability of the lexicon's words that start with it
  (its *look-ahead*); the look-ahead of a prefix telescopes, so by the end of a word it has
  charged exactly ``log p(w)``, and a beam pays for an unlikely word as soon as its prefix
  becomes unlikely, not only after the word is written out;
- a prefix that no lexicon word starts with (a non-word, or a real word the lexicon lacks)
  costs ``oov_logp`` once, whatever its length;
- every word gets ``word_bonus`` (as soon as it starts): without it a unigram charges each
  word its ``log p(w)`` (about -8 for an average word), so writing several words as one
  non-word (``agapinchon`` for *add a pinch*) would cost less than writing them.

Words are what lies between spaces in the hypothesis' spelling (the character head's
alphabet: lower case letters, apostrophe, space), so the prior needs
``decode.scorers.ctc.head=char``.
The counts come from a ``word<TAB>count`` file (``slamasr.bin.prepare_word_counts``: word
frequencies of general English from the ``wordfreq`` package, or counts of a text corpus).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from slamasr.corpora.word_counts import most_frequent
from slamasr.decoding.sound_alike import sound_key

# (log-probability of the completed words, the word being spelled)
WordState = tuple[float, str]


class WordPrior:
    """Unigram log-probabilities of words with prefix look-ahead.

    Args:
        counts: word -> count (or any positive weight); normalized here.
        oov_logp: log-probability charged once for a word outside the lexicon (when its
            spelling leaves every lexicon word's prefix). Below the rarest word's log-prob.
        word_bonus: added per word, in or out of the lexicon (a word insertion bonus).

    ``split_min_length`` (6) and ``short_logp`` (-7.5: the ~175 most frequent words of a
    100,000-word English lexicon) bound the two-word readings of :meth:`splits`.
    """

    split_min_length = 6
    short_logp = -7.5

    def __init__(
        self, counts: dict[str, float], oov_logp: float = -20.0, word_bonus: float = 0.0
    ) -> None:
        if not counts:
            raise ValueError("a word prior needs at least one word")
        bad = [w for w, c in counts.items() if not (c > 0) or not w or " " in w]
        if bad:
            raise ValueError(
                f"word prior: {len(bad)} entries with an empty word, a space in the word or a "
                f"count <= 0 (e.g. {bad[0]!r}); give positive counts of single words"
            )
        total = float(sum(counts.values()))
        self.oov_logp = float(oov_logp)
        self.word_bonus = float(word_bonus)
        self.word_logp = {w: math.log(c / total) for w, c in counts.items()}
        mass: dict[str, float] = {}
        for word, count in counts.items():
            for end in range(1, len(word) + 1):
                prefix = word[:end]
                mass[prefix] = mass.get(prefix, 0.0) + count
        self.prefix_logp = {p: math.log(m / total) for p, m in mass.items()}
        self._words: Optional[list[str]] = None
        self._corrections: dict[tuple[str, int, int], list[str]] = {}
        self._by_sound: Optional[dict[str, list[str]]] = None

    def __len__(self) -> int:
        return len(self.word_logp)

    def corrections(self, word: str, max_edits: int = 2, limit: int = 3) -> list[str]:
        """Lexicon words within ``max_edits`` edits (Levenshtein) of ``word``, closest first,
        then most frequent; ``limit`` of them; none for a lexicon word."""
        if word in self.word_logp or limit <= 0:
            return []
        key = (word, max_edits, limit)
        if key in self._corrections:
            return list(self._corrections[key])
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        if self._words is None:
            self._words = list(self.word_logp)
        found = process.extract(
            word, self._words, scorer=Levenshtein.distance, score_cutoff=max_edits, limit=None
        )
        found.sort(key=lambda item: (item[1], -self.word_logp[item[0]], item[0]))
        if len(self._corrections) >= 100_000:  # a bounded memo: test sets repeat their words
            self._corrections.clear()
        self._corrections[key] = [w for w, _, _ in found[:limit]]
        return list(self._corrections[key])

    def sound_alikes(self, word: str, limit: int = 3) -> list[str]:
        """Lexicon words with the same :func:`sound_key` as ``word``, fewest edits from it
        first, then most frequent; ``limit`` of them; none for a lexicon word or a word of
        fewer than 3 letters. They reach what :meth:`corrections` cannot: a word the head
        spells by ear, several vowels off (``alorges`` -> ``allergies``, 4 edits)."""
        if word in self.word_logp or limit <= 0 or len(word) < 3:
            return []
        if self._by_sound is None:
            by_sound: dict[str, list[str]] = {}
            for w in self.word_logp:
                by_sound.setdefault(sound_key(w), []).append(w)
            self._by_sound = by_sound
        found = self._by_sound.get(sound_key(word), [])
        if not found:
            return []
        from rapidfuzz.distance import Levenshtein

        ranked = sorted(found, key=lambda w: (Levenshtein.distance(word, w), -self.word_logp[w], w))
        return ranked[:limit]

    def _whole(self, part: str) -> bool:
        """``part`` can stand as a word of a split: a lexicon word, and a frequent one when
        it has one or two letters (``of``, ``a``: rare short lexicon entries such as ``du``
        would split almost anything)."""
        logp = self.word_logp.get(part)
        return logp is not None and (len(part) > 2 or logp >= self.short_logp)

    def splits(self, word: str, limit: int = 3) -> list[str]:
        """Readings of a non-word as two words written without the space between them
        (``offearly`` -> ``off early``), for words of at least ``split_min_length`` letters:
        at each split point both sides are words (:meth:`_whole`), or one is and the other
        (4 letters or more) lies within 1 edit of a lexicon word (``shelvesthat``,
        ``managerescheduld`` -> ``manage rescheduled``). Fewest edits first, then the most
        probable pair; ``limit`` of them; none for a lexicon word."""
        if len(word) < self.split_min_length or word in self.word_logp or limit <= 0:
            return []
        found = []
        for cut in range(1, len(word)):
            left, right = word[:cut], word[cut:]
            lefts = [left] if self._whole(left) else []
            rights = [right] if self._whole(right) else []
            edits = 0
            if lefts and not rights and len(right) >= 4:
                rights, edits = self.corrections(right, max_edits=1, limit=2), 1
            elif rights and not lefts and len(left) >= 4:
                lefts, edits = self.corrections(left, max_edits=1, limit=2), 1
            for a in lefts:
                for b in rights:
                    logp = self.word_logp[a] + self.word_logp[b]
                    found.append((edits, -logp, f"{a} {b}"))
        found.sort()
        return [pair for _, _, pair in found[:limit]]

    def merges(self, left: str, right: str, limit: int = 3, max_edits: int = 2) -> list[str]:
        """Readings of two neighbouring words, one of them outside the lexicon, as one word
        heard with a space inside (``podc ast`` -> ``podcast``): their concatenation where
        it is a lexicon word, else its :meth:`corrections`."""
        if left in self.word_logp and right in self.word_logp:
            return []
        joined = left + right
        if joined in self.word_logp:
            return [joined]
        return self.corrections(joined, max_edits, limit)

    def corrected_texts(
        self, text: str, limit: int = 3, max_edits: int = 2, sound_alikes: int = 0
    ) -> list[str]:
        """Variants of a space-separated ``text`` with real words where it has non-words.
        Each word outside the lexicon gets a list of replacements: its :meth:`corrections`
        (``limit``), then its :meth:`sound_alikes` (``sound_alikes`` of them, those not
        already listed); variant ``i`` replaces each such word by its ``i``-th replacement
        (kept where it has fewer). Then one variant per split of a non-word
        (:meth:`splits`) and per merge of a non-word with its right neighbour
        (:meth:`merges`), each changing only that place. Empty where every word is in the
        lexicon."""
        words = text.split()
        options = []
        for word in words:
            found = self.corrections(word, max_edits, limit)
            found += [w for w in self.sound_alikes(word, sound_alikes) if w not in found]
            options.append(found)
        count = max((len(o) for o in options), default=0)
        variants = [
            " ".join(o[i] if i < len(o) else w for w, o in zip(words, options))
            for i in range(count)
        ]
        for j, word in enumerate(words):
            for pair in self.splits(word, limit):
                variants.append(" ".join(words[:j] + [pair] + words[j + 1 :]))
            if j + 1 < len(words):
                for joined in self.merges(word, words[j + 1], limit, max_edits):
                    variants.append(" ".join(words[:j] + [joined] + words[j + 2 :]))
        return variants

    @classmethod
    def load(
        cls,
        path: str | Path,
        oov_logp: float = -20.0,
        word_bonus: float = 0.0,
        max_words: Optional[int] = None,
        alphabet: Optional[str] = None,
    ) -> WordPrior:
        """Read a ``word<TAB>count`` file (``prepare_word_counts``), most frequent first.

        Args:
            path: the file; ``#`` lines are comments.
            oov_logp, word_bonus: see the class.
            max_words: keep the ``max_words`` most frequent words (None = all).
            alphabet: drop words with a character outside it (the CTC head's classes, space
                excluded): the search can never spell them. Case is folded to the alphabet's
                when it has one case.
        """
        counts = read_word_counts(path, alphabet)
        if max_words is not None:
            counts = most_frequent(counts, max_words)
        return cls(counts, oov_logp=oov_logp, word_bonus=word_bonus)

    # ------------------------------------------------------------------ scoring

    def lookahead(self, partial: str) -> float:
        """Log of the probability mass of the words that start with ``partial``
        (``oov_logp`` where no word does) + the word bonus; 0 for nothing spelled."""
        if not partial:
            return 0.0
        return self.prefix_logp.get(partial, self.oov_logp) + self.word_bonus

    def word_score(self, word: str) -> float:
        """``log p(word)`` (``oov_logp`` outside the lexicon) + the word bonus; 0 for an
        empty word."""
        if not word:
            return 0.0
        return self.word_logp.get(word, self.oov_logp) + self.word_bonus

    def extend(self, state: WordState, text: str) -> WordState:
        """The state after appending ``text`` (spaces end words) to a hypothesis."""
        done, partial = state
        if " " not in text:
            return done, partial + text
        pieces = (partial + text).split(" ")
        for word in pieces[:-1]:
            done += self.word_score(word)
        return done, pieces[-1]

    def score(self, state: WordState, final: bool = False) -> float:
        """Score of a hypothesis: its completed words + the look-ahead of the word being
        spelled, or with ``final`` (the hypothesis ends) that word's own log-prob."""
        done, partial = state
        return done + (self.word_score(partial) if final else self.lookahead(partial))

    def sentence_score(self, text: str) -> float:
        """``sum (log p(w) + word_bonus)`` of a space-separated text (what a finished
        hypothesis gets)."""
        return self.score(self.extend((0.0, ""), text), final=True)


def read_word_counts(path: str | Path, alphabet: Optional[str] = None) -> dict[str, float]:
    """The counts of a ``word<TAB>count`` file (``#`` lines are comments), words with a
    character outside ``alphabet`` (space excluded) dropped, case folded to the alphabet's
    when it has one case.

    Raises:
        FileNotFoundError: no such file (the message says how to write it).
        ValueError: a malformed line (file:line named), or no usable word.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"word prior {path} not found; write it with `python -m "
            f"slamasr.bin.prepare_word_counts --out {path} ...` or set "
            f"decode.scorers.word_prior.weight=0"
        )
    allowed = set(alphabet) - {" "} if alphabet else None
    fold = None
    if alphabet and alphabet == alphabet.lower():
        fold = str.lower
    elif alphabet and alphabet == alphabet.upper():
        fold = str.upper
    counts: dict[str, float] = {}
    with open(path, encoding="utf-8") as f:
        for num, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            try:
                if len(fields) != 2:
                    raise ValueError
                word, count = fields[0], float(fields[1])
            except ValueError:
                raise ValueError(
                    f"{path}:{num}: expected 'word<TAB>count', got {line[:60]!r}"
                ) from None
            if not word or " " in word or not count > 0:
                raise ValueError(
                    f"{path}:{num}: a word needs no spaces and a count > 0, got {line[:60]!r}"
                )
            word = fold(word) if fold else word
            if allowed is not None and not set(word) <= allowed:
                continue
            counts[word] = counts.get(word, 0.0) + count
    if not counts:
        raise ValueError(f"{path}: no usable words (alphabet {alphabet!r})")
    return counts
