#!/usr/bin/env python3
"""Measure LLM tokens per word and per second of transcripts, upper- vs lower-case, and how
many utterances a decoding bound ``max(min, ceil(per_second x seconds))`` would cut.

Decoding stops a hypothesis at that bound (EOS included; ``decode.max_new_tokens_per_second``,
``decode.min_new_tokens_bound``): this prints what the targets need, for choosing the bound
and the targets' case (``data.text_norm``). Text comes from Lhotse cut manifests (real
durations: per-utterance tokens/s), from a transcript file (``<id> <text>`` or one text per
line) or from English sampled by word frequency (``--wordfreq``, needs the ``wordfreq``
package; an offline stand-in for LibriSpeech text). Without durations an utterance's duration
is its word count over each ``--words-per-second`` rate (LibriSpeech averages about 2.7
(test-clean) to 2.85 (test-other) words/s; fast readers reach 4-5).

Usage:
    python tools/token_rate.py --tokenizer /path/ggml-vocab-llama-spm.gguf --wordfreq 2000
    python tools/token_rate.py --tokenizer models/vicuna-7b-v1.5 \
        --cuts data/manifests/librispeech_cuts_test-other.jsonl.gz [--json out.json]

``--tokenizer``: a Hugging Face tokenizer dir, or a ``.gguf`` file (a vocabulary-only GGUF
such as llama.cpp's ``models/ggml-vocab-llama-spm.gguf``, LLaMA-1/2's SentencePiece
vocabulary, also Vicuna's and TinyLlama's).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from slamasr.text import normalize_text

BOUNDS = {"old": (8.0, 16), "new": (20.0, 200)}  # name -> (tokens per second, minimum)
"""The decoding bounds compared: before and after issue 18 (per second, minimum)."""


@dataclass
class Utterance:
    """One transcript; ``seconds`` None when its duration is not known."""

    text: str
    seconds: Optional[float] = None


def load_tokenizer(path: str) -> Any:
    """A Hugging Face tokenizer from a dir, or from a (vocabulary-only) GGUF file."""
    from transformers import AutoTokenizer

    p = Path(path)
    if p.suffix == ".gguf":
        return AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    return AutoTokenizer.from_pretrained(str(p))


def read_cuts(manifest: str) -> list[Utterance]:
    """Transcripts and durations of a Lhotse cut manifest."""
    from lhotse import load_manifest

    out = []
    for cut in load_manifest(manifest):
        text = " ".join(s.text or "" for s in cut.supervisions)
        out.append(Utterance(text, float(cut.duration)))
    return out


def read_text(path: str) -> list[Utterance]:
    """One transcript per line; a leading ``<id>`` with a digit and a dash is dropped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        head, _, rest = line.partition(" ")
        text = rest if re.fullmatch(r"\S*\d\S*-\S*", head) else line
        if text.strip():
            out.append(Utterance(text))
    return out


def sample_wordfreq(count: int, words: int, seed: int = 0, vocab: int = 30000) -> list[Utterance]:
    """``count`` utterances of ``words`` English words drawn by frequency (``wordfreq``)."""
    import wordfreq

    pool = [w for w in wordfreq.top_n_list("en", vocab) if re.fullmatch(r"[a-z]+('[a-z]+)?", w)]
    weights = [wordfreq.word_frequency(w, "en") for w in pool]
    rng = random.Random(seed)
    return [Utterance(" ".join(rng.choices(pool, weights, k=words))) for _ in range(count)]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank rule."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def bound(seconds: float, per_second: float, minimum: int) -> int:
    """The decoding bound of an utterance (as ``slamasr.models.slam.new_token_bounds``)."""
    return max(minimum, math.ceil(seconds * per_second))


