"""Write the word counts of a word prior (``decode.scorers.word_prior``): word<TAB>count lines.

Usage:
  python -m slamasr.bin.prepare_word_counts --out data/lang/word_counts.tsv --wordfreq en
  python -m slamasr.bin.prepare_word_counts --out data/lang/word_counts.tsv \
      --text lm_corpus.txt --cuts data/manifests/cuts_train.jsonl.gz --text-norm upper

Sources: general-English word frequencies of the ``wordfreq`` package (``--wordfreq``), the
lines of text files (``--text``), the transcripts of Lhotse cuts manifests (``--cuts``).
Several sources are interpolated (``--text-weight``: the share of the text/cuts counts).
Words are normalized like the transcripts (``--text-norm``); tokens with digits or other
symbols are skipped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

from slamasr.corpora.word_counts import (
    count_words,
    mix_counts,
    most_frequent,
    wordfreq_counts,
    write_word_counts,
)
from slamasr.logging_setup import setup_logging
from slamasr.text import normalize_text


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="word<TAB>count file to write")
    parser.add_argument("--wordfreq", default="", help="language of wordfreq's frequencies (en)")
    parser.add_argument("--wordlist", default="large", help="wordfreq list: large | best | small")
    parser.add_argument("--text", type=Path, action="append", default=[], help="text file")
    parser.add_argument("--cuts", type=Path, action="append", default=[], help="cuts manifest")
    parser.add_argument("--text-norm", default="lower", help="normalization: upper | lower | none")
    parser.add_argument(
        "--text-weight", type=float, default=0.5, help="share of --text/--cuts with --wordfreq"
    )
    parser.add_argument("--max-words", type=int, default=0, help="most frequent kept; 0 = all")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def read_texts(args: argparse.Namespace) -> list[str]:
    """Normalized lines of ``--text`` files and transcripts of ``--cuts`` manifests."""
    texts: list[str] = []
    for path in args.text:
        if not path.is_file():
            raise FileNotFoundError(f"--text {path}: no such file")
        with open(path, encoding="utf-8") as f:
            texts.extend(normalize_text(line, args.text_norm) for line in f)
    if args.cuts:
        from lhotse import load_manifest

        from slamasr.data.filters import cut_text

        for path in args.cuts:
            if not path.is_file():
                raise FileNotFoundError(f"--cuts {path}: no such file")
            texts.extend(cut_text(cut, args.text_norm) for cut in load_manifest(path))
    return texts


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    setup_logging()
    try:
        if not (args.wordfreq or args.text or args.cuts):
            raise ValueError("no source: give --wordfreq LANG, --text FILE and/or --cuts FILE")
        if not 0 <= args.text_weight <= 1:
            raise ValueError(f"--text-weight={args.text_weight}; must be in [0, 1]")
        if args.max_words < 0:
            raise ValueError("--max-words must be >= 0 (0 = all)")
        if args.out.exists() and not args.overwrite:
            raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
        parts, sources = [], []
        if args.wordfreq:
            general: dict[str, float] = {}
            for word, freq in wordfreq_counts(args.wordfreq, args.wordlist).items():
                word = normalize_text(word, args.text_norm)
                if word and " " not in word:
                    general[word] = general.get(word, 0.0) + freq
            parts.append((general, 1.0 - args.text_weight if args.text or args.cuts else 1.0))
            sources.append(f"wordfreq {args.wordfreq}/{args.wordlist}: {len(general)} words")
        if args.text or args.cuts:
            counted = count_words(read_texts(args))
            if not counted:
                raise ValueError("--text/--cuts hold no words")
            parts.append((counted, args.text_weight if args.wordfreq else 1.0))
            sources.append(f"text {[str(p) for p in args.text + args.cuts]}: {len(counted)} words")
        counts = mix_counts(parts)
        if args.max_words:
            counts = most_frequent(counts, args.max_words)
        header = "word counts for slamasr's word prior (decode.word_prior)\n" + "\n".join(sources)
        num = write_word_counts(args.out, counts, header)
    except (ValueError, ImportError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    logging.info("wrote %d words to %s (%s)", num, args.out, "; ".join(sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
