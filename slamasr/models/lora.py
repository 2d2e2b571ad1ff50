"""LoRA adapters on the frozen LLM (``model.lora``; not in the paper, off by default).

The adapters are injected in place with ``peft.inject_adapter_in_model``: ``model.llm`` stays
the Hugging Face model (no ``PeftModel`` wrapper), so ``decoder_and_head(llm)``, generation and
the embedding lookups work unchanged. Each adapted linear layer ``q_proj`` becomes a peft
``lora.Linear`` whose frozen weight moves to ``q_proj.base_layer.weight`` and whose adapter
weights are ``q_proj.lora_A.default.weight`` ``(r, in)`` and ``q_proj.lora_B.default.weight``
``(out, r)``. They require grad, so :meth:`SlamASR.trainable_state_dict` saves them (keys
``llm.…lora_A…``) beside the projector: checkpoints, resume, ``decode.avg`` and decoding
handle them like the projector's weights.

Usage::

    from slamasr.models.lora import apply_lora
    apply_lora(model.llm, cfg.lora)  # after the LLM is frozen; returns the adapter size
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import torch
from torch import nn

from slamasr.models.config import LoRAConfig
from slamasr.models.hub import ModelLoadError

logger = logging.getLogger(__name__)

ADAPTER = "default"  # peft's adapter name; it appears in the parameter names
_KEY = re.compile(r"(?:^|\.)([^.]+)\.lora_([AB])\." + ADAPTER + r"\.weight$")


class LoRAStateError(ValueError):
    """Saved LoRA adapters do not fit the model's (present in one only, or another rank)."""


def apply_lora(llm: nn.Module, cfg: LoRAConfig) -> int:
    """Inject trainable LoRA adapters into the frozen ``llm`` in place.

    Call it after the LLM was frozen: only the adapters come out requiring grad. They are
    kept in float32 (as the projector is) whatever the LLM's dtype.

    Args:
        llm: a Hugging Face causal LM.
        cfg: the ``model.lora`` section; rank 0 = nothing to do.

    Returns:
        The number of adapter parameters (0 when ``cfg.rank`` is 0).

    Raises:
        ModelLoadError: peft is not installed, or none of ``cfg.target_modules`` names a
            layer of ``llm`` (one line each, saying what to do).
    """
    cfg.validate()
    if cfg.rank == 0:
        return 0
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as e:
        raise ModelLoadError(
            f"model.lora.rank={cfg.rank} needs the peft package: pip install peft (or pip "
            'install -e ".[lora]"), or set model.lora.rank=0'
        ) from e
    peft_cfg = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=0.0,
        target_modules=list(cfg.target_modules),
        bias="none",
    )
    try:
        inject_adapter_in_model(peft_cfg, llm, adapter_name=ADAPTER)
    except ValueError as e:  # peft's NoMatchingPeftModuleError is a ValueError
        raise ModelLoadError(
            f"model.lora.target_modules={list(cfg.target_modules)} matches no layer of the LLM "
            f"({e}); its linear layers are named {linear_layer_names(llm)}"
        ) from e
    params = adapter_parameters(llm)
    for param in params:
        param.data = param.data.float()
        param.requires_grad_(True)
    count = sum(p.numel() for p in params)
    logger.info(
        "LoRA: rank %d, alpha %g (scale %g) on %s: %d adapter parameters in %d tensors",
        cfg.rank,
        cfg.alpha,
        cfg.alpha / cfg.rank,
        ", ".join(cfg.target_modules),
        count,
        len(params),
    )
    return count


def adapter_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The LoRA adapter weights inside ``module`` (empty without adapters)."""
    return [p for name, p in module.named_parameters() if _KEY.search(name)]


def linear_layer_names(llm: nn.Module) -> list[str]:
    """Sorted distinct last name parts of ``llm``'s linear layers (what target_modules names)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in llm.named_modules() if _is_linear(m)})


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"  # GPT-2's linear


def describe_adapters(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """``rank 8 on q_proj, v_proj (8 tensors)`` for a state's LoRA keys, or ``none``."""
    found = [
        (m.group(1), m.group(2), shape) for k, shape in shapes.items() if (m := _KEY.search(k))
    ]
    if not found:
        return "none"
    ranks = sorted({shape[0] if ab == "A" else shape[-1] for _, ab, shape in found})
    targets = sorted({name for name, _, _ in found})
    rank = "rank " + "/".join(str(r) for r in ranks)
    return f"{rank} on {', '.join(targets)} ({len(found)} tensors)"


def check_lora_state(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> None:
    """Refuse a state whose LoRA adapters differ from the model's in names or shapes.

    Args:
        expected: the model's ``trainable_state_dict()``.
        state: what is about to be loaded (a checkpoint's trainable weights).

    Raises:
        LoRAStateError: one line naming both sides' adapters and what to do.
    """
    want = {k: tuple(v.shape) for k, v in expected.items() if _KEY.search(k)}
    got = {k: tuple(v.shape) for k, v in state.items() if _KEY.search(k)}
    if want == got:
        return
    raise LoRAStateError(
        f"the checkpoint's LoRA adapters ({describe_adapters(got)}) do not fit the model's "
        f"({describe_adapters(want)}): build the model with the model.lora settings the "
        "checkpoint was trained with (the experiment's config.yaml)"
    )
