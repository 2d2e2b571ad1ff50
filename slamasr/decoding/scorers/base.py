"""The interface of a decoding scorer: evidence beside the LLM in the beam search.

The model to learn from is ESPnet's ``BeamSearch(scorers, weights)``: the LLM is the full
scorer (every token of the vocabulary), each scorer here a *partial* one. With any scorer on,
the search scores per beam only the LLM's ``pre_beam`` best tokens, the tokens the scorers
propose and EOS; a candidate's score is ``(1 - sum of llm_share) * log p_LLM`` plus every
scorer's terms. A scorer is on iff its config's ``weight`` > 0.

Writing one: a file in ``slamasr/decoding/scorers/`` holding a :class:`Scorer` subclass with
a nested ``Config`` dataclass (``weight`` + its own settings, ``validate(decode)``), and one
line in ``slamasr/decoding/scorers/__init__.py``'s ``SCORERS``. It is then configured as
``decode.scorers.<name>.*``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch


@dataclass
class ScorerConfig:
    """Settings every scorer has.

    Attributes:
        weight: the scorer's weight; 0 = off.
    """

    weight: float = 0.0

    def validate(self, decode: Any) -> None:
        """Check the settings; ``decode`` is the whole ``decode:`` section (rules between
        scorers). Raise ValueError naming ``decode.scorers.<name>.<key>``."""
        if self.weight < 0:
            raise ValueError(f"weight={self.weight}; must be >= 0 (0 = off)")

    def tag(self, name: str) -> str:
        """Its part of the decode dir's name when on (``<name><weight>``)."""
        return f"{name}{self.weight:g}"


@dataclass
class SearchContext:
    """What a scorer may read of one batch: the model (its heads, tokenizer, LLM), the
    encoder frames and projected speech, and the search's shape.

    ``memo`` shares values computed once per batch between scorers (e.g. the character
    head's logits): ``ctx.memo("key", fn)``.
    """

    model: Any
    frames: torch.Tensor  # (B, T, D) encoder frames
    frame_lengths: torch.Tensor  # (B,)
    speech: torch.Tensor  # (B, N, d_llm) projected speech
    speech_lengths: torch.Tensor  # (B,)
    num_beams: int
    eos_id: int
    cache: dict[str, Any] = field(default_factory=dict)

    def memo(self, key: str, fn: Callable[[], Any]) -> Any:
        """``fn()``, computed once per batch."""
        if key not in self.cache:
            self.cache[key] = fn()
        return self.cache[key]

    @property
    def device(self) -> torch.device:
        return self.speech.device


class Scorer(abc.ABC):
    """A partial scorer of the beam search (the interface; see the module docstring).

    Rows of the search are utterance-major: row ``u * num_beams + j`` is beam ``j`` of
    utterance ``u``; rows of finished utterances leave, so ``advance`` gives for each new
    row the row it extends.

    Attributes:
        llm_share: weight taken from the LLM's (ESPnet's CTC weight: ``(1 - w) log p_LLM``).
        pre_beam: LLM tokens per beam this scorer wants scored (the search takes the
            largest of its scorers'); 0 = no wish.
    """

    Config = ScorerConfig
    llm_share: float = 0.0
    pre_beam: int = 0

    def __init__(self, cfg: ScorerConfig, model: Any) -> None:
        self.cfg = cfg
        self.model = model

    def start(self, ctx: SearchContext) -> None:
        """Set up for a new batch (before the first step); by default, nothing to set up."""
        return None

    def proposals(self) -> Optional[list[list[int]]]:
        """Token ids to score for every beam of each utterance besides the LLM's best ones
        (called after :meth:`start`); None = none."""
        return None

    @abc.abstractmethod
    def score(self, cands: torch.Tensor) -> list[torch.Tensor]:
        """Weighted terms ``(N, K)`` added to the score of each row's hypothesis extended by
        each candidate token of ``cands`` ``(N, K)`` (EOS = the hypothesis ends)."""

    def advance(self, rows: torch.Tensor, picks: torch.Tensor) -> None:
        """New row ``i`` extends row ``rows[i]`` of the last :meth:`score` by its candidate
        ``picks[i]``; by default (a scorer without state), nothing to carry."""
        return None
