"""Lhotse manifests: LibriSpeech (download + recipe), Kaldi data dirs and TSV lists -> cuts.

Files written (LibriSpeech, one set per part)::

    <out>/librispeech_recordings_<part>.jsonl.gz    (Lhotse's recipe)
    <out>/librispeech_supervisions_<part>.jsonl.gz  (Lhotse's recipe)
    <out>/librispeech_cuts_<part>.jsonl.gz          (CutSet.from_manifests)

    <out>/librispeech_cuts_train-960.jsonl.gz       (train parts, shuffled: shuffle_combine)

A cut covering one utterance has the utterance's id. Cuts are read back lazily
(``load_cuts``). Recordings not at 16 kHz get a resampling transform
(``cut.resample(16000)``), applied when audio is loaded.

Audio source policy: a Lhotse recording source of type ``command`` runs a shell command
when its audio is read, and ``url`` fetches from the network. ``load_cuts`` (every
manifest-reading entry point goes through it) refuses manifests holding such sources unless
the user opts in (``allow_command_sources=True``; ``data.allow_command_sources: true``;
``--allow-command-sources``). The check reads the manifest's text; it runs nothing.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.kaldi import load_kaldi_data_dir, load_kaldi_text_mapping
from lhotse.recipes import download_librispeech, prepare_librispeech

SAMPLE_RATE = 16000
LIBRISPEECH_BASE_URL = "https://www.openslr.org/resources"
LIBRISPEECH_PARTS = (
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
)


REFUSED_SOURCE_TYPES = {"command": "run a shell command", "url": "fetch a URL"}  # when read
_SOURCE_HINTS = ("command", "url", "\\")  # a refused type is spelled out or \u-escaped


class CorpusDownloadError(RuntimeError):
    """The corpus could not be downloaded; the message says where to place it instead."""


class UnsafeManifestError(ValueError):
    """A manifest holds audio sources that would run a command or fetch a URL when read."""


def manifest_lines(path: str | Path) -> Iterator[str]:
    """The non-blank lines of a jsonl or jsonl.gz manifest, one JSON object each."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line


def _refused_sources(item, refused: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(recording id, source type) of every refused audio source anywhere in ``item``."""
    if isinstance(item, dict):
        sources = item.get("sources")
        if isinstance(sources, list):
            for src in sources:
                if isinstance(src, dict) and src.get("type") in refused:
                    yield str(item.get("id", "?")), str(src["type"])
        for value in item.values():
            yield from _refused_sources(value, refused)
    elif isinstance(item, list):
        for value in item:
            yield from _refused_sources(value, refused)


def check_audio_sources(path: str | Path, allow_command_sources: bool = False) -> None:
    """Refuse a manifest whose recordings have ``command`` or ``url`` audio sources.

    Only lines that could hold such a source (containing ``command``, ``url`` or a JSON
    escape) are parsed, so a 281k-cut manifest is checked in seconds. Nothing is run.

    Args:
        path: A jsonl(.gz) manifest of cuts or recordings.
        allow_command_sources: The user's opt-in: accept every source type.

    Raises:
        UnsafeManifestError: naming the cut, the recording, the source type and the manifest.
    """
    if allow_command_sources:
        return
    for lineno, line in enumerate(manifest_lines(path), 1):
        if not any(hint in line for hint in _SOURCE_HINTS):
            continue
        item = json.loads(line)
        for rec_id, kind in _refused_sources(item, REFUSED_SOURCE_TYPES):
            raise UnsafeManifestError(
                f"{path}:{lineno}: cut {item.get('id', '?')!r} (recording {rec_id!r}) has a "
                f"{kind!r} audio source, which would {REFUSED_SOURCE_TYPES[kind]} when read"
                "; refused. If you trust this manifest, pass --allow-command-sources "
                "(config: data.allow_command_sources=true)"
            )


def load_cuts(path: str | Path, allow_command_sources: bool = False) -> CutSet:
    """Open a CutSet manifest lazily (jsonl/jsonl.gz) after checking its audio sources.

    Args:
        path: The manifest.
        allow_command_sources: Accept ``command``/``url`` audio sources (see the module doc).

    Raises:
        FileNotFoundError: the manifest does not exist.
        UnsafeManifestError: it holds command/url sources and no opt-in was given.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cut manifest not found: {path}")
    check_audio_sources(path, allow_command_sources)
    return CutSet.from_jsonl_lazy(path)


def shuffle_combine(inputs: Sequence[str | Path], output: str | Path, seed: int = 42) -> int:
    """Concatenate manifests and write their cuts in one seeded random order.

    Like icefall's ``train-all-shuf``: LibriSpeech's train-960 is clean-100, clean-360 and
    other-500 in that order, and a sampler that shuffles within a buffer of 20k cuts would
    see half an epoch of clean speech, then other. The lines are shuffled as text (no cut is
    parsed), so 281k cuts take a few hundred MB at most. Written atomically.

    Args:
        inputs: jsonl(.gz) manifests.
        output: The combined manifest (``.jsonl.gz`` is gzipped).
        seed: Seed of the permutation (same inputs + seed -> same file).

    Returns:
        The number of cuts written.
    """
    lines = [ln if ln.endswith("\n") else ln + "\n" for p in inputs for ln in manifest_lines(p)]
    random.Random(seed).shuffle(lines)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + f".tmp{os.getpid()}")
    opener = gzip.open if output.name.endswith(".gz") else open
    try:
        with opener(tmp, "wt", encoding="utf-8") as f:
            f.writelines(lines)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return len(lines)


