"""The two modes compared: slamasr's fast path (``ours``) and a reference-like path.

- ``ours``: the model ``build_model`` builds from the config (so whatever it attaches comes
  along), frozen-encoder outputs cached once, Whisper output trimmed to the real length,
  vocabulary logits only at supervised positions (``SlamASR.forward``), autocast in
  ``train.dtype``.
- ``reference``: the same frozen weights and the same initial projector, Whisper output
  untrimmed (1500 frames -> 300 LLM tokens per utterance), full-vocabulary logits at every
  position with Hugging Face's usual shifted cross-entropy (:class:`ReferenceSlamASR`), the
  LLM in fp32 without autocast.

Both train through the trainer's own step (:mod:`slamasr.benchmark.train`); the modes differ
only in the model's forward, the encoder's trimming, the dtype and the batches they get.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from slamasr.benchmark.flops import whisper_encoder_flops
from slamasr.models.encoders import WhisperSpeechEncoder
from slamasr.models.slam import IGNORE_INDEX, SlamASR

MODES = ("ours", "reference")
Batch = dict[str, Any]


@dataclass
class ModeSetup:
    """One mode's model and how it computes.

    Attributes:
        name: ours | reference.
        model: a SlamASR (shares frozen parts with the other mode where dtypes allow).
        compute_dtype: autocast dtype (fp32 = none); also picks the matmul peak for MFU.
        encoder_flops_per_utt: encoder FLOPs counted per training utterance.
    """

    name: str
    model: SlamASR
    compute_dtype: torch.dtype
    encoder_flops_per_utt: float

    @property
    def full_vocab(self) -> bool:
        """Whether the mode computes vocabulary logits at every position (the reference)."""
        return self.name == "reference"


def reference_loss(model: SlamASR, batch: Batch) -> dict[str, torch.Tensor]:
    """Reference-style loss: full-vocabulary logits at every position, shifted CE.

    Same contract as ``SlamASR.forward`` (loss, num_tokens, num_correct); the logits
    ``(B, L, V)`` are computed for all positions as the reference code does.
    """
    inputs = model.build_inputs(batch, with_targets=True, left_pad=False)
    labels = inputs.pop("labels")  # (B, L)
    logits = model.llm(**inputs, use_cache=False).logits  # (B, L, V)
    shifted = logits[:, :-1].float()  # (B, L-1, V)
    targets = labels[:, 1:]  # (B, L-1)
    loss = nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )
    selected = targets != IGNORE_INDEX
    correct = (shifted.argmax(-1)[selected] == targets[selected]).sum()
    return {"loss": loss, "num_tokens": selected.sum(), "num_correct": correct}


class ReferenceSlamASR(SlamASR):
    """The paper's model with the reference code's loss: :func:`reference_loss`.

    It cannot share ``SlamASR.forward``: the difference measured *is* the forward (dense
    ``(B, L, V)`` logits at every position instead of the supervised positions only). Built
    from the paper's five parts only (no auxiliary heads); trained by the same trainer step.
    """

    def forward(self, batch: Batch, llm_loss: bool = True) -> dict[str, torch.Tensor]:
        """The reference loss dict (``llm_loss=False`` has no meaning here and is refused)."""
        if not llm_loss:
            raise ValueError("the reference-like mode always trains on the LLM loss")
        return reference_loss(self, batch)


def untrimmed_encoder(encoder: WhisperSpeechEncoder) -> WhisperSpeechEncoder:
    """A wrapper over the same Whisper weights that pads to 30 s and keeps all 1500 frames."""
    return WhisperSpeechEncoder(encoder.encoder, pad_to_30s=True, trim_output=False, frozen=True)


def reference_llm(model: SlamASR, llm_cfg: Any, device: torch.device) -> nn.Module:
    """The reference's fp32 LLM: ``model.llm`` when already fp32, else loaded again in fp32.

    Loading again (rather than up-casting) keeps the reference's weights exactly fp32.
    """
    if next(model.llm.parameters()).dtype == torch.float32:
        return model.llm
    from slamasr.models.llm import load_llm

    llm, _ = load_llm(dataclasses.replace(llm_cfg, dtype="float32"), device)
    return llm


def _own_llm(model: SlamASR, ref_llm: nn.Module) -> nn.Module:
    """``ref_llm``, or a copy of it when it is ours' LLM with trainable weights (e.g. LoRA
    adapters): the reference freezes its LLM, which must not freeze ours."""
    if ref_llm is model.llm and any(p.requires_grad for p in ref_llm.parameters()):
        return copy.deepcopy(ref_llm)
    return ref_llm


def build_modes(
    model: SlamASR, seed: int, ours_dtype: torch.dtype, ref_llm: Optional[nn.Module] = None
) -> dict[str, ModeSetup]:
    """Both modes from one built model; both projectors start from the same weights.

    Args:
        model: ``build_model(cfg.model)`` with a Whisper encoder (trimming as configured).
        seed: seeds the projectors' (identical) initialization.
        ours_dtype: autocast dtype of the ours mode (``train.dtype`` resolved).
        ref_llm: fp32 LLM for the reference (default: ``model.llm``, which must be fp32).
    """
    if not isinstance(model.encoder, WhisperSpeechEncoder):
        raise ValueError("the reference-like mode is defined for Whisper encoders only")
    ref_llm = _own_llm(model, model.llm if ref_llm is None else ref_llm)
    if next(ref_llm.parameters()).dtype != torch.float32:
        raise ValueError("the reference-like mode needs an fp32 LLM")
    torch.manual_seed(seed)
    for lin in (m for m in model.projector.modules() if isinstance(m, nn.Linear)):
        lin.reset_parameters()
    projector_ref = copy.deepcopy(model.projector)
    model.encoder.trim_output = True
    ref_encoder = untrimmed_encoder(model.encoder)
    ref = ReferenceSlamASR(ref_encoder, projector_ref, ref_llm, model.tokenizer, model.template)
    return {
        "ours": ModeSetup("ours", model, ours_dtype, 0.0),
        "reference": ModeSetup(
            "reference", ref, torch.float32, whisper_encoder_flops(model.encoder)
        ),
    }
