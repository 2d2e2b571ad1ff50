"""What scorers read of the character CTC head, computed once per model or per batch: how
each LLM token spells in its classes, the head's logits and its best path."""

from __future__ import annotations

import weakref
from typing import Any, Optional

import torch

from slamasr.decoding.scorers.base import SearchContext
from slamasr.models.ctc import best_path
from slamasr.models.ctc_labels import CTCLabels

_SPELLINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_spellings(model: Any) -> CTCLabels:
    """How each LLM token spells in the character head's classes (built once per model)."""
    if model not in _SPELLINGS:
        vocab = model.llm.get_input_embeddings().weight.shape[0]
        labels = model.char_ctc.spell_tokens(model.tokenizer, vocab)
        _SPELLINGS[model] = labels.to(model.device)
    return _SPELLINGS[model]


def token_texts(model: Any) -> list[Optional[str]]:
    """Each LLM token's spelling in the character head's alphabet after another token
    (None = unspellable; built once per model)."""
    if model not in _TEXTS:
        labels = token_spellings(model)
        _TEXTS[model] = class_texts(labels.cont, labels.cont_len, model.char_ctc.alphabet)
    return _TEXTS[model]


def class_texts(table: torch.Tensor, lengths: torch.Tensor, alphabet: str) -> list[Optional[str]]:
    """Texts of rows of class ids (``cont`` of :class:`CTCLabels`; class ``c`` =
    ``alphabet[c - 1]``); None where a row is empty (an unspellable token)."""
    return [
        "".join(alphabet[c - 1] for c in row[:n]) if n else None
        for row, n in zip(table.tolist(), lengths.tolist())
    ]


def char_logits(ctx: SearchContext) -> torch.Tensor:
    """The character head's logits ``(B, T, 1 + len(alphabet))`` of the batch (once)."""
    return ctx.memo("char_logits", lambda: ctx.model.char_ctc.logits(ctx.frames))


def char_best_texts(ctx: SearchContext) -> list[str]:
    """The character head's best path of each utterance, as text (once)."""

    def read() -> list[str]:
        return ctx.model.char_ctc.texts(best_path(char_logits(ctx), ctx.frame_lengths))

    return ctx.memo("char_best_texts", read)
