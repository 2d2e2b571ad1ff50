"""Encoder input features with Lhotse, computed once and stored with LilcomChunkyWriter.

Kinds:

- ``whisper_mel``: Lhotse's ``WhisperFbank`` (80 or 128 mels), the same computation as
  Whisper's / Hugging Face's ``WhisperFeatureExtractor`` on the *unpadded* audio:
  STFT n_fft=400, hop=160 (100 frames/s), log10 mel, floored at ``max - 8`` where the max is
  taken over this utterance, then ``(x + 4) / 4``. Stored time-major ``(T, n_mels)``.
- ``fbank``: Lhotse's Kaldi-compatible ``Fbank``, 80 bins, 25 ms window, 10 ms shift.

Frame count convention (both kinds): ``T = (S + 80) // 160`` for ``S`` samples at 16 kHz,
i.e. ``round(S / 160)`` with halves up (Lhotse's ``compute_num_frames``). Hugging Face
gives ``S // 160`` frames; when ``S % 160 >= 80`` Lhotse's WhisperFbank appends one
extra frame filled with 0.0. All other frames match HF within float tolerance. The dataset
(``slamasr.data.dataset``) drops that frame, so whisper_mel inputs have HF's ``S // 160``
frames; note that HF's 30 s-padded features differ from the unpadded ones only in the last
real frame (its STFT window sees zeros instead of reflected audio).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter, WhisperFbank
from lhotse.features.base import FeatureExtractor
from lhotse.features.whisper_fbank import WhisperFbankConfig

from slamasr.data.manifests import load_cuts, resample_cut

FEATURE_KINDS = ("whisper_mel", "fbank")
FRAME_SHIFT_SECONDS = 0.01  # 100 frames per second for both kinds


def make_extractor(kind: str, n_mels: int = 80) -> FeatureExtractor:
    """Build the Lhotse feature extractor for ``kind``.

    Args:
        kind: ``whisper_mel`` or ``fbank``.
        n_mels: Mel bins for whisper_mel (80 or 128); fbank is always 80-d.

    Returns:
        A Lhotse FeatureExtractor (CPU).
    """
    if kind == "whisper_mel":
        if n_mels not in (80, 128):
            raise ValueError(f"whisper_mel needs n_mels 80 or 128, got {n_mels}")
        return WhisperFbank(WhisperFbankConfig(num_filters=n_mels, device="cpu"))
    if kind == "fbank":
        return Fbank(FbankConfig(num_mel_bins=80))
    raise ValueError(f"feature kind {kind!r}; choose one of {list(FEATURE_KINDS)}")


def _check_none_dropped(cuts_in: CutSet, cuts_out: CutSet, manifest: Path) -> None:
    """Raise if Lhotse skipped cuts (it drops a cut whose audio fails to load, with a warning)."""
    done = set(cuts_out.ids)
    missing = [cid for cid in cuts_in.ids if cid not in done]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise RuntimeError(
            f"{len(missing)} cut(s) of {manifest} got no features because their audio could "
            f"not be loaded (see the warnings above): {shown}. Fix or remove those recordings "
            "(python -m slamasr.bin.validate_data checks a manifest) and run again; nothing "
            "was written to the output manifest."
        )


def _set_torch_threads(threads: int) -> None:
    """Worker initializer: ``threads`` intra-op and inter-op torch threads in this process."""
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


def num_frames(num_samples: int, hop: int = 160) -> int:
    """Frames Lhotse stores for ``num_samples`` samples: ``(S + hop // 2) // hop``."""
    return (num_samples + hop // 2) // hop


def compute_features(
    cuts_in: str | Path,
    out_dir: str | Path,
    kind: str,
    n_mels: int = 80,
    num_jobs: int = 1,
    worker_threads: int = 1,
    allow_command_sources: bool = False,
) -> Path:
    """Compute and store features for a cut manifest (skipped if the output exists).

    Args:
        cuts_in: Input cut manifest, e.g. ``data/manifests/librispeech_cuts_dev-clean.jsonl.gz``.
        out_dir: Feature directory (e.g. ``data/fbank``); gets ``<name>_<kind>.lca`` storage
            and the manifest ``<name>_<kind>.jsonl.gz`` of cuts with features attached.
        kind: ``whisper_mel`` or ``fbank``.
        n_mels: Mel bins for whisper_mel.
        num_jobs: Worker processes (a progress bar is shown), each running torch on
            ``worker_threads`` threads. With torch's default (one thread per core) in every
            worker, 2 workers on 2 cores took 71 s for the CPU recipe's 8,000 train cuts,
            against 29 s for one process and 23 s for 2 one-thread workers
            (``python -m slamasr.bin.benchmark_features``, docs/benchmark.md).
        worker_threads: torch threads of each worker when ``num_jobs`` > 1; 0 leaves
            torch's default.
        allow_command_sources: read recordings with command/url audio sources (refused
            otherwise, see ``slamasr.data.manifests.load_cuts``).

    Cut ids never name files here: Lhotse keys each stored array by a fresh uuid4, and
    ``LilcomChunkyWriter`` keeps them all in one file per job (``<name>_<kind>.lca``),
    addressed by byte offsets (tests/test_encoder_cache.py feeds it ``..``/absolute ids).

    Returns:
        Path of the cut manifest with features.
    """
    if worker_threads < 0:
        raise ValueError(f"worker_threads={worker_threads}: use >= 1, or 0 for torch's default")
    cuts_in, out_dir = Path(cuts_in), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = cuts_in.name.split(".")[0]
    suffix = kind if kind == "fbank" else f"{kind}{n_mels}"
    cuts_out = out_dir / f"{name}_{suffix}.jsonl.gz"
    if cuts_out.is_file():
        logging.info("%s exists; skipping feature extraction", cuts_out)
        return cuts_out
    extractor = make_extractor(kind, n_mels)
    cuts = load_cuts(cuts_in, allow_command_sources).to_eager().map(resample_cut)
    logging.info("computing %s for %d cuts of %s", suffix, len(cuts), cuts_in)
    executor, threads = None, torch.get_num_threads()
    if num_jobs > 1:
        torch.set_num_threads(1)  # the parent only splits and gathers (and Lhotse checks it)
        executor = ProcessPoolExecutor(
            num_jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=functools.partial(_set_torch_threads, worker_threads)
            if worker_threads > 0
            else None,
        )
    try:
        with_feats = cuts.compute_and_store_features(
            extractor=extractor,
            storage_path=out_dir / f"{name}_{suffix}",
            num_jobs=num_jobs,
            storage_type=LilcomChunkyWriter,
            executor=executor,
            progress_bar=True,
        ).to_eager()
    finally:
        if executor is not None:
            executor.shutdown()
            torch.set_num_threads(threads)
    _check_none_dropped(cuts, with_feats, cuts_in)
    with_feats.to_file(cuts_out)
    return cuts_out
