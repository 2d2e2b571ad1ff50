"""Model FLOPs of the useful work of a training step, and the sizes they are counted on.

Counted per utterance on its own (unpadded) length, matmuls only (norms, activations and
softmax are ignored):

- a linear layer ``in -> out`` costs ``2*in*out`` per token forward.  The LLM is frozen, so
  its backward computes input gradients only (``dX = dY W^T``: again ``2*in*out``) and no
  weight gradients (``dW = X^T dY`` would be another ``2*in*out``): backward = 1x forward;
- causal attention over ``L`` tokens: ``L(L+1)/2`` query-key pairs, ``2*A`` FLOPs each for
  ``Q K^T`` and ``2*A`` for ``P V`` (``A`` = heads x head_dim).  Its backward needs
  ``dQ, dK`` (from ``dS``) and ``dP, dV`` (from ``dO``), all activation gradients: 2x forward;
- LM head ``d -> V``: ours at supervised positions only (forward + input-gradient
  backward); reference at every position (the dense ``(B, L, V)`` logits and their gradient);
- projector (trainable): forward ``2*in*out`` per layer per frame; backward weight
  gradients for every layer and input gradients for all but the first (its input, the
  encoder frames, needs none);
- Whisper encoder forward (reference mode only; ours reads the cache, whose cost is the
  separately reported build): convs over 3000 input frames, linears and full (non-causal)
  attention over 1500 frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from slamasr.models.encoders import WhisperSpeechEncoder
from slamasr.models.slam import SlamASR

Batch = dict[str, Any]


@dataclass(frozen=True)
class LLMShape:
    """What the FLOP count needs to know about a decoder-only LM.

    Attributes:
        linear_params: sum of ``in*out`` over every linear layer of the decoder blocks.
        num_layers: decoder blocks.
        attn_width: query heads x head dim (``A``).
        hidden: model width ``d``.
        vocab: output vocabulary ``V`` (LM head ``d -> V``).
    """

    linear_params: int
    num_layers: int
    attn_width: int
    hidden: int
    vocab: int


def linear_params(module: nn.Module) -> int:
    """Sum of ``in_features * out_features`` over the ``nn.Linear`` layers in ``module``."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def llm_shape(llm: nn.Module) -> LLMShape:
    """Read an :class:`LLMShape` from a Hugging Face causal LM (its modules and config)."""
    cfg = llm.config
    head = llm.get_output_embeddings()
    decoder = llm.get_decoder()
    layers = getattr(decoder, "layers", None) or getattr(decoder, "h", None)
    if layers is None:
        raise ValueError(f"cannot find the decoder blocks of {type(llm).__name__}")
    hidden = int(getattr(cfg, "hidden_size", 0) or cfg.n_embd)
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", 0) or hidden // heads)
    params = sum(linear_params(layer) for layer in layers)
    if params == 0:
        raise ValueError(f"{type(llm).__name__} has no nn.Linear layers to count")
    return LLMShape(
        linear_params=params,
        num_layers=len(layers),
        attn_width=heads * head_dim,
        hidden=hidden,
        vocab=int(head.weight.shape[0]),
    )


def llm_forward_parts(shape: LLMShape, length: int, head_positions: int) -> tuple[float, ...]:
    """Forward FLOPs ``(linear, attention, head)`` of a decoder-only LM on one sequence.

    Args:
        shape: the LLM.
        length: tokens in the sequence ``L``.
        head_positions: positions whose vocabulary logits are computed.
    """
    linear = 2.0 * shape.linear_params * length
    attention = shape.num_layers * 4.0 * shape.attn_width * (length * (length + 1) / 2)
    head = 2.0 * shape.hidden * shape.vocab * head_positions
    return linear, attention, head


def llm_forward_flops(shape: LLMShape, length: int, head_positions: int) -> float:
    """FLOPs of a forward pass alone (dev loss, prefill)."""
    return sum(llm_forward_parts(shape, length, head_positions))


