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

import logging
import math
from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F

from slamasr.models.config import CHAR_ALPHABET
from slamasr.models.ctc_labels import CTCLabels
from slamasr.models.heads import Transcripts

logger = logging.getLogger(__name__)


class TokenCTCHead(nn.Module):
    """Learned blank vector + learned logit scale; the token classes are the LLM's embeddings.

    An auxiliary head (``slamasr.models.heads``) named ``ctc`` that reads the projected speech.

    Args:
        dim: the LLM's embedding width.
        init_scale: starting value of the cosine-logit scale (learned, kept positive).
        num_classes: 0 = the loss scores every token of the vocabulary; N = only the
            batch's target tokens plus uniformly drawn other tokens, N in all, redrawn every
            call (a sampled softmax: the (positions x vocabulary) product is the head's whole
            cost, ~10x less at 8,192 of SmolLM2's 49,152 tokens). Decoding scores all.
        weight: its loss's weight beside the LLM loss (``model.projector.ctc_weight``).
    """

    name = "ctc"
    reads = "speech"

    def __init__(
        self, dim: int, init_scale: float = 16.0, num_classes: int = 0, weight: float = 0.0
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.weight = weight
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

    def aux_loss(
        self, speech: torch.Tensor, lengths: torch.Tensor, transcripts: Transcripts
    ) -> tuple[torch.Tensor, int]:
        """:meth:`loss` against the transcripts' token ids, over all ``B`` utterances."""
        loss = self.loss(speech, lengths, transcripts.token_ids, transcripts.token_embedding)
        return loss, speech.shape[0]

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
        best = best_path(self.logits(speech, embedding), lengths)
        return [[c - 1 for c in classes] for classes in best]


class CharCTCHead(nn.Module):
    """A character CTC head on the encoder's frames (before the downsampler).

    Not in the paper. The projector's token head (:class:`TokenCTCHead`) can only emit tokens
    it has seen as targets: a word whose tokens never occur in the training transcripts gets
    no probability, and in joint decoding it then vetoes the LLM when the LLM proposes the
    word. Characters do not have that gap: a few thousand utterances show every letter many
    times, so the head spells unseen words by their sound, and the LLM, which knows how words
    are spelled, picks among the spellings in the joint search
    (:class:`slamasr.models.ctc_labels.CTCLabels`).

    It reads the encoder's frames at their own rate (50 Hz for Whisper): speech runs at
    ~15 characters a second, too many for CTC at the projector's 10 Hz. An auxiliary head
    (``slamasr.models.heads``) named ``char_ctc``.

    Args:
        input_dim: the encoder's width.
        alphabet: the characters, class ``i + 1`` = ``alphabet[i]`` (class 0 = blank). An
            alphabet in one case folds the transcripts (and the LLM's tokens) to that case.
        hidden_dim: width of the hidden layers.
        num_layers: hidden layers (Linear-ReLU each).
        context: frames on each side stacked with each frame before the first layer.
        weight: its loss's weight beside the LLM loss (``model.char_ctc.weight``).
    """

    name = "char_ctc"
    reads = "frames"

    def __init__(
        self,
        input_dim: int,
        alphabet: str = CHAR_ALPHABET,
        hidden_dim: int = 1024,
        num_layers: int = 2,
        context: int = 1,
        weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = weight
        self._warned_unspellable = False
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise ValueError(f"CTC alphabet {alphabet!r} is empty or repeats a character")
        self.alphabet = alphabet
        self.context = context
        self.index = {c: i + 1 for i, c in enumerate(alphabet)}
        single_case = alphabet.lower() == alphabet or alphabet.upper() == alphabet
        self._fold = (
            (str.lower if alphabet.lower() == alphabet else str.upper) if single_case else None
        )
        layers: list[nn.Module] = []
        width = input_dim * (2 * context + 1)
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
            width = hidden_dim
        layers.append(nn.Linear(width, 1 + len(alphabet)))
        self.net = nn.Sequential(*layers)

    def fold(self, text: str) -> str:
        """``text`` in the alphabet's case (unchanged for a mixed-case alphabet)."""
        return self._fold(text) if self._fold else text

    def encode(self, text: str) -> Optional[list[int]]:
        """Class ids of ``text`` (case-folded), or None when a character is not in the
        alphabet."""
        ids = [self.index.get(c) for c in self.fold(text)]
        return None if any(i is None for i in ids) else ids

    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` encoder frames -> ``(B, T, 1 + len(alphabet))``."""
        weight = self.net[0].weight
        x = frames.to(weight.dtype)
        if self.context:
            steps = x.shape[1]
            padded = F.pad(x, (0, 0, self.context, self.context))
            x = torch.cat([padded[:, i : i + steps] for i in range(2 * self.context + 1)], -1)
        return self.net(x)

    def loss(
        self, frames: torch.Tensor, lengths: torch.Tensor, texts: list[str]
    ) -> tuple[torch.Tensor, int]:
        """Mean over utterances of the CTC loss per character, and how many utterances were
        left out because a character of theirs is not in the alphabet (or they are empty)."""
        targets = [self.encode(t) for t in texts]
        keep = [i for i, t in enumerate(targets) if t]
        if not keep:
            return frames.sum() * 0.0, len(texts)
        index = torch.tensor(keep, device=frames.device)
        logp = F.log_softmax(self.logits(frames[index]).float(), dim=-1)
        flat = torch.tensor([c for i in keep for c in targets[i]], device=frames.device)
        loss = F.ctc_loss(
            logp.transpose(0, 1),
            flat,
            lengths[index].to(torch.long),
            torch.tensor([len(targets[i]) for i in keep], device=frames.device),
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )
        return loss, len(texts) - len(keep)

    def aux_loss(
        self, frames: torch.Tensor, lengths: torch.Tensor, transcripts: Transcripts
    ) -> tuple[torch.Tensor, int]:
        """:meth:`loss` and how many utterances it covered; a transcript with a character
        outside the alphabet is left out (warned once)."""
        texts = transcripts.texts
        loss, skipped = self.loss(frames, lengths, texts)
        if skipped and not self._warned_unspellable:
            self._warn_unspellable(texts, skipped)
        return loss, len(texts) - skipped

    def _warn_unspellable(self, texts: list[str], skipped: int) -> None:
        bad = [t for t in texts if t and self.encode(t) is None]
        why = (
            f"e.g. {bad[0]!r} has characters outside model.char_ctc.alphabet={self.alphabet!r}"
            if bad
            else "empty transcripts"
        )
        logger.warning(
            "character CTC head: %d of %d transcripts in a batch left out of its loss: %s "
            "(warned once)",
            skipped,
            len(texts),
            why,
        )
        self._warned_unspellable = True

    @torch.no_grad()
    def greedy(self, frames: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Best-path text per utterance (repeats merged, blanks removed, spaces collapsed)."""
        return self.texts(best_path(self.logits(frames), lengths))

    def texts(self, classes: list[list[int]]) -> list[str]:
        """Class ids (blank-free) per utterance -> text, runs of spaces collapsed."""
        return [" ".join("".join(self.alphabet[c - 1] for c in row).split()) for row in classes]

    def spell_tokens(self, tokenizer: Any, vocab_size: int) -> CTCLabels:
        """How each of the LLM's ``vocab_size`` tokens spells in this head's classes.

        A token's text is what it adds after an anchor token (``"a"``): decoding a token on
        its own drops a leading word-boundary space in sentencepiece-style tokenizers. At the
        start of a hypothesis that leading space is dropped. A token that adds nothing,
        whitespace only, a trailing space, a run of spaces, or a character outside the
        alphabet (after case folding) gets length 0 (unspellable); so do special tokens and
        ids the tokenizer does not know.
        """
        anchor = tokenizer.encode("a", add_special_tokens=False)
        base = tokenizer.decode(anchor, clean_up_tokenization_spaces=False)
        known = min(vocab_size, len(tokenizer))
        texts = tokenizer.batch_decode(
            [anchor + [token] for token in range(known)], clean_up_tokenization_spaces=False
        )
        start: list[list[int]] = []
        cont: list[list[int]] = []
        for text in texts + [""] * (vocab_size - known):
            piece = text[len(base) :] if text.startswith(base) else ""
            ok = piece.strip() != "" and "  " not in piece and not piece.endswith(" ")
            ids = self.encode(piece) if ok else None
            first = self.encode(piece[1:]) if ids and piece.startswith(" ") else ids
            cont.append(ids or [])
            start.append(first or [])
        return CTCLabels(*pad_ragged(start, 0), *pad_ragged(cont, 0))


def best_path(logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """CTC best path per utterance from ``(B, T, C)`` scores: the argmax classes of its
    valid positions, repeats merged, blanks (class 0) removed."""
    out = []
    for row, n in zip(logits.argmax(-1).tolist(), lengths.tolist()):
        classes, prev = [], 0
        for c in row[: int(n)]:
            if c != prev and c != 0:
                classes.append(c)
            prev = c
        out.append(classes)
    return out


def pad_ragged(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged id lists -> ``(N, max(1, longest))`` table padded with ``pad``, and the
    ``(N,)`` lengths."""
    width = max((len(r) for r in rows), default=0) or 1
    table = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        table[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return table, torch.tensor([len(r) for r in rows], dtype=torch.long)
