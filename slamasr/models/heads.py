"""Auxiliary heads: losses trained beside the paper's LLM loss (not in the paper).

The paper trains the projector on the frozen LLM's next-token loss alone. An auxiliary head
adds a second, cheaper signal: it reads the encoder's frames or the projected speech, scores
them against the transcript, and the model minimises ``ce + sum(weight * head loss)``. Each
head reports its loss under its own name, so the training loop, validation and the report
sum and log it without knowing it exists.

The heads of this package (``slamasr.models.ctc``):

- ``ctc``: :class:`~slamasr.models.ctc.TokenCTCHead`, CTC over the LLM's tokens on the
  projected speech (``model.projector.ctc_weight``; part of the projector, keys
  ``projector.ctc.*``).
- ``char_ctc``: :class:`~slamasr.models.ctc.CharCTCHead`, CTC over characters on the
  encoder's frames (``model.char_ctc.weight``; keys ``char_ctc.*``).

A new head implements :class:`AuxiliaryHead` and is passed to ``SlamASR(heads=...)`` by the
builder; a head that no other part owns is registered on the model under its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

Reads = Literal["frames", "speech"]  # the encoder's output | the projector's output


@dataclass(frozen=True)
class Transcripts:
    """A batch's transcripts in the forms heads score against.

    Attributes:
        texts: the transcripts as text.
        token_ids: the LLM's token ids per transcript (the template's targets, EOS dropped).
        token_embedding: the frozen LLM's input-embedding table ``(V, d_llm)``.
    """

    texts: list[str]
    token_ids: list[list[int]]
    token_embedding: torch.Tensor


class AuxiliaryHead(Protocol):
    """What the model needs of an auxiliary head.

    Attributes:
        name: the name its loss is reported and logged under (``ctc``, ``char_ctc``).
        weight: its loss's weight beside the LLM loss (> 0).
        reads: ``frames`` (encoder output) or ``speech`` (projector output).
    """

    name: str
    weight: float
    reads: Reads

    def aux_loss(
        self, features: torch.Tensor, lengths: torch.Tensor, transcripts: Transcripts
    ) -> tuple[torch.Tensor, int]:
        """The head's loss on ``features`` ``(B, T, D)`` with valid lengths ``(B,)``.

        Returns:
            The mean loss over the utterances it covered (a scalar that carries the
            gradient) and how many utterances that mean is over.
        """
        ...
