"""SLAM-ASR: frozen speech encoder -> trainable projector -> frozen LLM.

Sequences: ``prefix | speech | suffix | target`` per utterance (see ``slamasr.models.llm``).
Position ids always count each utterance's own tokens from 0: training pads on the right,
inference pads on the left with ``position_ids = cumsum(attention_mask) - 1``, so an
utterance sees the same positions alone or in any batch.

Training minimises the LLM's cross entropy over the transcript's tokens (+ EOS). Auxiliary
heads beyond the paper (``slamasr.models.heads``) add their weighted losses beside it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import torch
from torch import nn

from slamasr.models.encoders import SpeechEncoder
from slamasr.models.heads import AuxiliaryHead, Transcripts
from slamasr.models.llm import PromptTemplate, decoder_and_head
from slamasr.models.projector import Projector

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

Stat = tuple[torch.Tensor, torch.Tensor]  # (sum, count) of a statistic over a batch


def _stat(mean: torch.Tensor, count: int | torch.Tensor) -> Stat:
    """A mean over ``count`` items as a detached float64 ``(sum, count)``."""
    count = torch.as_tensor(count)
    return mean.detach().double() * count, count


def _total(losses: Iterable[torch.Tensor]) -> torch.Tensor:
    """The sum of ``losses``, added left to right."""
    first, *rest = losses
    return sum(rest, first)


class SlamASR(nn.Module):
    """The SLAM-ASR model; see docs/internals.md for the contract.

    Args:
        encoder: speech encoder wrapper (frozen unless fine-tuned).
        projector: downsampler + projector (trainable).
        llm: a Hugging Face causal LM (frozen).
        tokenizer: its tokenizer.
        template: the prompt template.
        heads: auxiliary heads trained beside the projector (none in the paper); one that
            is not part of the projector is registered under its name (``char_ctc``).
    """

    def __init__(
        self,
        encoder: SpeechEncoder,
        projector: Projector,
        llm: nn.Module,
        tokenizer: Any,
        template: PromptTemplate,
        heads: Sequence[AuxiliaryHead] = (),
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector
        self.llm = llm
        self.tokenizer = tokenizer
        self.template = template
        self.aux_heads: dict[str, AuxiliaryHead] = {head.name: head for head in heads}
        for name, head in self.aux_heads.items():
            if not any(head is part for part in projector.modules()):
                self.add_module(name, head)  # type: ignore[arg-type]
        if "char_ctc" not in self.aux_heads:
            self.char_ctc = None
        self.llm.requires_grad_(False)
        self.llm.eval()

    # ----------------------------------------------------------------- modes and state

    def train(self, mode: bool = True) -> SlamASR:
        """Switch only the trainable parts; the frozen LLM (and frozen encoder) stay in eval."""
        super().train(mode)
        self.llm.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer gets: projector, auxiliary heads (+ encoder when not frozen)."""
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State of the trainable parts only, keys prefixed ``projector.`` (with its token CTC
        head), an auxiliary head's name (``char_ctc.``) or ``encoder.``."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        heads = tuple(f"{name}." for name in self.aux_heads if name in self._modules)
        prefixes = ("projector.", *heads) + (("encoder.",) if not self.encoder.frozen else ())
        return {
            k: v.detach().clone()
            for k, v in self.state_dict().items()
            if k.startswith(prefixes) or k in names
        }

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`trainable_state_dict` saved; missing or unknown keys raise
        (LoRA adapters that do not fit: :class:`~slamasr.models.lora.LoRAStateError`)."""
        from slamasr.models.lora import check_lora_state

        own = self.trainable_state_dict()
        check_lora_state(own, state)
        expected = set(own)
        got = set(state)
        if expected != got:
            raise KeyError(
                f"trainable state mismatch: missing {sorted(expected - got)[:5]}, "
                f"unexpected {sorted(got - expected)[:5]}"
            )
        self.load_state_dict(state, strict=False)

    @property
    def device(self) -> torch.device:
        """Device of the projector's weights."""
        return next(self.projector.parameters()).device

    # ----------------------------------------------------------------- encoding

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames ``(B, T_enc, D), (B,)``; ``encoder_frames`` are used when present."""
        if "encoder_frames" in batch:
            frames = batch["encoder_frames"].to(self.device)
            return frames, batch["encoder_frame_lengths"].to(self.device)
        inputs = batch["inputs"].to(self.device)
        return self.encoder(inputs, batch["input_lengths"].to(self.device))

    def embed_speech(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected speech embeddings ``(B, N, d_llm)`` and their lengths ``(B,)``."""
        return self.project(*self.encode(batch))

    def project(
        self, frames: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames ``(B, T, D), (B,)`` -> projected speech ``(B, N, d_llm), (B,)``."""
        speech, speech_lengths = self.projector(frames, lengths)  # (B, N, d_llm)
        if int(speech_lengths.min()) < 1:
            logger.warning("an utterance is shorter than one downsampled frame")
        return speech, speech_lengths

    # ----------------------------------------------------------------- sequences

    def _prompts(self, batch: dict[str, Any], training: bool) -> list[str]:
        count = len(batch["texts"]) if "texts" in batch else len(batch["cut_ids"])
        cut_ids = batch.get("cut_ids") or [""] * count
        return [self.template.prompt_text(training, cid) for cid in cut_ids]

    def _sequence(
        self, speech: torch.Tensor, prompt: str, target: Optional[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One utterance's embeddings ``(L, d)`` and labels ``(L,)``."""
        pieces = self.template.pieces(prompt)
        target = target or []
        embed = self.llm.get_input_embeddings()
        dev = embed.weight.device
        prefix = embed(torch.tensor(pieces.prefix, dtype=torch.long, device=dev))  # (P, d)
        suffix_ids = torch.tensor(pieces.suffix + target, dtype=torch.long, device=dev)
        suffix = embed(suffix_ids)  # (S + Y, d)
        seq = torch.cat([prefix, speech.to(prefix.dtype), suffix], dim=0)  # (L, d)
        labels = torch.full((seq.shape[0],), IGNORE_INDEX, dtype=torch.long, device=dev)
        if target:
            labels[-len(target) :] = torch.tensor(target, dtype=torch.long, device=dev)
        return seq, labels

    def build_inputs(
        self,
        batch: dict[str, Any],
        with_targets: bool,
        left_pad: bool,
        speech: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        targets: Optional[list[list[int]]] = None,
    ) -> dict[str, torch.Tensor]:
        """Embeddings, mask, position ids and labels for a batch.

        Args:
            speech: already projected ``(speech, lengths)``; computed when None.
            targets: the transcripts' token ids (``template.target_ids``); tokenized from
                ``batch["texts"]`` when None and ``with_targets``.

        Returns:
            dict with inputs_embeds ``(B, L, d)``, attention_mask ``(B, L)``,
            position_ids ``(B, L)`` and labels ``(B, L)``.
        """
        speech, lengths = speech if speech is not None else self.embed_speech(batch)  # (B, N, d)
        prompts = self._prompts(batch, training=with_targets and self.training)
        seqs, labels = [], []
        for i, prompt in enumerate(prompts):
            target = None
            if with_targets:
                target = (
                    targets[i]
                    if targets is not None
                    else self.template.target_ids(batch["texts"][i])
                )
            seq, lab = self._sequence(speech[i, : int(lengths[i])], prompt, target)
            seqs.append(seq)
            labels.append(lab)
        return pad_sequences(seqs, labels, left_pad)

    # ----------------------------------------------------------------- training

    def forward(self, batch: dict[str, Any], llm_loss: bool = True) -> dict[str, Any]:
        """Teacher-forced CE over the transcript's tokens + EOS, the paper's loss.

        Args:
            llm_loss: run the frozen LLM. False trains the auxiliary heads alone (the
                unweighted sum of their losses) and skips the LLM's forward and backward
                entirely (``train.ctc_only_steps``).

        Returns:
            ``loss``: what to minimise, ``ce + sum(head.weight * head loss)``; and per
            statistic a ``(sum, count)`` pair of detached tensors under its name: ``ce``
            (CE summed over the target tokens, their number), ``correct`` (argmax hits, the
            same tokens), and each head's loss (``ctc``, ``char_ctc``: summed over the
            utterances it covered, their number). Without the LLM: no ``ce``/``correct``.
        """
        if not llm_loss and not self.aux_heads:
            raise ValueError(
                "llm_loss=False trains the auxiliary heads alone, but the model has none: "
                "set model.projector.ctc_weight > 0 (or model.char_ctc.weight > 0)"
            )
        frames = self.encode(batch)  # (B, T, D), (B,)
        speech = self.project(*frames)  # (B, N, d), (B,)
        target_ids = [self.template.target_ids(text) for text in batch["texts"]]  # EOS included
        head_losses = self._head_losses(frames, speech, batch["texts"], target_ids)
        out: dict[str, Any] = {name: _stat(*loss) for name, loss in head_losses.items()}
        if not llm_loss:
            out["loss"] = _total(loss for loss, _ in head_losses.values())
            return out
        logits, gold = self._target_logits(batch, speech, target_ids)  # (N, V), (N,)
        ce = nn.functional.cross_entropy(logits.float(), gold)
        tokens = torch.tensor(gold.numel())
        out["ce"] = _stat(ce, tokens)
        out["correct"] = ((logits.argmax(-1) == gold).sum().detach(), tokens)
        weighted = [loss * self.aux_heads[name].weight for name, (loss, _) in head_losses.items()]
        out["loss"] = ce + _total(weighted) if weighted else ce
        return out

    def stat_names(self, llm_loss: bool = True) -> list[str]:
        """The statistics :meth:`forward` reports (besides ``loss``) in that mode."""
        return list(self.aux_heads) + (["ce", "correct"] if llm_loss else [])

    def _head_losses(
        self,
        frames: tuple[torch.Tensor, torch.Tensor],
        speech: tuple[torch.Tensor, torch.Tensor],
        texts: list[str],
        target_ids: list[list[int]],
    ) -> dict[str, tuple[torch.Tensor, int]]:
        """Each auxiliary head's (mean loss, utterances covered) on what it reads."""
        if not self.aux_heads:
            return {}
        eos = self.template.eos_id
        transcripts = Transcripts(
            texts=texts,
            token_ids=[ids[:-1] if ids and ids[-1] == eos else ids for ids in target_ids],
            token_embedding=self.llm.get_input_embeddings().weight,
        )
        inputs = {"frames": frames, "speech": speech}
        return {
            name: head.aux_loss(*inputs[head.reads], transcripts)
            for name, head in self.aux_heads.items()
        }

    def _target_logits(
        self,
        batch: dict[str, Any],
        speech: tuple[torch.Tensor, torch.Tensor],
        target_ids: list[list[int]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The LLM's logits ``(N, V)`` at the positions that predict a target token, and
        those tokens ``(N,)``."""
        inputs = self.build_inputs(batch, True, left_pad=False, speech=speech, targets=target_ids)
        labels = inputs.pop("labels")  # (B, L)
        targets = labels[:, 1:]  # (B, L-1): token t+1 predicted at position t
        selected = targets != IGNORE_INDEX  # (B, L-1)
        return self._supervised_logits(inputs, selected), targets[selected]

    def _supervised_logits(
        self, inputs: dict[str, torch.Tensor], selected: torch.Tensor
    ) -> torch.Tensor:
        """Vocabulary logits ``(N, V)`` only at positions ``selected`` ``(B, L-1)``."""
        decoder = decoder_and_head(self.llm)
        if decoder is None:
            logits = self.llm(**inputs, use_cache=False).logits  # (B, L, V)
            return logits[:, :-1][selected]
        base, head = decoder
        hidden = base(**inputs, use_cache=False).last_hidden_state  # (B, L, H)
        return head(hidden[:, :-1][selected])  # (N, V)

    # ----------------------------------------------------------------- inference

    @torch.no_grad()
    def generate_ids(
        self,
        batch: dict[str, Any],
        num_beams: int = 4,
        max_new_tokens_per_second: float = 8.0,
        min_new_tokens_bound: int = 16,
        length_penalty: float = 1.0,
        repetition_penalty: float = 1.0,
        search: str = "native",
        scorers: Sequence[Any] = (),
        rescorers: Sequence[Any] = (),
        bound_hits: Optional[list[bool]] = None,
    ) -> list[list[int]]:
        """Beam search (greedy for ``num_beams=1``); token ids per utterance, EOS removed.

        Each utterance's hypothesis is bounded by its own
        ``max(min_new_tokens_bound, ceil(duration * max_new_tokens_per_second))`` tokens, EOS
        included (:func:`new_token_bounds`); ``bound_hits``, when given, is extended with one
        flag per utterance: True where the hypothesis ran into that bound without an EOS
        (:func:`bound_hit_flags`). ``search="native"`` runs
        :func:`slamasr.decoding.search.beam_search` (the prompt once per utterance, each
        utterance stops at its bound); ``"hf"`` runs ``transformers``' ``generate`` to the
        batch's largest bound and cuts each row at its own (reference behaviour, slower).
        ``scorers`` / ``rescorers`` (native search; not in the paper) are those of
        :mod:`slamasr.decoding.scorers` / :mod:`slamasr.decoding.rescore`, built for this
        model.
        """
        from slamasr.decoding.rescore import rescore_nbest
        from slamasr.decoding.scorers import SearchContext
        from slamasr.decoding.search import beam_search

        if search not in ("native", "hf"):
            raise ValueError(f"search={search!r}; choose native or hf (ctc: slamasr.decoding)")
        if (scorers or rescorers) and search != "native":
            raise ValueError(f"decoding scorers and rescorers need search=native, not {search!r}")
        bounds = new_token_bounds(batch, max_new_tokens_per_second, min_new_tokens_bound)
        frames, frame_lengths = self.encode(batch)
        speech, lengths = self.project(frames, frame_lengths)
        inputs = self.build_inputs(
            batch, with_targets=False, left_pad=True, speech=(speech, lengths)
        )
        inputs.pop("labels")
        eos = self.template.eos_id
        if search == "hf":
            ids = self._hf_generate(inputs, bounds, num_beams, length_penalty, repetition_penalty)
            return _with_bound_hits(ids, bounds, bound_hits)
        ctx = SearchContext(self, frames, frame_lengths, speech, lengths, num_beams, eos)
        for scorer in scorers:
            scorer.start(ctx)
        found = beam_search(
            self.llm, inputs["inputs_embeds"], inputs["attention_mask"], inputs["position_ids"],
            bounds, num_beams, eos, length_penalty, repetition_penalty,
            scorers=scorers, nbest=bool(rescorers),
        )  # fmt: skip
        if rescorers:
            found = rescore_nbest(found, list(rescorers))
        return _with_bound_hits(found, bounds, bound_hits)

    def _hf_generate(
        self,
        inputs: dict[str, torch.Tensor],
        bounds: list[int],
        num_beams: int,
        length_penalty: float,
        repetition_penalty: float,
    ) -> list[list[int]]:
        """``transformers``' beam search to the largest bound, each row cut at its own."""
        from transformers import GenerationConfig

        eos, pad = self.template.eos_id, self.tokenizer.pad_token_id
        gen_cfg = GenerationConfig(
            num_beams=num_beams,
            max_new_tokens=max(bounds),
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=eos if pad is None else pad,
            length_penalty=length_penalty,
            repetition_penalty=repetition_penalty,
        )
        out = self.llm.generate(**inputs, generation_config=gen_cfg)  # (B, <= max_new)
        return [cut_at_eos(row.tolist(), eos)[:bound] for row, bound in zip(out, bounds)]

    def generate(self, batch: dict[str, Any], **kwargs: Any) -> list[str]:
        """Decoded hypotheses in batch order (special tokens skipped, stripped).

        Keyword arguments are those of :meth:`generate_ids`.
        """
        return ids_to_texts(self.tokenizer, self.generate_ids(batch, **kwargs))


def ids_to_texts(tokenizer: Any, ids: list[list[int]]) -> list[str]:
    """Token ids -> texts (special tokens skipped, stripped)."""
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def new_token_bounds(batch: dict[str, Any], per_second: float, min_bound: int) -> list[int]:
    """Per-utterance cap on generated tokens (EOS included) from audio duration:
    ``max(min_bound, ceil(duration * per_second))``; ``min_bound`` without durations."""
    durations = batch.get("durations")
    if durations is None:
        count = len(batch.get("cut_ids") or batch["texts"])
        return [min_bound] * count
    return [max(min_bound, math.ceil(float(d) * per_second)) for d in durations]


def bound_hit_flags(ids: list[list[int]], bounds: Optional[list[int]]) -> list[bool]:
    """Which hypotheses ran into their new-token bound: a bound counts the EOS, so a
    hypothesis that ended with an EOS holds at most ``bound - 1`` tokens and one holding
    ``bound`` (or more) was cut there. No bounds (a CTC probe): none hit."""
    if bounds is None:
        return [False] * len(ids)
    return [len(hyp) >= bound for hyp, bound in zip(ids, bounds)]


def _with_bound_hits(
    ids: list[list[int]], bounds: Optional[list[int]], out: Optional[list[bool]]
) -> list[list[int]]:
    """Return ``ids``, extending ``out`` (when given) with :func:`bound_hit_flags`."""
    if out is not None:
        out.extend(bound_hit_flags(ids, bounds))
    return ids


def cut_at_eos(ids: list[int], eos: int) -> list[int]:
    """Drop EOS and everything after it."""
    return ids[: ids.index(eos)] if eos in ids else ids


def pad_sequences(
    seqs: list[torch.Tensor], labels: list[torch.Tensor], left_pad: bool
) -> dict[str, torch.Tensor]:
    """Stack variable-length ``(L_i, d)`` sequences with consistent position ids.

    Args:
        seqs: per-utterance embeddings.
        labels: per-utterance labels.
        left_pad: pad on the left (inference) instead of the right (training).

    Returns:
        inputs_embeds ``(B, L, d)``, attention_mask ``(B, L)``, position_ids ``(B, L)``,
        labels ``(B, L)``; padding has mask 0, label -100, embedding 0.
    """
    batch, width = len(seqs), max(s.shape[0] for s in seqs)
    ref = seqs[0]
    embeds = ref.new_zeros(batch, width, ref.shape[1])
    mask = torch.zeros(batch, width, dtype=torch.long, device=ref.device)
    lab = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long, device=ref.device)
    for i, (seq, lb) in enumerate(zip(seqs, labels)):
        n = seq.shape[0]
        span = slice(width - n, width) if left_pad else slice(0, n)
        embeds[i, span] = seq
        mask[i, span] = 1
        lab[i, span] = lb
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, L): 0.. over each utterance's tokens
    return {
        "inputs_embeds": embeds,
        "attention_mask": mask,
        "position_ids": positions,
        "labels": lab,
    }