def resample_cut(cut, sample_rate: int = SAMPLE_RATE):
    """Return ``cut`` resampled to ``sample_rate`` when it is at another rate."""
    if cut.has_recording and cut.sampling_rate != sample_rate:
        return cut.resample(sample_rate)
    return cut


def _id_from_supervision(cut):
    """Name a single-supervision cut after its utterance (``1089-134686-0000``)."""
    if len(cut.supervisions) == 1:
        cut.id = cut.supervisions[0].id
    return cut


def _part_present(part_dir: Path) -> bool:
    """A LibriSpeech part is usable if Lhotse marked it complete or it holds transcripts."""
    if (part_dir / ".completed").is_file():
        return True
    return part_dir.is_dir() and next(part_dir.rglob("*.trans.txt"), None) is not None


def download_librispeech_parts(
    dl_dir: str | Path,
    parts: Sequence[str],
    base_url: str = LIBRISPEECH_BASE_URL,
    timeout: float = 30.0,
) -> Path:
    """Download the missing LibriSpeech parts with Lhotse's downloader.

    Parts already under ``<dl_dir>/LibriSpeech/<part>`` are not downloaded again.

    Args:
        dl_dir: Download directory; the corpus lands in ``<dl_dir>/LibriSpeech``.
        parts: Part names, e.g. ``["dev-clean", "test-other"]``.
        base_url: OpenSLR resources URL.
        timeout: Socket timeout (seconds) so that a dead network fails fast.

    Returns:
        The corpus directory ``<dl_dir>/LibriSpeech``.

    Raises:
        CorpusDownloadError: when any part cannot be downloaded.
    """
    dl_dir = Path(dl_dir)
    corpus_dir = dl_dir / "LibriSpeech"
    missing = [p for p in parts if not _part_present(corpus_dir / p)]
    if not missing:
        return corpus_dir
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        download_librispeech(dl_dir, dataset_parts=missing, base_url=base_url)
    except Exception as e:  # urllib/socket/tar errors all mean the same to the user
        raise CorpusDownloadError(
            f"cannot download LibriSpeech from {base_url}/12 ({type(e).__name__}: {e}); "
            f"place the corpus at {corpus_dir} (parts: {', '.join(missing)}) "
            "or pass --corpus-dir"
        ) from None
    finally:
        socket.setdefaulttimeout(old_timeout)
    return corpus_dir


def librispeech_cuts_path(output_dir: str | Path, part: str) -> Path:
    """Path of the cut manifest of one LibriSpeech part."""
    return Path(output_dir) / f"librispeech_cuts_{part}.jsonl.gz"


