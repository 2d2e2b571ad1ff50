"""Training-time cut filtering: skip unusable cuts with a warning and a reported count.

``filter_cuts_for_training(cuts, cfg)`` wraps ``cuts.filter(...)`` (lazy; runs as the
sampler reads cuts) with a ``CutFilter`` that checks manifest metadata only (no file I/O):

=========================  ==========================================================
empty_text                 transcript empty after ``normalize_text(text, cfg.text_norm)``
too_short                  duration < ``cfg.min_audio_seconds`` (less than one projector
                           frame)
too_long                   duration > ``cfg.max_audio_seconds`` (Whisper takes 30 s)
too_many_chars_per_second  normalized transcript longer than ``cfg.max_chars_per_second``
                           characters per second of audio (100: ~4x the fastest real
                           speech): a transcript that cannot belong to its audio, and
                           that would make every step slow
too_few_frames             encoder_cache cut with fewer frames than
                           ``cfg.min_encoder_frames`` (k)
no_features                whisper_mel/fbank/encoder_cache cut without stored features
no_recording               audio cut without a recording
=========================  ==========================================================

Unreadable files are caught later by the dataset (``bad_cut_ids`` in each batch).
Counts are of distinct cut ids, so they do not grow with the number of epochs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from lhotse import CutSet

from slamasr.data.config import DataConfig
from slamasr.text import normalize_text

_WARN_PER_KIND = 10  # individual warnings per problem kind; the rest go to the summary


def cut_text(cut, mode: str) -> str:
    """Normalized transcript of a cut (its supervisions' texts joined by spaces)."""
    raw = " ".join((s.text or "") for s in cut.supervisions)
    return normalize_text(raw, mode)


@dataclass
class FilterReport:
    """Cut ids skipped for training, by problem kind."""

    skipped: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    kept: set[str] = field(default_factory=set)

    def add(self, kind: str, cut_id: str) -> bool:
        """Record a skipped cut; return True the first few times for each kind."""
        ids = self.skipped[kind]
        is_new = cut_id not in ids
        ids.add(cut_id)
        return is_new and len(ids) <= _WARN_PER_KIND

    @property
    def num_skipped(self) -> int:
        """Distinct skipped cuts."""
        return len(set().union(*self.skipped.values())) if self.skipped else 0

    def summary(self) -> str:
        """One line: ``skipped N of M cuts: too_long=3, empty_text=1``."""
        counts = ", ".join(f"{k}={len(v)}" for k, v in sorted(self.skipped.items()))
        total = len(self.kept) + self.num_skipped
        return f"skipped {self.num_skipped} of {total} cuts seen" + (
            f": {counts}" if counts else ""
        )

    def log_summary(self) -> None:
        """Log the summary at WARNING when anything was skipped, INFO otherwise."""
        level = logging.WARNING if self.num_skipped else logging.INFO
        logging.log(level, "training data filter: %s", self.summary())


def too_many_chars(cut, text: str, max_chars_per_second: float) -> bool:
    """True when ``text`` has more than ``max_chars_per_second`` characters per audio second.

    A limit of 0 disables the check.
    """
    if max_chars_per_second <= 0 or cut.duration <= 0:
        return False
    return len(text) > max_chars_per_second * cut.duration


def cut_problems(cut, cfg: DataConfig) -> list[str]:
    """Every problem kind of ``cut`` for training (manifest metadata only, no file I/O)."""
    found = []
    text = cut_text(cut, cfg.text_norm)
    if not text:
        found.append("empty_text")
    if cut.duration < cfg.min_audio_seconds:
        found.append("too_short")  # too short to measure a speaking rate, too
    elif too_many_chars(cut, text, cfg.max_chars_per_second):
        found.append("too_many_chars_per_second")
    if cut.duration > cfg.max_audio_seconds:
        found.append("too_long")
    if cfg.input_kind == "audio":
        if not cut.has_recording:
            found.append("no_recording")
    elif not cut.has_features:
        found.append("no_features")
    elif cfg.input_kind == "encoder_cache" and cut.num_frames < cfg.min_encoder_frames:
        found.append("too_few_frames")
    return found


def cut_problem(cut, cfg: DataConfig) -> str | None:
    """The first problem kind of ``cut`` for training, or None when it is usable."""
    found = cut_problems(cut, cfg)
    return found[0] if found else None


class CutFilter:
    """Picklable predicate for ``CutSet.filter`` that records and warns about skips."""

    def __init__(self, cfg: DataConfig, report: FilterReport) -> None:
        self.cfg = cfg
        self.report = report

    def __call__(self, cut) -> bool:
        problem = cut_problem(cut, self.cfg)
        if problem is None:
            self.report.kept.add(cut.id)
            return True
        if self.report.add(problem, cut.id):
            logging.warning(
                "skipping cut %s for training: %s (%.2f s, %d transcript characters)",
                cut.id,
                problem,
                cut.duration,
                len(cut_text(cut, self.cfg.text_norm)),
            )
        return False


def filter_cuts_for_training(cuts: CutSet, cfg: DataConfig) -> tuple[CutSet, FilterReport]:
    """Lazily drop cuts that training cannot use; the report fills as cuts are read.

    Args:
        cuts: Training cuts.
        cfg: The data config (text_norm, min/max_audio_seconds, max_chars_per_second,
            input_kind, min_encoder_frames).

    Returns:
        (filtered cuts, report). Call ``report.log_summary()`` e.g. at the end of an epoch.
    """
    report = FilterReport()
    return cuts.filter(CutFilter(cfg, report)), report
