"""Check a whole cut manifest before training: every problem, counted by kind, with cut ids.

Problems (any of them makes ``validate_data`` exit non-zero):

- ``missing_audio``: an audio source file does not exist
- ``unreadable_audio``: its header cannot be read (corrupt, not audio)
- ``duration_mismatch``: the file is shorter than the cut claims (by > 10 ms)
- ``missing_features``: the cut's feature storage does not exist
- the training filter's kinds: ``empty_text``, ``too_short``, ``too_long``,
  ``too_few_frames``, ``no_features``, ``no_recording`` (see ``slamasr.data.filters``)

Notes (reported, not problems, since the pipeline handles them): ``resampled`` (recording
not at 16 kHz), ``text_changed_by_normalization`` (normalization did more than change the case:
punctuation, non-ASCII letters, odd whitespace).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from lhotse import CutSet

from slamasr.data.config import DataConfig
from slamasr.data.filters import cut_problems
from slamasr.text import collapse_whitespace, normalize_text

NOTE_KINDS = ("resampled", "text_changed_by_normalization")
_DURATION_TOLERANCE = 0.01


@dataclass
class ValidationReport:
    """Cut ids by problem kind (``problems``) and by note kind (``notes``)."""

    num_cuts: int = 0
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not any(self.problems.values())

    def format(self, max_ids: int = 20) -> str:
        """Human-readable report: counts by kind, then up to ``max_ids`` ids per kind."""
        lines = [f"{self.num_cuts} cuts checked; {'OK' if self.ok else 'PROBLEMS FOUND'}"]
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
        if check_audio:
            found.append(_audio_problem(cut))
        for kind in dict.fromkeys(k for k in found if k):
            report.problems[kind].append(cut.id)
        for kind in _notes(cut, cfg):
            report.notes[kind].append(cut.id)
    return report
