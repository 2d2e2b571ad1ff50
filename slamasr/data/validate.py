"""Check a whole cut manifest before training: every problem, counted by kind, with cut ids.

Problems (any of them makes ``validate_data`` exit non-zero):

- ``missing_audio``: an audio source file does not exist
- ``unreadable_audio``: its header cannot be read (corrupt, not audio)
- ``duration_mismatch``: the file is shorter than the cut claims (by > 10 ms)
- ``missing_features``: the cut's feature storage does not exist
- ``unsafe_id``: the cut id is empty or holds whitespace/control characters, so it cannot be
  one field of a text line (``recogs-*.txt``); see ``slamasr.data.ids``
- the training filter's kinds: ``empty_text``, ``too_short``, ``too_long``,
  ``too_many_chars_per_second``, ``too_few_frames``, ``no_features``, ``no_recording``
  (see ``slamasr.data.filters``)
- a manifest without any cut is a problem too (``0 cuts checked; PROBLEMS FOUND``)

``validate_manifest(path, cfg, num_jobs)`` reads a manifest file in chunks of cuts and checks
them in ``num_jobs`` processes; the report (kinds, ids, their order) is the same for any
``num_jobs``. Manifests with command/url audio sources are refused first, as by ``load_cuts``.

Notes (reported, not problems, since the pipeline handles them): ``resampled`` (recording
not at 16 kHz), ``text_changed_by_normalization`` (normalization did more than change the case:
punctuation, non-ASCII letters, odd whitespace).
"""

from __future__ import annotations

import functools
import itertools
import json
import multiprocessing
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import soundfile as sf
from lhotse import CutSet
from lhotse.serialization import deserialize_item

from slamasr.data.config import DataConfig
from slamasr.data.filters import cut_problems
from slamasr.data.ids import id_problem
from slamasr.data.manifests import check_audio_sources, manifest_lines
from slamasr.text import collapse_whitespace, normalize_text

NOTE_KINDS = ("resampled", "text_changed_by_normalization")
# Workers only parse JSON and read audio headers (no torch/OpenMP), so forking is safe and
# saves each worker the seconds of re-importing torch and Lhotse that "spawn" costs.
_START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
_DURATION_TOLERANCE = 0.01


@dataclass
class ValidationReport:
    """Cut ids by problem kind (``problems``) and by note kind (``notes``)."""

    num_cuts: int = 0
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def ok(self) -> bool:
        """True when there were cuts to check and no problem was found."""
        return self.num_cuts > 0 and not any(self.problems.values())

    def merge(self, other: ValidationReport) -> None:
        """Append ``other`` (the report of the cuts that follow this report's cuts)."""
        self.num_cuts += other.num_cuts
        for mine, theirs in ((self.problems, other.problems), (self.notes, other.notes)):
            for kind, ids in theirs.items():
                mine[kind].extend(ids)

    def format(self, max_ids: int = 20) -> str:
        """Human-readable report: counts by kind, then up to ``max_ids`` ids per kind."""
        lines = [f"{self.num_cuts} cuts checked; {'OK' if self.ok else 'PROBLEMS FOUND'}"]
        if not self.num_cuts:
            lines[0] += " (the manifest holds no cuts)"
        for title, table in (("problem", self.problems), ("note", self.notes)):
            for kind, ids in sorted(table.items()):
                shown = " ".join(ids[:max_ids]) + (" ..." if len(ids) > max_ids else "")
                lines.append(f"{title} {kind}: {len(ids)} cut(s): {shown}")
        return "\n".join(lines)


def _audio_problem(cut) -> str | None:
    """Read the headers of a cut's audio files (file sources); else try decoding it."""
    rec = cut.recording
    if rec is None:
        return None
    sources = [s for s in rec.sources if s.type == "file"]
    if len(sources) < len(rec.sources):  # command/url/memory sources: decode to check
        try:
            cut.load_audio()
        except Exception:
            return "unreadable_audio"
        return None
    for src in sources:
        path = Path(src.source)
        if not path.is_file():
            return "missing_audio"
        try:
            info = sf.info(str(path))
        except Exception:
            return "unreadable_audio"
        if info.duration + _DURATION_TOLERANCE < rec.duration:
            return "duration_mismatch"
    return None


