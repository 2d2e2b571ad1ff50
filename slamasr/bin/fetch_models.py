"""Fetch the pretrained encoder and LLM that a config names into the Hugging Face cache.

Stage 0 of a recipe calls this once; training and decoding then load the same ids from the
cache (no network needed later).  Local directories are checked, not fetched.

Usage:
    python -m slamasr.bin.fetch_models --config conf/slam_asr.yaml
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from slamasr.config import ConfigError, load_config

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--cache-dir", default=None, help="HF cache dir (default: HF_HOME)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser


def model_sources(config_path: str, overrides: list[str]) -> list[tuple[str, str]]:
    """Return ``(role, path-or-id)`` for every pretrained model the config needs."""
    cfg = load_config(config_path, overrides)
    sources = [("llm", cfg.model.llm.path)]
    if cfg.model.encoder.name != "fbank":
        sources.insert(0, (f"encoder ({cfg.model.encoder.name})", cfg.model.encoder.path))
    return sources


def fetch(repo_or_dir: str, cache_dir: str | None) -> str:
    """Make ``repo_or_dir`` available locally; return where it is.

    Raises:
        RuntimeError: the id cannot be fetched (no network, unknown id, no access).
    """
    if Path(repo_or_dir).is_dir():
        return repo_or_dir
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_or_dir, cache_dir=cache_dir, etag_timeout=10)
    except Exception as e:  # noqa: BLE001 - any hub failure gets the same advice
        raise RuntimeError(
            f"cannot fetch '{repo_or_dir}' from the Hugging Face hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0]}). Check the network and access rights (gated models "
            f"such as LLaMA-2 need `huggingface-cli login`), or download it elsewhere and set "
            f"the config's path to the local directory."
        ) from None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s",
    )
    args = get_parser().parse_args(argv)
    try:
        sources = model_sources(args.config, args.overrides)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    for role, src in sources:
        try:
            where = fetch(src, args.cache_dir)
        except RuntimeError as e:
            log.error("%s: %s", role, e)
            return 1
        log.info("%s: %s -> %s", role, src, where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
