"""Fetch the pretrained encoder and LLM that a config names into the Hugging Face cache.

Stage 0 of a recipe calls this once; training and decoding then load the same ids from the
cache (no network needed later).  Local directories are checked, not fetched.

Only the files a PyTorch loader reads are fetched (config, tokenizer and preprocessor files,
and the weights: ``*.safetensors`` when the repo has them, else ``pytorch_model*.bin``), never
the TensorFlow/Flax/ONNX copies.  Weights that come only as ``.bin`` pickles are converted
once to ``.safetensors`` beside them, so that each training rank memory-maps them instead of
unpickling (``--no-convert`` skips it).  Offline (``HF_HUB_OFFLINE=1``) only the cache is
consulted; an unreachable hub fails within ``--timeout`` seconds.

Usage:
    python -m slamasr.bin.fetch_models --config conf/slam_asr.yaml
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from slamasr.config import ConfigError, load_config
from slamasr.logging_setup import setup_logging
from slamasr.models.hub import hub_offline

log = logging.getLogger(__name__)

# what a transformers loader reads besides the weights (config, tokenizer, preprocessor)
LOADABLE = ["*.json", "*.model", "*.txt", "*.tiktoken", "*.py"]
# never wanted, even where a pattern above would match (e.g. onnx/config.json)
NEVER = ["*.h5", "*.msgpack", "*.onnx", "*.onnx_data", "*.ot", "*.tflite", "*.mlmodel",
         "tf_*", "flax_*", "onnx/*", "coreml/*", "openvino/*", "*.gguf"]
BIN_INDEX = "pytorch_model.bin.index.json"
SAFE_INDEX = "model.safetensors.index.json"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--cache-dir", default=None, help="HF cache dir (default: HF_HOME)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the hub's file list"
    )
    parser.add_argument(
        "--no-convert", action="store_true", help="keep .bin weights (no safetensors copy)"
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser


def model_sources(config_path: str, overrides: list[str]) -> list[tuple[str, str, Optional[str]]]:
    """Return ``(role, path-or-id, gguf file or None)`` for every pretrained model needed."""
    cfg = load_config(config_path, overrides)
    sources = [("llm", cfg.model.llm.path, cfg.model.llm.gguf_file or None)]
    if cfg.model.encoder.name != "fbank":
        sources.insert(0, (f"encoder ({cfg.model.encoder.name})", cfg.model.encoder.path, None))
    return sources


def weight_patterns(files: list[str], gguf_file: Optional[str] = None) -> list[str]:
    """``allow_patterns`` for one repo: loadable small files plus one copy of the weights.

    Args:
        files: the repo's file list (``HfApi().list_repo_files``).
        gguf_file: a GGUF file the config loads instead of the weights.

    Raises:
        RuntimeError: the repo has no PyTorch weights (only TensorFlow/Flax/ONNX).
    """
    if gguf_file:
        return LOADABLE + [gguf_file]
    top = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in NEVER)]
    for pattern in ("model*.safetensors", "*.safetensors", "pytorch_model*.bin"):
        if any(fnmatch.fnmatch(f, pattern) for f in top):
            return LOADABLE + [pattern]
    raise RuntimeError(
        "the repo has no PyTorch weights (*.safetensors or pytorch_model*.bin); "
        f"its files: {', '.join(sorted(files)[:20])}"
    )


def call_with_timeout(fn: Callable[[], Any], seconds: float, what: str) -> Any:
    """Run ``fn`` in a daemon thread; raise TimeoutError after ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer from the Hugging Face hub for {what} in {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _hub_error(repo: str, e: BaseException) -> RuntimeError:
    first = (str(e).splitlines() or [""])[0]
    return RuntimeError(
        f"cannot fetch '{repo}' from the Hugging Face hub ({type(e).__name__}: {first}). "
        f"Check the network and access rights (gated models such as LLaMA-2 need "
        f"`huggingface-cli login`), or download it elsewhere and set the config's path to "
        f"the local directory."
    )


def fetch(
    repo_or_dir: str,
    cache_dir: Optional[str],
    gguf_file: Optional[str] = None,
    timeout: float = 60.0,
) -> str:
    """Make ``repo_or_dir`` available locally; return where it is.

    Raises:
        RuntimeError: the id cannot be fetched (offline and not cached, no network, unknown
            id, no access, no PyTorch weights).
    """
    if Path(repo_or_dir).expanduser().is_dir():
        return str(Path(repo_or_dir).expanduser())
    from huggingface_hub import HfApi, snapshot_download

    if hub_offline():
        try:
            return snapshot_download(repo_or_dir, cache_dir=cache_dir, local_files_only=True)
        except Exception:  # noqa: BLE001 - not in the cache
            raise RuntimeError(
                f"'{repo_or_dir}' is not in the Hugging Face cache and the hub is offline "
                f"(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set): fetch it on a machine with "
                f"network, or set the config's path to a local directory"
            ) from None
    try:
        files = call_with_timeout(
            lambda: HfApi().list_repo_files(repo_or_dir), timeout, repo_or_dir
        )
        patterns = weight_patterns(files, gguf_file)
        log.info("%s: fetching %s", repo_or_dir, " ".join(patterns))
        return snapshot_download(
            repo_or_dir,
            cache_dir=cache_dir,
            allow_patterns=patterns,
            ignore_patterns=NEVER,
            etag_timeout=10,
        )
    except Exception as e:  # noqa: BLE001 - any hub failure gets the same advice
        raise _hub_error(repo_or_dir, e) from None


def _bin_shards(model_dir: Path) -> list[str]:
    index = model_dir / BIN_INDEX
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return sorted(set(weight_map.values()))
    return ["pytorch_model.bin"] if (model_dir / "pytorch_model.bin").is_file() else []


def _save_safetensors(state: dict[str, Any], path: Path) -> None:
    """Save a state dict atomically; tensors sharing storage are copied (safetensors)."""
    from safetensors.torch import save_file

    seen: set[int] = set()
    tensors = {}
    for name, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr()
        tensors[name] = tensor.contiguous() if ptr not in seen else tensor.clone().contiguous()
        seen.add(ptr)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


def convert_bin_to_safetensors(model_dir: Path) -> list[Path]:
    """Write ``.safetensors`` copies of a checkpoint's ``pytorch_model*.bin`` weights.

    A directory that already has safetensors weights is left alone.  Sharded checkpoints keep
    their sharding (``model-0000i-of-0000n.safetensors`` + ``model.safetensors.index.json``,
    written last so a half-done conversion is never picked up).  transformers prefers the
    safetensors files, which every rank memory-maps.

    Returns:
        The files written (empty when nothing needed converting).
    """
    import torch

    model_dir = Path(model_dir)
    if list(model_dir.glob("*.safetensors")):
        return []
    shards = _bin_shards(model_dir)
    if not shards:
        return []
    written: list[Path] = []
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards, start=1):
        name = (
            "model.safetensors" if len(shards) == 1
            else f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        )
        state = torch.load(model_dir / shard, map_location="cpu", weights_only=True, mmap=True)
        _save_safetensors(state, model_dir / name)
        weight_map.update(dict.fromkeys(state, name))
        written.append(model_dir / name)
        log.info("converted %s -> %s", model_dir / shard, name)
    if len(shards) > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        tmp = model_dir / (SAFE_INDEX + ".tmp")
        tmp.write_text(json.dumps(index, indent=2), encoding="utf-8")
        os.replace(tmp, model_dir / SAFE_INDEX)
        written.append(model_dir / SAFE_INDEX)
    return written


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        sources = model_sources(args.config, args.overrides)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    for role, src, gguf_file in sources:
        try:
            where = fetch(src, args.cache_dir, gguf_file, args.timeout)
        except RuntimeError as e:
            log.error("%s: %s", role, e)
            return 1
        log.info("%s: %s -> %s", role, src, where)
        if not args.no_convert and not gguf_file:
            convert_bin_to_safetensors(Path(where))
    return 0


if __name__ == "__main__":
    sys.exit(main())