def llm_training_flops(shape: LLMShape, length: int, head_positions: int) -> float:
    """FLOPs of forward + input-gradient backward of a frozen LLM on one sequence.

    Returns:
        ``2*fwd_linear + 3*fwd_attention + 2*fwd_head`` (module docstring): linears and head
        need ``dX`` only (frozen weights), attention needs ``dQ, dK, dP, dV``.
    """
    linear, attention, head = llm_forward_parts(shape, length, head_positions)
    return 2.0 * linear + 3.0 * attention + 2.0 * head


def projector_training_flops(projector: nn.Module, frames: int) -> float:
    """Projector forward + backward FLOPs over ``frames`` downsampled frames.

    Forward ``2*in*out`` per linear; backward ``2*in*out`` (weight grad) for every linear plus
    ``2*in*out`` (input grad) for every linear but the first.
    """
    linears = [m for m in projector.modules() if isinstance(m, nn.Linear)]
    per_frame = 0.0
    for i, lin in enumerate(linears):
        cost = 2.0 * lin.in_features * lin.out_features
        per_frame += cost * (3.0 if i > 0 else 2.0)
    return per_frame * frames


def whisper_encoder_flops(encoder: WhisperSpeechEncoder) -> float:
    """Forward FLOPs of Whisper's encoder on one 30 s input (3000 mel frames -> 1500)."""
    enc = encoder.encoder
    in_frames = encoder.max_frames
    out_frames = in_frames // 2
    conv = 0.0
    for c, frames in ((enc.conv1, in_frames), (enc.conv2, out_frames)):
        conv += 2.0 * c.in_channels * c.kernel_size[0] * c.out_channels * frames
    linear = 2.0 * sum(linear_params(layer) for layer in enc.layers) * out_frames
    attention = len(enc.layers) * 4.0 * encoder.output_dim * out_frames**2
    return conv + linear + attention


@dataclass
class UtteranceCounts:
    """Sizes of one training utterance as the LLM sees it.

    Attributes:
        length: LLM tokens (template + speech + transcript + EOS).
        speech: projector output frames (speech tokens).
        supervised: tokens with a loss (transcript + EOS).
    """

    length: int
    speech: int
    supervised: int


def training_flops(
    counts: Iterable[UtteranceCounts],
    shape: LLMShape,
    projector: nn.Module,
    full_vocab: bool,
    encoder_flops_per_utt: float,
) -> float:
    """Model FLOPs of one training step over ``counts`` (module docstring).

    Args:
        counts: per-utterance sizes.
        shape: the LLM.
        projector: the projector (its linears are counted).
        full_vocab: logits at every position (reference) or supervised ones (ours).
        encoder_flops_per_utt: encoder forward FLOPs per utterance (0 when cached).
    """
    total = 0.0
    for c in counts:
        head = c.length if full_vocab else c.supervised
        total += llm_training_flops(shape, c.length, head)
        total += projector_training_flops(projector, c.speech)
        total += encoder_flops_per_utt
    return total


def encoder_output_lengths(model: SlamASR, batch: Batch) -> torch.Tensor:
    """Encoder frames per utterance ``(B,)`` as ``model.encode`` would return them."""
    if "encoder_frame_lengths" in batch:
        return batch["encoder_frame_lengths"].cpu()
    lengths = batch["input_lengths"].cpu()
    enc = model.encoder
    if isinstance(enc, WhisperSpeechEncoder):
        if enc.pad_to_30s and not enc.trim_output:
            return torch.full_like(lengths, enc.max_frames // 2)
        return (lengths + 1) // 2
    raise ValueError("the benchmark counts Whisper encoders or cached encoder frames only")


def utterance_counts(model: SlamASR, batch: Batch) -> list[UtteranceCounts]:
    """Per-utterance LLM sizes of a training batch (what ``build_inputs`` will build)."""
    rate = model.projector.downsample.rate
    frames = encoder_output_lengths(model, batch)
    out = []
    for i, text in enumerate(batch["texts"]):
        prompt = model.template.prompt_text(False, batch["cut_ids"][i])
        pieces = model.template.pieces(prompt)
        speech = int(frames[i]) // rate
        target = len(model.template.target_ids(text))
        out.append(
            UtteranceCounts(
                len(pieces.prefix) + speech + len(pieces.suffix) + target, speech, target
            )
        )
    return out