def _features_problem(cut) -> str | None:
    """Feature storage must exist (file or directory) when a cut has features."""
    if not cut.has_features:
        return None
    if not Path(cut.features.storage_path).exists():
        return "missing_features"
    return None


def _notes(cut, cfg: DataConfig) -> list[str]:
    """Note kinds for a cut."""
    out = []
    if cut.has_recording and cut.recording.sampling_rate != 16000:
        out.append("resampled")
    raw = collapse_whitespace(" ".join((s.text or "") for s in cut.supervisions))
    normalized = normalize_text(raw, cfg.text_norm)
    if normalized.casefold() != raw.casefold():  # beyond a change of case
        out.append("text_changed_by_normalization")
    return out


def validate_cuts(cuts: CutSet, cfg: DataConfig, check_audio: bool = True) -> ValidationReport:
    """Check every cut; collect all problems instead of stopping at the first.

    Args:
        cuts: The cuts (read once, lazily).
        cfg: Data config (limits, text_norm, input_kind).
        check_audio: Read each audio file's header (audio is checked for every input kind,
            since features are computed from it).

    Returns:
        The report.
    """
    report = ValidationReport()
    for cut in cuts:
        report.num_cuts += 1
        found = [*cut_problems(cut, cfg), _features_problem(cut)]
        if id_problem(cut.id):
            found.append("unsafe_id")
        if check_audio:
            found.append(_audio_problem(cut))
        for kind in dict.fromkeys(k for k in found if k):
            report.problems[kind].append(cut.id)
        for kind in _notes(cut, cfg):
            report.notes[kind].append(cut.id)
    return report


def _validate_lines(lines: list[str], cfg: DataConfig, check_audio: bool) -> ValidationReport:
    """Worker: validate the cuts serialized in ``lines`` (one JSON object each)."""
    cuts = CutSet.from_cuts(deserialize_item(json.loads(line)) for line in lines)
    return validate_cuts(cuts, cfg, check_audio)


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive lists of ``size`` lines (the last one shorter)."""
    it = iter(lines)
    while chunk := list(islice(it, size)):
        yield chunk


def _ordered_pool_map(pool: ProcessPoolExecutor, fn, items: Iterable, window: int) -> Iterator:
    """``fn(item)`` in ``pool`` for each item, results in input order, <= ``window`` pending."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def validate_manifest(
    path: str | Path,
    cfg: DataConfig,
    num_jobs: int = 1,
    check_audio: bool = True,
    chunk_size: int = 500,
) -> ValidationReport:
    """Validate a manifest file in chunks of ``chunk_size`` cuts over ``num_jobs`` processes.

    Args:
        path: A cut manifest (jsonl/jsonl.gz).
        cfg: Data config (limits, text_norm, input_kind, allow_command_sources).
        num_jobs: Worker processes; 1 checks in this process. The report does not depend
            on it (chunks are merged in manifest order).
        check_audio: Read each audio file's header.
        chunk_size: Cuts per task.

    Raises:
        FileNotFoundError: no such manifest.
        UnsafeManifestError: command/url audio sources without ``cfg.allow_command_sources``.
    """
    if num_jobs < 1:
        raise ValueError(f"num_jobs={num_jobs}: use >= 1")
    if not Path(path).is_file():
        raise FileNotFoundError(f"cut manifest not found: {path}")
    check_audio_sources(path, cfg.allow_command_sources)
    report = ValidationReport()
    chunks = _chunks(manifest_lines(path), chunk_size)
    head = list(islice(chunks, 2))
    chunks = itertools.chain(head, chunks)
    if num_jobs == 1 or len(head) < 2:  # a single chunk is not worth starting processes
        for chunk in chunks:
            report.merge(_validate_lines(chunk, cfg, check_audio))
        return report
    ctx = multiprocessing.get_context(_START_METHOD)
    with ProcessPoolExecutor(num_jobs, mp_context=ctx) as pool:
        work = functools.partial(_validate_lines, cfg=cfg, check_audio=check_audio)
        for part in _ordered_pool_map(pool, work, chunks, window=2 * num_jobs):
            report.merge(part)
    return report
