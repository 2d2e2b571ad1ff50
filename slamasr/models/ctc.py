"""Auxiliary CTC loss on the projector's output, scored against the frozen LLM's token embeddings.

Not in the paper. The projector's job is to turn speech into vectors the frozen LLM reads like
its own token embeddings; the LLM loss teaches that only through the whole frozen LLM, and on a
small compute budget the "emergence" (docs, CPU recipe) comes late. This head adds a direct,
cheap signal: every projected speech position is scored by cosine similarity against every
row of the LLM's input-embedding table plus one learned blank vector, and CTC aligns those
scores with the transcript's token ids. It costs one (positions x vocabulary) matmul and no
LLM forward, so a CTC-only warm-up (``train.ctc_only_steps``) sees many utterances per second.

Cosine rather than dot product: the LLM's first operation on an input vector is an RMS/layer
norm, so the direction of a speech vector is what its first layer reads; the scale is left to
the LLM loss.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F


class TokenCTCHead(nn.Module):
    """Learned blank vector + learned logit scale; the token classes are the LLM's embeddings.

    Args:
        dim: the LLM's embedding width.
        init_scale: starting value of the cosine-logit scale (learned, kept positive).
        num_classes: 0 = the loss scores every token of the vocabulary; N = only the
            batch's target tokens plus uniformly drawn other tokens, N in all, redrawn every
            call (a sampled softmax: the (positions x vocabulary) product is the head's whole
            cost, ~10x less at 8,192 of SmolLM2's 49,152 tokens). Decoding scores all.
    """

    def __init__(self, dim: int, init_scale: float = 16.0, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.blank = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self._table: Optional[torch.Tensor] = None
        self._table_key: Optional[tuple] = None

    def _unit_table(self, embedding: torch.Tensor) -> torch.Tensor:
        """Row-normalised embedding table ``(V, d)``, cached (the LLM is frozen)."""
        key = (embedding.data_ptr(), embedding.shape, embedding.device, embedding.dtype)
        if self._table is None or self._table_key != key:
            with torch.no_grad():
                self._table = F.normalize(embedding.detach().float(), dim=-1)
            self._table_key = key
        return self._table

    def logits(
        self,
        speech: torch.Tensor,
        embedding: torch.Tensor,
        classes: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``(B, N, d)`` speech, ``(V, d)`` embeddings -> ``(B, N, 1 + V)``; class 0 = blank.

        With ``classes`` ``(C,)`` (token ids), only those tokens: ``(B, N, 1 + C)``.
        """
        unit = F.normalize(speech.float(), dim=-1)  # (B, N, d)
        table = self._unit_table(embedding)  # (V, d)
        if classes is not None:
            table = table[classes]  # (C, d)
        blank = F.normalize(self.blank.float(), dim=0)  # (d,)
        scale = self.log_scale.exp()
        tokens = unit @ table.to(unit.dtype).T  # (B, N, V); bf16 under autocast
        return scale * torch.cat([(unit @ blank).unsqueeze(-1), tokens.float()], dim=-1)

    def loss(
        self,
        speech: torch.Tensor,
        lengths: torch.Tensor,
        targets: list[list[int]],
        embedding: torch.Tensor,
    ) -> torch.Tensor:
        """Mean over utterances of the CTC loss per target token.

        Args:
            speech: projected speech ``(B, N, d)``.
            lengths: valid positions per utterance ``(B,)``.
            targets: token ids per utterance (no EOS); an empty target is skipped.
            embedding: the LLM's input-embedding weight ``(V, d)``.

        Returns:
            Scalar loss. Utterances with fewer positions than CTC needs for their targets
            contribute 0 (``zero_infinity``) instead of inf.
        """
        keep = [i for i, t in enumerate(targets) if t]
        if not keep:
            return speech.sum() * 0.0
        index = torch.tensor(keep, device=speech.device)
        flat = torch.tensor(
            [tok for i in keep for tok in targets[i]], dtype=torch.long, device=speech.device
        )
        classes = self._sample_classes(flat, embedding.shape[0])
        if classes is not None:  # token id -> its index among the sampled classes
            lookup = torch.full((embedding.shape[0],), -1, dtype=torch.long, device=flat.device)
            lookup[classes] = torch.arange(classes.numel(), device=flat.device)
            flat = lookup[flat]
        logits = self.logits(speech[index], embedding, classes)  # (B', N, 1 + C)
        logp = F.log_softmax(logits, dim=-1)
        flat = flat + 1  # class 0 is the blank
        target_lengths = torch.tensor([len(targets[i]) for i in keep], device=speech.device)
        return F.ctc_loss(
            logp.transpose(0, 1),  # (N, B', 1+V)
            flat,
            lengths[index].to(torch.long),
            target_lengths,
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )

    def _sample_classes(self, targets: torch.Tensor, vocab: int) -> Optional[torch.Tensor]:
        """The batch's target tokens + uniformly drawn others, ``num_classes`` in all (None =
        the whole vocabulary)."""
        if not 0 < self.num_classes < vocab:
            return None
        present = torch.unique(targets)
        need = self.num_classes - present.numel()
        if need <= 0:
            return present
        is_present = torch.zeros(vocab, dtype=torch.bool, device=targets.device)
        is_present[present] = True
        others = torch.randperm(vocab, device=targets.device)
        others = others[~is_present[others]][:need]
        return torch.cat([present, others])

    @torch.no_grad()
    def greedy(
        self, speech: torch.Tensor, lengths: torch.Tensor, embedding: torch.Tensor
    ) -> list[list[int]]:
        """Best-path token ids per utterance (repeats merged, blanks removed): a probe of
        what the projector's positions say on their own."""
        best = self.logits(speech, embedding).argmax(-1)  # (B, N)
        out = []
        for row, n in zip(best.tolist(), lengths.tolist()):
            ids, prev = [], 0
            for c in row[: int(n)]:
                if c != prev and c != 0:
                    ids.append(c - 1)
                prev = c
            out.append(ids)
        return out
