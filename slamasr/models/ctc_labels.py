"""How LLM tokens spell in a CTC head's classes (:class:`CTCLabels`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CTCLabels:
    """How LLM tokens spell in a CTC head's classes, when those are not the tokens themselves.

    A character CTC head (:class:`slamasr.models.ctc.CharCTCHead`) has one class per
    character; an LLM token then extends a hypothesis by several classes (``" the"`` -> space,
    t, h, e). Row ``v`` of ``start`` holds token ``v``'s classes when it begins a hypothesis
    (a leading space dropped), row ``v`` of ``cont`` when it continues one; ``*_len`` give the
    number of valid entries. Length 0 = the token cannot be spelled (a character outside the
    head's alphabet, whitespace only): such candidates get probability 0.

    Args:
        start: ``(V, M)`` class ids (>= 1; 0 is the blank), padded with 0.
        start_len: ``(V,)``.
        cont: ``(V, M)``.
        cont_len: ``(V,)``.
    """

    start: torch.Tensor
    start_len: torch.Tensor
    cont: torch.Tensor
    cont_len: torch.Tensor

    def to(self, device: torch.device) -> CTCLabels:
        return CTCLabels(
            *(t.to(device) for t in (self.start, self.start_len, self.cont, self.cont_len))
        )