def prepare_librispeech_manifests(
    corpus_dir: str | Path,
    output_dir: str | Path,
    parts: Sequence[str],
    num_jobs: int = 1,
) -> dict[str, Path]:
    """Run Lhotse's LibriSpeech recipe and write one cut manifest per part.

    Args:
        corpus_dir: The ``LibriSpeech`` directory (holding ``<part>/<spk>/<chapter>/``).
        output_dir: Where the ``librispeech_*_<part>.jsonl.gz`` manifests go.
        parts: Part names to prepare.
        num_jobs: Threads for Lhotse's recipe.

    Returns:
        part -> path of its cut manifest.
    """
    corpus_dir, output_dir = Path(corpus_dir), Path(output_dir)
    absent = [p for p in parts if not (corpus_dir / p).is_dir()]
    if absent:
        raise FileNotFoundError(f"LibriSpeech parts {absent} not found under {corpus_dir}")
    manifests = prepare_librispeech(
        corpus_dir, dataset_parts=list(parts), output_dir=output_dir, num_jobs=num_jobs
    )
    out: dict[str, Path] = {}
    for part in parts:
        path = librispeech_cuts_path(output_dir, part)
        if not path.is_file():
            m = manifests[part]
            cuts = CutSet.from_manifests(m["recordings"], m["supervisions"])
            cuts.map(_id_from_supervision).map(resample_cut).to_file(path)
        logging.info("LibriSpeech %s: %s", part, path)
        out[part] = path
    return out


def _whole_recording_supervisions(data_dir: Path, recordings: RecordingSet) -> SupervisionSet:
    """Without ``segments`` each ``text`` line (``<rec-id> <transcript>``) spans its recording."""
    text_path = data_dir / "text"
    if not text_path.is_file():
        raise FileNotFoundError(f"{data_dir}: no 'text' file; transcripts are required")
    texts = load_kaldi_text_mapping(text_path, must_exist=True)
    return SupervisionSet.from_segments(
        SupervisionSegment(
            id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration, text=texts[rec.id]
        )
        for rec in recordings
        if rec.id in texts
    )


def cuts_from_kaldi_dir(data_dir: str | Path, sampling_rate: int = SAMPLE_RATE) -> CutSet:
    """Kaldi data dir (``wav.scp`` + ``text`` [+ ``segments``]) -> CutSet at 16 kHz.

    Args:
        data_dir: The directory; ``wav.scp`` lines are ``<rec-id> <path or command |>``.
        sampling_rate: The sample rate of the audio listed in ``wav.scp``.

    Returns:
        An eager CutSet, one cut per utterance (named by the utterance id).
    """
    data_dir = Path(data_dir)
    recordings, supervisions, _ = load_kaldi_data_dir(data_dir, sampling_rate=sampling_rate)
    if supervisions is None:
        supervisions = _whole_recording_supervisions(data_dir, recordings)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cuts = cuts.trim_to_supervisions(keep_overlapping=False)
    return cuts.map(_id_from_supervision).map(resample_cut)


def _read_tsv(path: Path) -> list[tuple[str, str]]:
    """Lines ``audio_path<TAB>transcript`` (relative paths are relative to the list)."""
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{lineno}: expected 'audio_path<TAB>transcript'")
        audio, text = line.split("\t", 1)
        audio_path = Path(audio.strip())
        if not audio_path.is_absolute():
            audio_path = path.parent / audio_path
        rows.append((str(audio_path), text.strip()))
    return rows


def cuts_from_tsv(list_path: str | Path) -> tuple[CutSet, list[str]]:
    """A ``audio_path<TAB>transcript`` list -> CutSet at 16 kHz (one cut per file).

    The recording id is the audio file's stem (made unique with the line number when
    stems repeat). Files that cannot be opened are skipped and returned.

    Args:
        list_path: The TSV file.

    Returns:
        (cuts, unreadable audio paths).
    """
    recordings, supervisions, bad = [], [], []
    seen: set[str] = set()
    for i, (audio, text) in enumerate(_read_tsv(Path(list_path))):
        rec_id = Path(audio).stem if Path(audio).stem not in seen else f"{Path(audio).stem}-{i}"
        try:
            rec = Recording.from_file(audio, recording_id=rec_id)
        except Exception as e:
            logging.warning("skipping unreadable audio %s: %s", audio, e)
            bad.append(audio)
            continue
        seen.add(rec_id)
        recordings.append(rec)
        supervisions.append(
            SupervisionSegment(
                id=rec_id, recording_id=rec_id, start=0.0, duration=rec.duration, text=text
            )
        )
    cuts = CutSet.from_manifests(
        RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions)
    )
    return cuts.map(_id_from_supervision).map(resample_cut), bad
