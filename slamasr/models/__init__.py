"""SLAM-ASR model: encoders, downsampler+projector, LLM+template, and the SlamASR module.

Usage::

    from slamasr.models import build_model
    model = build_model(cfg.model, device="cpu")
    out = model(batch)            # {"loss": tensor, "ce": (sum, count), "correct": ..., ...}
    hyps = model.generate(batch)  # list[str]
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from slamasr.models.config import ModelConfig
from slamasr.models.ctc import CharCTCHead
from slamasr.models.encoders import build_encoder
from slamasr.models.llm import PromptTemplate, load_llm
from slamasr.models.lora import apply_lora
from slamasr.models.projector import build_projector
from slamasr.models.slam import SlamASR

logger = logging.getLogger(__name__)

__all__ = ["SlamASR", "build_model", "count_parameters"]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (only those with requires_grad if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu") -> SlamASR:
    """Build encoder, LLM, projector and template from the ``model:`` section.

    Args:
        cfg: the model config (validated here).
        device: where every part lives.

    Returns:
        A SlamASR module; only the projector (and a non-frozen encoder, LoRA adapters) trains.
    """
    cfg.validate()
    encoder = build_encoder(cfg.encoder, device)
    llm, tokenizer = load_llm(cfg.llm, device)
    embedding = llm.get_input_embeddings()
    llm_dim = embedding.embedding_dim
    with torch.no_grad():  # RMS of the LLM's token embeddings: the scale text enters at
        text_rms = float(embedding.weight.float().pow(2).mean().sqrt())
    projector = build_projector(cfg.projector, encoder.output_dim, llm_dim, text_rms)
    projector = projector.to(device)
    template = PromptTemplate(tokenizer, cfg.prompt, add_bos=cfg.llm.add_bos)
    heads = [projector.ctc] if projector.ctc is not None else []  # auxiliary, not the paper
    if cfg.char_ctc.weight > 0:
        char = cfg.char_ctc
        heads.append(
            CharCTCHead(
                encoder.output_dim,
                char.alphabet,
                char.hidden_dim,
                char.num_layers,
                char.context,
                weight=char.weight,
            ).to(device)
        )
    model = SlamASR(encoder, projector, llm, tokenizer, template, heads=heads)
    apply_lora(model.llm, cfg.lora)  # adapters on the frozen LLM (model.lora; off by default)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    logger.info(
        "SlamASR: encoder %s (%d-d, %.0f Hz), LLM %d-d; %d trainable parameters in %d tensors",
        cfg.encoder.name,
        encoder.output_dim,
        encoder.frame_rate_hz,
        llm_dim,
        count_parameters(model, trainable_only=True),
        len(names),
    )
    return model
