"""Transcribe your own audio files with a trained experiment; prints ``<name>\\t<text>``.

Files of any sample rate and length: audio is resampled to 16 kHz; a voice-activity
detector (Silero VAD) keeps the speech, so silence and noise give an empty transcript
instead of invented text; speech longer than what the experiment trained on (its
``data.max_audio_seconds``, or Whisper's padding window: 10 s in the CPU recipe; at most
30 s) is cut into chunks at pauses, decoded in batches and joined; a phrase the model
repeats in a loop is kept once. Such events add a third field to the line,
``<name>\\t<text>\\t# <flags>`` (``no speech detected``, ``loop cut: 'the' x90``), and a
warning on stderr. Inputs are audio paths, a ``--list`` file of paths, or a Kaldi
``--wav-scp`` (``<utt-id> <path>``; the id names the output line). Unreadable files are
reported on stderr by name; the others are still transcribed and the exit status is 1.

Usage:
    python -m slamasr.bin.transcribe --exp-dir exp/whisper_tiny --checkpoint best \
        --num-beams 4 a.wav b.flac [--list files.txt] [--wav-scp data/wav.scp]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from slamasr.config import ConfigError
from slamasr.logging_setup import setup_logging
from slamasr.models.hub import ModelLoadError
from slamasr.transcribe import (
    AudioSource,
    Transcript,
    load_transcriber,
    read_path_list,
    read_wav_scp,
    sources_from_paths,
)


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (unset decode options come from the exp's config)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="audio files (wav, flac, mp3, ...)")
    parser.add_argument("--exp-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", default=None, help="best | last | step-N")
    parser.add_argument("--avg", type=int, default=None, help="average the last K checkpoints")
    parser.add_argument("--num-beams", type=int, default=None)
    parser.add_argument("--list", type=Path, default=None, help="file with one path per line")
    parser.add_argument("--wav-scp", type=Path, default=None, help="Kaldi wav.scp")
    parser.add_argument(
        "--max-chunk-seconds",
        type=float,
        default=None,
        help="longest chunk (default: what the exp trained on, see above; Whisper: <= 30)",
    )
    parser.add_argument(
        "--no-vad",
        action="store_true",
        help="decode all the audio, not only what the voice-activity detector calls speech",
    )
    parser.add_argument(
        "--keep-loops", action="store_true", help="do not cut phrases repeated in a loop"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="chunks decoded together")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override, repeatable (e.g. --set train.device=cpu)",
    )
    return parser


def collect_sources(args: argparse.Namespace) -> list[AudioSource]:
    """Positional files, then ``--list`` entries, then ``--wav-scp`` entries."""
    sources = sources_from_paths(args.files)
    if args.list:
        sources += read_path_list(args.list)
    if args.wav_scp:
        sources += read_wav_scp(args.wav_scp)
    if not sources:
        raise ConfigError("no input audio: pass files, --list or --wav-scp")
    return sources


def format_line(result: Transcript) -> str:
    """``name<TAB>text``, plus ``<TAB># flag; flag`` when something was flagged."""
    line = f"{result.name}\t{result.text}"
    return f"{line}\t# {'; '.join(result.flags)}" if result.flags else line


def print_results(results: Iterable[Transcript]) -> int:
    """Transcripts to stdout as they come, failures and flags to stderr; return the
    failure count."""
    failed = 0
    for result in results:
        if result.error is None:
            print(format_line(result), flush=True)
            for flag in result.flags:
                print(f"warning: {result.name}: {flag}", file=sys.stderr)
        else:
            failed += 1
            error = result.error
            print(
                f"error: {error if result.name in error else f'{result.name}: {error}'}",
                file=sys.stderr,
            )
    return failed


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status (1 if any file failed)."""
    args = get_parser().parse_args(argv)
    setup_logging(level=logging.WARNING)
    try:
        sources = collect_sources(args)
        transcriber = load_transcriber(
            args.exp_dir,
            checkpoint=args.checkpoint,
            avg=args.avg,
            num_beams=args.num_beams,
            overrides=args.overrides,
            batch_size=args.batch_size,
            speech_gate=not args.no_vad,
            loop_cutting=not args.keep_loops,
            **({"max_chunk_seconds": args.max_chunk_seconds} if args.max_chunk_seconds else {}),
        )
    except (ConfigError, ModelLoadError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 1 if print_results(transcriber.transcribe_iter(sources)) else 0


if __name__ == "__main__":
    sys.exit(main())
