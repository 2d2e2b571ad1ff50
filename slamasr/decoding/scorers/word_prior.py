"""A word unigram prior in the joint CTC/LLM search (not in the paper), + real-word proposals.

Scores each hypothesis' spelling in the character CTC head's alphabet with
:class:`slamasr.decoding.lexicon.WordPrior` (completed words + the look-ahead of the word
being spelled) and proposes, for each word of the head's best path outside the lexicon, the
tokens of lexicon words near it (``corrections``, ``sound_alikes``). Needs the CTC scorer on
with ``head: char``. Configured as ``decode.scorers.word_prior.*``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from slamasr.decoding.lexicon import WordPrior, WordState
from slamasr.decoding.scorers.base import Scorer, ScorerConfig, SearchContext
from slamasr.decoding.spelling import char_best_texts, token_texts

logger = logging.getLogger(__name__)


@dataclass
class WordPriorConfig(ScorerConfig):
    """``decode.scorers.word_prior``.

    Attributes:
        weight: its weight in the joint score; 0 = off. Keeps the search on real words where
            the LLM, fed speech unlike its training data, is a weak language model and the
            character head spells what it hears (``microweve``).
        path: a ``word<TAB>count`` file (``python -m slamasr.bin.prepare_word_counts``);
            relative paths from where decoding runs (the recipe directory).
        oov: log-probability charged once to a word outside the prior.
        bonus: added per word (a word insertion bonus): a unigram alone charges every word
            about -8, so a run of words spelled as one non-word would cost less than the words.
        max_words: keep the prior's most frequent words; 0 = all.
        corrections: for each word of the character head's best path outside the lexicon,
            propose the tokens of up to this many lexicon words within 2 edits of it
            (``microweve`` -> *microwave*), of two-word readings of it (``offearly`` -> *off
            early*) and one-word readings of it with a neighbour (``podc ast`` -> *podcast*).
            Needs ``decode.scorers.ctc.proposals``. 0 = off.
        sound_alikes: with ``corrections``, also propose up to this many lexicon words that
            sound like such a word (:func:`slamasr.decoding.sound_alike.sound_key`;
            ``alorges`` -> *allergies*). 0 = off.
    """

    path: str = ""
    oov: float = -20.0
    bonus: float = 0.0
    max_words: int = 0
    corrections: int = 0
    sound_alikes: int = 0

    def tag(self, name: str) -> str:
        return f"words{self.weight:g}"

    def validate(self, decode: Any) -> None:
        super().validate(decode)
        zeros = {"max_words": "all words", "corrections": "off", "sound_alikes": "off"}
        for key, zero in zeros.items():
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0 (0 = {zero})")
        if self.weight <= 0:
            return
        if not self.path:
            raise ValueError(
                "weight > 0 needs decode.scorers.word_prior.path, a word<TAB>count file "
                "(python -m slamasr.bin.prepare_word_counts)"
            )
        ctc = decode.scorers["ctc"]
        if ctc.weight <= 0 or ctc.head != "char":
            raise ValueError(
                "weight > 0 scores the character CTC head's spelling: set "
                "decode.scorers.ctc.weight > 0 and decode.scorers.ctc.head=char, or "
                "decode.scorers.word_prior.weight=0"
            )
        if self.corrections > 0 and not ctc.proposals:
            raise ValueError(
                "corrections > 0 adds to the CTC head's proposals: set "
                "decode.scorers.ctc.proposals=true or decode.scorers.word_prior.corrections=0"
            )
        if self.oov >= 0:
            raise ValueError(f"oov={self.oov}; a log-probability, must be < 0")


class WordPriorScorer(Scorer):
    """The word prior as a search scorer (:class:`WordStates`), its corrections as
    proposals."""

    Config = WordPriorConfig

    def __init__(self, cfg: WordPriorConfig, model: Any, prior: Optional[WordPrior] = None) -> None:
        super().__init__(cfg, model)
        if prior is None and model.char_ctc is None:
            raise ValueError(
                "decode.scorers.word_prior spells with the character CTC head, but this model "
                "has none (model.char_ctc.weight=0); set decode.scorers.word_prior.weight=0"
            )
        if prior is None:
            alphabet = model.char_ctc.alphabet
            prior = load_word_prior(cfg.path, cfg.oov, cfg.bonus, cfg.max_words, alphabet)
        self.prior = prior
        self.states: Optional[WordStates] = None
        self.fixes: Optional[list[list[int]]] = None

    def start(self, ctx: SearchContext) -> None:
        rows = ctx.speech.shape[0] * ctx.num_beams
        fixes = None
        if self.cfg.corrections > 0:
            fixes = [self.corrected_ids(text) for text in char_best_texts(ctx)]
        self.begin(token_texts(self.model), ctx.eos_id, rows, fixes)

    def begin(
        self,
        texts: Sequence[Optional[str]],
        eos_id: int,
        num_rows: int,
        fixes: Optional[list[list[int]]] = None,
    ) -> None:
        """Start on tokens spelled ``texts`` (what :meth:`start` reads of the model) for
        ``num_rows`` rows; ``fixes``: token ids to propose per utterance."""
        self.states = WordStates(self.prior, texts, eos_id, num_rows)
        self.fixes = fixes

    def corrected_ids(self, text: str) -> list[int]:
        """Token ids of the lexicon readings of a best-path ``text``
        (:meth:`~slamasr.decoding.lexicon.WordPrior.corrected_texts`)."""
        tok, ids = self.model.tokenizer, []
        for fixed in self.prior.corrected_texts(
            text, self.cfg.corrections, sound_alikes=self.cfg.sound_alikes
        ):
            ids.extend(tok.encode(fixed, add_special_tokens=False))
        return ids

    def proposals(self) -> Optional[list[list[int]]]:
        return self.fixes

    def score(self, cands: torch.Tensor) -> list[torch.Tensor]:
        return [self.cfg.weight * self.states.score(cands)]

    def advance(self, rows: torch.Tensor, picks: torch.Tensor) -> None:
        self.states.advance(rows.tolist(), picks.tolist())


@functools.lru_cache(maxsize=4)
def load_word_prior(
    path: str, oov_logp: float, word_bonus: float, max_words: int, alphabet: str
) -> WordPrior:
    """The word unigram of ``path`` restricted to ``alphabet`` (loaded once per setting)."""
    prior = WordPrior.load(path, oov_logp, word_bonus, max_words or None, alphabet=alphabet)
    logger.info("word prior %s: %d words, oov log-prob %g", path, len(prior), oov_logp)
    return prior


class WordStates:
    """The word prior's state of each row of a beam search (:class:`WordPriorScorer`).

    Args:
        prior: the unigram.
        texts: each token's spelling after another token (a word-initial token starts with a
            space; at the start of a hypothesis that space ends an empty word, which scores
            0), None = unspellable (such candidates are excluded by the CTC score).
        eos_id: the token that ends a hypothesis (scores its last word as complete).
        num_rows: rows (utterances x beams) at the start.
    """

    def __init__(
        self, prior: WordPrior, texts: Sequence[Optional[str]], eos_id: int, num_rows: int
    ) -> None:
        self.prior = prior
        self.texts = texts
        self.eos_id = eos_id
        self.states: list[WordState] = [(0.0, "")] * num_rows
        self._cand: list[list[WordState]] = []

    def score(self, cands: torch.Tensor) -> torch.Tensor:
        """Prior of each row's hypothesis + each candidate token ``(N, K)``."""
        out: list[list[float]] = []
        self._cand = []
        for state, row in zip(self.states, cands.tolist()):
            new_states, scores = [], []
            for tok in row:
                if tok == self.eos_id:
                    new_states.append(state)
                    scores.append(self.prior.score(state, final=True))
                    continue
                text = self.texts[tok] if 0 <= tok < len(self.texts) else None
                new = self.prior.extend(state, text) if text else state
                new_states.append(new)
                scores.append(self.prior.score(new))
            self._cand.append(new_states)
            out.append(scores)
        return torch.tensor(out, dtype=torch.float32, device=cands.device)

    def advance(self, rows: list[int], picks: list[int]) -> None:
        """Each new beam extends row ``rows[i]`` by its candidate ``picks[i]`` of the last
        :meth:`score`."""
        self.states = [self._cand[r][p] for r, p in zip(rows, picks)]
