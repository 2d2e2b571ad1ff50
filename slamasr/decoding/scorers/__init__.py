"""Decoding scorers: evidence beside the LLM in the beam search, one file each
(:mod:`slamasr.decoding.scorers.base` holds the interface).

Adding one: its file, and a line in :data:`SCORERS` (the name is its config key,
``decode.scorers.<name>``). Scorers are applied in this order.
"""

from __future__ import annotations

from typing import Any

from slamasr.decoding.scorers.base import Scorer, ScorerConfig, SearchContext
from slamasr.decoding.scorers.ctc import CTCScorer
from slamasr.decoding.scorers.word_prior import WordPriorScorer

SCORERS: dict[str, type[Scorer]] = {
    "ctc": CTCScorer,
    "word_prior": WordPriorScorer,
}


def build_scorers(configs: dict[str, ScorerConfig], model: Any) -> list[Scorer]:
    """The scorers that are on (weight > 0), in :data:`SCORERS` order, for ``model``."""
    on = [name for name in SCORERS if configs[name].weight > 0]
    return [SCORERS[name](configs[name], model) for name in on]


__all__ = ["SCORERS", "Scorer", "ScorerConfig", "SearchContext", "build_scorers"]
