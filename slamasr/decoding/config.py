"""Decoding configuration (``decode:``): the paper's settings at the top level, every
scorer (:mod:`slamasr.decoding.scorers`) and rescorer (:mod:`slamasr.decoding.rescore`) in
a section of its own, each validated by its own ``Config``."""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from slamasr.decoding.rescore import RESCORERS
from slamasr.decoding.scorers import SCORERS

CHECKPOINT_RE = re.compile(r"best|last|step-[0-9]+")
"""The names ``decode.checkpoint`` accepts (those of ``slamasr.checkpoints``)."""

LEGACY_KEYS = {
    "ctc_weight": "scorers.ctc.weight",
    "ctc_pre_beam": "scorers.ctc.pre_beam",
    "ctc_head": "scorers.ctc.head",
    "ctc_proposals": "scorers.ctc.proposals",
    "ctc_label_bonus": "scorers.ctc.label_bonus",
    "word_prior": "scorers.word_prior.path",
    "word_prior_weight": "scorers.word_prior.weight",
    "word_prior_oov": "scorers.word_prior.oov",
    "word_prior_bonus": "scorers.word_prior.bonus",
    "word_prior_max_words": "scorers.word_prior.max_words",
    "word_prior_corrections": "scorers.word_prior.corrections",
    "word_prior_sound_alikes": "scorers.word_prior.sound_alikes",
    "lm_rescore_weight": "rescorers.lm.weight",
}
"""The flat ``decode.*`` keys before the scorers got sections of their own -> their keys now."""


@dataclass
class DecodeConfig:
    """The ``decode:`` section.

    Attributes:
        num_beams: beam size (paper 4; 1 = greedy).
        max_duration: seconds of audio per decoding batch (cuts sorted by duration).
        batch_size: used when max_duration is 0.
        max_new_tokens_per_second: bound on generated tokens (EOS included) per second of
            audio; each utterance may generate
            ``max(min_new_tokens_bound, ceil(duration * max_new_tokens_per_second))`` tokens.
            The defaults never cut a LibriSpeech transcript: upper-case LibriSpeech text
            takes a LLaMA tokenizer ~2.3 tokens per word (3.0 for the 1% densest 20-word
            utterances; ``python tools/token_rate.py``), so 20 tokens/s holds even 6 words/s
            at that density; lower-case text needs about half. A hypothesis that reaches its bound
            without EOS is cut there, logged and counted (``bound_hits`` in ``exp/X/wer``).
        min_new_tokens_bound: the bound is never below this (200: the official SLAM-ASR
            code's fixed ``max_new_tokens``).
        length_penalty, repetition_penalty: scoring of the search.
        search: native (slamasr's batched beam search: prompt run once per utterance, each
            utterance stops at its own bound and leaves the batch) | hf (transformers'
            ``generate``, as reference implementations decode) | ctc (a probe of the projector,
            not SLAM-ASR decoding: best path of its auxiliary CTC head, the LLM is not run;
            needs the head of ``decode.scorers.ctc.head``; num_beams is ignored).
        scorers: ``name -> settings`` of each search scorer (``decode.scorers.ctc.weight``
            ...; :data:`slamasr.decoding.scorers.SCORERS`); a scorer is on iff its weight > 0.
        rescorers: ``name -> settings`` of each n-best rescorer (``decode.rescorers.lm``).
        checkpoint: which checkpoint of ``<exp-dir>/checkpoints`` to decode: best | last |
            step-N (a name, never a path).
        avg: average the last ``avg`` step checkpoints (icefall's --avg); 1 = no averaging.
    """

    num_beams: int = 4
    max_duration: float = 120.0
    batch_size: int = 8
    max_new_tokens_per_second: float = 20.0
    min_new_tokens_bound: int = 200
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    search: str = "native"
    scorers: dict[str, Any] = field(default_factory=dict)
    rescorers: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = "best"
    avg: int = 1

    def __post_init__(self) -> None:
        self.scorers = _section("scorers", SCORERS, self.scorers)
        self.rescorers = _section("rescorers", RESCORERS, self.rescorers)

    def is_paper(self) -> bool:
        """No scorer, no rescorer, the native search: decoding as the paper."""
        parts = [*self.scorers.values(), *self.rescorers.values()]
        return self.search == "native" and all(c.weight <= 0 for c in parts)

    def paper(self) -> DecodeConfig:
        """This config with every scorer and rescorer off."""
        return dataclasses.replace(self, scorers={}, rescorers={})

    def validate(self) -> None:
        if self.num_beams < 1:
            raise ValueError("decode.num_beams must be >= 1")
        if not CHECKPOINT_RE.fullmatch(self.checkpoint):
            raise ValueError(
                f"decode.checkpoint={self.checkpoint!r}: use best, last or step-N (the name "
                f"of a checkpoint in <exp-dir>/checkpoints, not a path)"
            )
        if not self.max_new_tokens_per_second > 0:
            raise ValueError(
                f"decode.max_new_tokens_per_second={self.max_new_tokens_per_second}; must be > 0"
            )
        if self.min_new_tokens_bound < 1:
            raise ValueError(
                f"decode.min_new_tokens_bound={self.min_new_tokens_bound}; must be >= 1"
            )
        if self.search not in ("native", "hf", "ctc"):
            raise ValueError(f"decode.search={self.search!r}; choose native, hf or ctc")
        if self.avg < 1:
            raise ValueError("decode.avg must be >= 1")
        for kind in ("scorers", "rescorers"):
            for name, cfg in getattr(self, kind).items():
                try:
                    cfg.validate(self)
                except ValueError as e:
                    raise ValueError(f"decode.{kind}.{name}.{e}") from None


def _section(kind: str, registry: dict[str, type], given: dict[str, Any]) -> dict[str, Any]:
    """Every registered name -> its ``Config`` (built from a mapping, defaults where absent)."""
    from slamasr.config import ConfigError, from_dict

    unknown = sorted(set(given) - set(registry))
    if unknown:
        raise ConfigError(
            f"unknown {kind[:-1]} decode.{kind}.{unknown[0]}; registered: {', '.join(registry)}"
        )
    out = {}
    for name, cls in registry.items():
        value = given.get(name)
        if not isinstance(value, cls.Config):
            value = from_dict(cls.Config, value or {}, prefix=f"decode.{kind}.{name}")
        out[name] = value
    return out


def upgrade_legacy_keys(section: dict[str, Any], where: str, convert: bool) -> dict[str, Any]:
    """A ``decode:`` mapping with the flat keys of :data:`LEGACY_KEYS` moved to their sections.

    Args:
        section: the ``decode:`` mapping as read.
        where: where it was read (for the messages).
        convert: move them, with a logged notice (an experiment's recorded ``config.yaml``);
            false: raise on the first one (a config written by hand, a ``--set``).

    Raises:
        ValueError: ``convert`` is false and an old key is there (the message names the new
            key).
    """
    old = [k for k in section if k in LEGACY_KEYS]
    if not old:
        return section
    if not convert:
        raise ValueError(
            f"decode.{old[0]} is now decode.{LEGACY_KEYS[old[0]]} ({where}); every scorer has "
            f"a section of its own under decode.scorers / decode.rescorers"
        )
    out = {k: v for k, v in section.items() if k not in LEGACY_KEYS}
    for key in old:
        node = out
        *parents, leaf = LEGACY_KEYS[key].split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = section[key]
    logging.info(
        "%s: decode keys of before the scorer sections read as their new keys (%s)",
        where, ", ".join(f"{k} -> {LEGACY_KEYS[k]}" for k in old),
    )  # fmt: skip
    return out