def measure_case(tok: Any, utts: list[Utterance], case: str, rates: list[float]) -> dict:
    """Token statistics of ``utts`` normalized to ``case`` (upper | lower)."""
    rows = []  # (words, tokens incl. EOS, seconds)
    for u in utts:
        text = normalize_text(u.text, case)
        if text:
            n = len(tok.encode(text, add_special_tokens=False)) + 1  # + EOS
            rows.append((len(text.split()), n, u.seconds))
    density = [(n - 1) / w for w, n, _ in rows]
    out: dict[str, Any] = {
        "case": case,
        "utterances": len(rows),
        "tokens_per_word": sum(n - 1 for _, n, _ in rows) / sum(w for w, _, _ in rows),
        "tokens_per_word_p99": percentile(density, 0.99),
        "tokens_per_word_max": max(density),
        "longest_tokens": max(n for _, n, _ in rows),
    }
    if all(s for _, _, s in rows):
        per_s = [n / s for _, n, s in rows]
        out["measured"] = {
            "words_per_second": sum(w for w, _, _ in rows) / sum(s for _, _, s in rows),
            "tokens_per_second": sum(n for _, n, _ in rows) / sum(s for _, _, s in rows),
            "tokens_per_second_p99": percentile(per_s, 0.99),
            "tokens_per_second_max": max(per_s),
            "cut": {k: sum(n > bound(s, *b) for _, n, s in rows) for k, b in BOUNDS.items()},
        }
    out["at_words_per_second"] = {
        f"{r:g}": {
            "tokens_per_second": out["tokens_per_word"] * r,
            "tokens_per_second_p99": out["tokens_per_word_p99"] * r,
            "cut": {k: sum(n > bound(w / r, *b) for w, n, _ in rows) for k, b in BOUNDS.items()},
        }
        for r in rates
    }
    return out


def table(results: list[dict]) -> str:
    """Markdown rows: one per (case, words/s assumption), plus measured rates when known."""
    head = (
        "| case | words/s | tokens/word (mean / p99) | tokens/s (mean / p99 density) | "
        "utterances cut: old / new bound |"
    )
    lines = [head, "|---|---|---|---|---|"]
    for r in results:
        dens = f"{r['tokens_per_word']:.2f} / {r['tokens_per_word_p99']:.2f}"
        if "measured" in r:
            m = r["measured"]
            lines.append(
                f"| {r['case']} | measured {m['words_per_second']:.2f} | {dens} | "
                f"{m['tokens_per_second']:.1f} / p99 {m['tokens_per_second_p99']:.1f} | "
                f"{m['cut']['old']} / {m['cut']['new']} of {r['utterances']} |"
            )
        for rate, a in r["at_words_per_second"].items():
            lines.append(
                f"| {r['case']} | {rate} (assumed) | {dens} | {a['tokens_per_second']:.1f} / "
                f"{a['tokens_per_second_p99']:.1f} | {a['cut']['old']} / {a['cut']['new']} "
                f"of {r['utterances']} |"
            )
    return "\n".join(lines) + "\n"


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="HF tokenizer dir or .gguf file")
    parser.add_argument("--cuts", action="append", default=[], help="Lhotse cut manifest")
    parser.add_argument("--text", action="append", default=[], help="transcript file")
    parser.add_argument("--wordfreq", type=int, default=0, help="sample this many utterances")
    parser.add_argument("--words", type=int, default=20, help="words per sampled utterance")
    parser.add_argument(
        "--words-per-second", type=float, nargs="+", default=[2.7, 2.85, 4.0, 5.0, 6.0]
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Print the table (and JSON); returns the exit status."""
    args = get_parser().parse_args(argv)
    utts: list[Utterance] = []
    for manifest in args.cuts:
        utts += read_cuts(manifest)
    for path in args.text:
        utts += read_text(path)
    if args.wordfreq:
        utts += sample_wordfreq(args.wordfreq, args.words)
    if not utts:
        print("token_rate.py: no text: give --cuts, --text or --wordfreq N", file=sys.stderr)
        return 1
    tok = load_tokenizer(args.tokenizer)
    results = [measure_case(tok, utts, c, args.words_per_second) for c in ("upper", "lower")]
    bounds = ", ".join(f"{k} max({m}, ceil({p:g} x s))" for k, (p, m) in BOUNDS.items())
    print(f"tokenizer {args.tokenizer} ({len(tok)} tokens); tokens include EOS; bounds: {bounds}")
    print(table(results), end="")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
