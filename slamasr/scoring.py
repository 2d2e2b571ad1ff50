"""Scoring: recogs files, kaldialign alignment, icefall-style errs/wer-summary files, exp wer.

Files handled here (all UTF-8):

``recogs-<set>.txt`` (written by decoding, one block per cut, sorted by cut id)::

    <cut_id>:\tref=['WORD', 'WORD']
    <cut_id>:\thyp=['WORD', 'WORD']

``bad-cuts-<set>.txt`` (beside the recogs; optional): one cut id per line, cuts whose audio
could not be read. They already have ``hyp=[]`` and so count as deletions.

``decode-info-<set>.json`` (beside the recogs, written by decoding; absent in decode dirs of
older versions)::

    {"test_set": "test-clean", "manifest": "/abs/cuts_test-clean.jsonl.gz",
     "num_cuts": 2620, "cut_ids": [...],
     "bound": {"max_new_tokens_per_second": 20.0, "min_new_tokens_bound": 200},
     "bound_hits": ["<cut_id>", ...]}

Scoring refuses recogs whose cuts differ from ``cut_ids`` (cuts missing or added) and counts
the ``bound_hits`` (hypotheses cut at the new-token bound, without EOS).

``errs-<set>.txt``: icefall's format (``%WER = X.XX``, the counts line, PER-UTT DETAILS,
SUBSTITUTIONS, DELETIONS, INSERTIONS, PER-WORD STATS) followed by sections of our own,
``HALLUCINATIONS/LOOPS:``, ``BOUND HITS:`` and ``BAD CUTS:``.

``wer-summary-<set>.txt``::

    settings\tWER
    <tag>\t2.45

``exp/<name>/wer``: one tab-separated line per (decode tag, test set); see
:data:`WER_FILE_COLUMNS`. Updated in place (a line with the same tag and set is replaced) and
written atomically (temp file + rename). Lines of older versions lack the last column
(``bound_hits``) and still parse; ``-`` there means not known.
"""

from __future__ import annotations

import ast
import fcntl
import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import kaldialign

EPS = "*"
"""Symbol for the empty side of an insertion/deletion (as in icefall's errs files)."""

RecogResult = tuple[str, list[str], list[str]]
"""(cut_id, ref_words, hyp_words)."""

WER_FILE_COLUMNS = (
    "tag",
    "test_set",
    "wer",
    "errors",
    "ref_words",
    "ins",
    "del",
    "sub",
    "utterances",
    "bad_cuts",
    "hallucinations",
    "bound_hits",
)
"""Columns of ``exp/<name>/wer`` (tab-separated; ``wer`` in percent with 2 decimals;
``hallucinations`` counts loops and too-long hypotheses, ``bound_hits`` hypotheses cut at
the new-token bound, ``-`` when the decode dir does not say)."""

WER_FILE_HEADER = "# " + "\t".join(WER_FILE_COLUMNS)


class ScoringInputError(ValueError):
    """A recogs, decode-info or wer file that cannot be scored or read as it is (the
    message names the file, the line where there is one, and what to do)."""


# ---------------------------------------------------------------------------------------------
# recogs / bad-cuts files
# ---------------------------------------------------------------------------------------------


def write_recogs(path: Path | str, results: Iterable[RecogResult]) -> None:
    """Write a recogs file, one ref/hyp block per cut, sorted by cut id.

    Args:
        path: output file (``recogs-<set>.txt``); parent directories are created.
        results: (cut_id, ref_words, hyp_words) triples.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for cut_id, ref, hyp in sorted(results, key=lambda r: r[0]):
        lines.append(f"{cut_id}:\tref={list(ref)!r}\n")
        lines.append(f"{cut_id}:\thyp={list(hyp)!r}\n")
    _atomic_write_text(path, "".join(lines))


def _parse_recogs_line(line: str, lineno: int) -> tuple[str, str, list[str]]:
    """Parse ``<cut_id>:\\t<ref|hyp>=[...]`` into (cut_id, kind, words)."""
    head, sep, body = line.rpartition(":\t")
    kind, eq, words_repr = body.partition("=")
    if not sep or not eq or kind not in ("ref", "hyp"):
        raise ValueError(f"line {lineno}: expected '<cut_id>:\\tref=[...]' or hyp=, got {line!r}")
    try:
        words = ast.literal_eval(words_repr)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"line {lineno}: bad word list {words_repr!r}: {e}") from e
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ValueError(f"line {lineno}: expected a list of strings, got {words_repr!r}")
    return head, kind, words


def read_recogs(path: Path | str) -> list[RecogResult]:
    """Read a recogs file written by :func:`write_recogs` (words parsed with literal_eval).

    Args:
        path: a ``recogs-<set>.txt`` file.

    Returns:
        (cut_id, ref_words, hyp_words) triples in file order.

    Raises:
        ValueError: on a malformed line or a cut lacking its ref or hyp line.
    """
    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    where: dict[tuple[str, str], int] = {}  # (kind, cut_id) -> line number
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            try:
                cut_id, kind, words = _parse_recogs_line(line, lineno)
            except ValueError as e:
                raise ScoringInputError(f"{path}:{e}") from None
            target = refs if kind == "ref" else hyps
            if cut_id in target:
                raise ScoringInputError(f"{path}:{lineno}: duplicate {kind} for cut {cut_id!r}")
            target[cut_id] = words
            where[kind, cut_id] = lineno
    for have, lack, table in (("ref", "hyp", hyps), ("hyp", "ref", refs)):
        alone = [c for c in (refs if have == "ref" else hyps) if c not in table]
        if alone:
            lineno = where[have, alone[0]]
            raise ScoringInputError(
                f"{path}:{lineno}: cut {alone[0]!r} has a {have} line but no {lack} line "
                f"({len(alone)} such cuts); the file is damaged: decode again (--overwrite)"
            )
    return [(cut_id, refs[cut_id], hyps[cut_id]) for cut_id in refs]


def decode_info_path(decode_dir: Path | str, test_set: str) -> Path:
    """``<decode_dir>/decode-info-<set>.json``."""
    return Path(decode_dir) / f"decode-info-{test_set}.json"


def write_decode_info(
    decode_dir: Path | str,
    test_set: str,
    cut_ids: Iterable[str],
    manifest: str = "",
    bound: Optional[dict[str, float]] = None,
    bound_hits: Iterable[str] = (),
) -> Path:
    """Write ``decode-info-<set>.json`` (format in the module docstring): what decoding
    read and where it cut hypotheses, so that scoring can check the recogs against it."""
    ids = sorted(cut_ids)
    info = {
        "test_set": test_set,
        "manifest": manifest,
        "num_cuts": len(ids),
        "cut_ids": ids,
        "bound": bound or {},
        "bound_hits": sorted(bound_hits),
    }
    path = decode_info_path(decode_dir, test_set)
    _atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    return path


def read_decode_info(decode_dir: Path | str, test_set: str) -> Optional[dict]:
    """Read ``decode-info-<set>.json``; None when the decode dir has none (older versions).

    Raises:
        ScoringInputError: the file is not such a JSON object.
    """
    path = decode_info_path(decode_dir, test_set)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ScoringInputError(
            f"{path}: not valid JSON ({e}); decode again (--overwrite)"
        ) from None
    if not isinstance(info, dict) or not isinstance(info.get("cut_ids"), list):
        raise ScoringInputError(f"{path}: no cut_ids list; decode again (--overwrite)")
    return info


def check_recogs_cuts(results: Sequence[RecogResult], info: dict, recogs: Path | str) -> None:
    """Refuse recogs whose cuts are not exactly those that decoding read from the manifest.

    Raises:
        ScoringInputError: naming how many cuts are missing or added, a few of them, the
            manifest and the fix.
    """
    expected, got = set(info["cut_ids"]), [r[0] for r in results]
    missing, extra = sorted(expected - set(got)), sorted(set(got) - expected)
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its cuts missing ({', '.join(missing[:3])} ...)")
    if extra:
        parts.append(f"{len(extra)} cuts not in it ({', '.join(extra[:3])} ...)")
    manifest = info.get("manifest") or "the manifest decoded"
    raise ScoringInputError(
        f"{recogs}: {len(got)} cuts, but {manifest} has {len(expected)}: "
        f"{' and '.join(parts)}; the recogs do not match the test set decoded: "
        f"decode it again (--overwrite) and score the new recogs"
    )


def read_bad_cuts(path: Path | str) -> set[str]:
    """Read a ``bad-cuts-<set>.txt`` file (one cut id per line); a missing file gives {}."""
    path = Path(path)
    if not path.is_file():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip()}


# ---------------------------------------------------------------------------------------------
# Alignment and error counts
# ---------------------------------------------------------------------------------------------


def align_words(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str, str]]:
    """Levenshtein-align two word sequences with kaldialign.

    Returns:
        (ref_word, hyp_word) pairs; :data:`EPS` on the ref side marks an insertion, on the
        hyp side a deletion.
    """
    if not ref and not hyp:
        return []
    return kaldialign.align(list(ref), list(hyp), EPS)


@dataclass
class ErrorStats:
    """Word error counts over a set of utterances.

    Attributes:
        ins, dels, subs: insertions, deletions, substitutions.
        ref_words: number of reference words.
        utterances: number of utterances.
    """

    ins: int = 0
    dels: int = 0
    subs: int = 0
    ref_words: int = 0
    utterances: int = 0

    @property
    def errors(self) -> int:
        """Total word errors."""
        return self.ins + self.dels + self.subs

    @property
    def correct(self) -> int:
        """Reference words aligned to an identical hypothesis word."""
        return self.ref_words - self.dels - self.subs

    @property
    def wer(self) -> float:
        """WER in percent. With no reference words, errors are divided by 1 (0 if none)."""
        return 100.0 * self.errors / max(self.ref_words, 1)

    def add(self, alignment: Sequence[tuple[str, str]]) -> None:
        """Accumulate one utterance's alignment."""
        self.utterances += 1
        for r, h in alignment:
            if r == EPS:
                self.ins += 1
            elif h == EPS:
                self.dels += 1
                self.ref_words += 1
            else:
                self.subs += r != h
                self.ref_words += 1


def compute_error_stats(results: Iterable[RecogResult]) -> ErrorStats:
    """Align every (cut_id, ref, hyp) and sum the error counts."""
    stats = ErrorStats()
    for _, ref, hyp in results:
        stats.add(align_words(ref, hyp))
    return stats


# ---------------------------------------------------------------------------------------------
# Hallucination / loop detection
# ---------------------------------------------------------------------------------------------


@dataclass
class LoopDetectorConfig:
    """Thresholds for flagging hallucinated hypotheses.

    Attributes:
        max_ngram: longest n-gram checked for consecutive repetition.
        min_repeats_unigram: a single word repeated this many times in a row is a loop.
        min_repeats: an n-gram (n >= 2) repeated this many times in a row is a loop.
        length_ratio, length_slack: a hypothesis longer than
            ``length_ratio * ref_words + length_slack`` words is flagged as too long.
    """

    max_ngram: int = 4
    min_repeats_unigram: int = 4
    min_repeats: int = 3
    length_ratio: float = 1.5
    length_slack: int = 3


def _run_length(words: Sequence[str], start: int, n: int) -> int:
    """How many times ``words[start:start+n]`` repeats back to back from ``start``."""
    gram = list(words[start : start + n])
    repeats = 1
    pos = start + n
    while list(words[pos : pos + n]) == gram:
        repeats += 1
        pos += n
    return repeats


def _max_run_of(words: Sequence[str], gram: Sequence[str]) -> int:
    """Longest back-to-back run of ``gram`` anywhere in ``words`` (0 if absent)."""
    n = len(gram)
    best = 0
    for start in range(len(words) - n + 1):
        if list(words[start : start + n]) == list(gram):
            best = max(best, _run_length(words, start, n))
    return best


def find_loop(
    hyp: Sequence[str], ref: Sequence[str] = (), cfg: Optional[LoopDetectorConfig] = None
) -> Optional[tuple[tuple[str, ...], int]]:
    """Find an n-gram repeated back to back in ``hyp`` more often than in ``ref``.

    Args:
        hyp: hypothesis words.
        ref: reference words; a repetition that the reference has as well is not a loop.
        cfg: thresholds.

    Returns:
        (n-gram, repeats) of the first loop found (shortest n first), or None.
    """
    cfg = cfg or LoopDetectorConfig()
    for n in range(1, cfg.max_ngram + 1):
        threshold = cfg.min_repeats_unigram if n == 1 else cfg.min_repeats
        start = 0
        while start + n * threshold <= len(hyp):
            repeats = _run_length(hyp, start, n)
            gram = tuple(hyp[start : start + n])
            if repeats >= threshold and repeats > _max_run_of(ref, gram):
                return gram, repeats
            start += 1
    return None


def hallucination_reason(
    ref: Sequence[str], hyp: Sequence[str], cfg: Optional[LoopDetectorConfig] = None
) -> Optional[str]:
    """Say why a hypothesis looks hallucinated (a loop, or far longer than its ref).

    Returns:
        A short human-readable reason, or None when the hypothesis looks fine.
    """
    cfg = cfg or LoopDetectorConfig()
    loop = find_loop(hyp, ref, cfg)
    if loop is not None:
        gram, repeats = loop
        return f"loop: {' '.join(gram)!r} x{repeats}"
    if len(hyp) > cfg.length_ratio * len(ref) + cfg.length_slack:
        return f"too long: {len(hyp)} hyp words for {len(ref)} ref words"
    return None


# ---------------------------------------------------------------------------------------------
# errs-<set>.txt (icefall format + our sections)
# ---------------------------------------------------------------------------------------------


@dataclass
class ScoreResult:
    """Everything scoring found for one test set.

    Attributes:
        stats: word error counts.
        alignments: cut_id -> alignment (sorted by cut id).
        hallucinations: cut_id -> reason, for hypotheses flagged as loops/too long.
        bad_cuts: ids of cuts flagged unreadable by decoding.
        bound_hits: ids of cuts whose hypothesis was cut at the new-token bound; None when
            decoding did not record them.
    """

    stats: ErrorStats
    alignments: dict[str, list[tuple[str, str]]]
    hallucinations: dict[str, str] = field(default_factory=dict)
    bad_cuts: list[str] = field(default_factory=list)
    bound_hits: Optional[list[str]] = None


def score_results(
    results: Iterable[RecogResult],
    bad_cuts: Iterable[str] = (),
    loop_cfg: Optional[LoopDetectorConfig] = None,
    bound_hits: Optional[Iterable[str]] = None,
) -> ScoreResult:
    """Align all results, count errors, flag hallucinations.

    Args:
        results: (cut_id, ref_words, hyp_words) triples (already normalized).
        bad_cuts: cut ids flagged unreadable; only those present in ``results`` are reported.
        loop_cfg: hallucination thresholds.
        bound_hits: cut ids whose hypothesis hit the new-token bound (only those present in
            ``results`` are reported); None = not known.
    """
    stats = ErrorStats()
    alignments: dict[str, list[tuple[str, str]]] = {}
    hallucinations: dict[str, str] = {}
    for cut_id, ref, hyp in sorted(results, key=lambda r: r[0]):
        alignment = align_words(ref, hyp)
        stats.add(alignment)
        alignments[cut_id] = alignment
        reason = hallucination_reason(ref, hyp, loop_cfg)
        if reason is not None:
            hallucinations[cut_id] = reason
    flagged = sorted(set(bad_cuts) & set(alignments))
    hits = None if bound_hits is None else sorted(set(bound_hits) & set(alignments))
    return ScoreResult(stats, alignments, hallucinations, flagged, hits)


def _format_alignment(alignment: Sequence[tuple[str, str]]) -> str:
    """icefall's per-utterance detail: correct words as is, errors as ``(ref->hyp)``."""
    return " ".join(r if r == h else f"({r}->{h})" for r, h in alignment)


def _count_errors(
    alignments: Iterable[Sequence[tuple[str, str]]],
) -> tuple[Counter, Counter, Counter, dict[str, list[int]]]:
    """Tally substitutions, deletions, insertions and per-word stats.

    Returns:
        (subs[(ref, hyp)], dels[ref], ins[hyp], words[word] = [corr, ref_sub, hyp_sub, ins, del]).
    """
    subs: Counter = Counter()
    dels: Counter = Counter()
    ins: Counter = Counter()
    words: dict[str, list[int]] = {}
    for alignment in alignments:
        for r, h in alignment:
            if r == EPS:
                ins[h] += 1
                words.setdefault(h, [0] * 5)[3] += 1
            elif h == EPS:
                dels[r] += 1
                words.setdefault(r, [0] * 5)[4] += 1
            elif r != h:
                subs[(r, h)] += 1
                words.setdefault(r, [0] * 5)[1] += 1
                words.setdefault(h, [0] * 5)[2] += 1
            else:
                words.setdefault(r, [0] * 5)[0] += 1
    return subs, dels, ins, words


def _by_count(counter: Counter) -> list[tuple[int, object]]:
    """(count, key) pairs, most frequent first, ties by key."""
    return sorted(((c, k) for k, c in counter.items()), key=lambda x: (-x[0], x[1]))


def _errs_header(stats: ErrorStats) -> list[str]:
    return [
        f"%WER = {stats.wer:.2f}",
        f"Errors: {stats.ins} insertions, {stats.dels} deletions, {stats.subs} substitutions, "
        f"over {stats.ref_words} reference words ({stats.correct} correct)",
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, DELETIONS:, "
        "INSERTIONS:, PER-WORD STATS:",
        "",
    ]


def _errs_tables(score: ScoreResult) -> list[str]:
    subs, dels, ins, words = _count_errors(score.alignments.values())
    lines = ["PER-UTT DETAILS: corr or (ref->hyp)"]
    lines += [f"{cut_id}:\t{_format_alignment(a)}" for cut_id, a in score.alignments.items()]
    lines += ["", "SUBSTITUTIONS: count ref -> hyp"]
    lines += [f"{c}   {r} -> {h}" for c, (r, h) in _by_count(subs)]
    lines += ["", "DELETIONS: count ref"]
    lines += [f"{c}   {w}" for c, w in _by_count(dels)]
    lines += ["", "INSERTIONS: count hyp"]
    lines += [f"{c}   {w}" for c, w in _by_count(ins)]
    lines += ["", "PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp"]
    rows = []
    for word, (corr, ref_sub, hyp_sub, n_ins, n_del) in words.items():
        tot_errs = ref_sub + hyp_sub + n_ins + n_del
        rows.append((-tot_errs, word, corr, corr + ref_sub + n_del, corr + hyp_sub + n_ins))
    lines += [f"{w}   {corr} {-neg} {nref} {nhyp}" for neg, w, corr, nref, nhyp in sorted(rows)]
    return lines


def _errs_extra(score: ScoreResult) -> list[str]:
    lines = ["", f"HALLUCINATIONS/LOOPS: {len(score.hallucinations)} cut_id reason"]
    lines += [f"{cut_id}:\t{reason}" for cut_id, reason in score.hallucinations.items()]
    if score.bound_hits is not None:
        count = len(score.bound_hits)
        lines += ["", f"BOUND HITS: {count} (hypotheses cut at the new-token bound)"]
        lines += score.bound_hits
    lines += ["", f"BAD CUTS: {len(score.bad_cuts)} (unreadable audio, scored as deletions)"]
    lines += score.bad_cuts
    return lines


def write_errs(path: Path | str, score: ScoreResult) -> None:
    """Write ``errs-<set>.txt`` in icefall's format plus HALLUCINATIONS/LOOPS and BAD CUTS.

    Layout::

        %WER = 12.50
        Errors: 1 insertions, 0 deletions, 1 substitutions, over 16 reference words (15 correct)
        Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, ...

        PER-UTT DETAILS: corr or (ref->hyp)
        <cut_id>:\tA (B->C) D (*->E)
        SUBSTITUTIONS: count ref -> hyp      e.g. "3   B -> C", most frequent first
        DELETIONS: count ref                  e.g. "2   A"
        INSERTIONS: count hyp                 e.g. "1   E"
        PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp
        HALLUCINATIONS/LOOPS: <n> cut_id reason      e.g. "<cut_id>:\tloop: 'A B' x5"
        BOUND HITS: <n> (hypotheses cut at the new-token bound)  then one cut id per line
                                              (absent when decoding did not record them)
        BAD CUTS: <n> (unreadable audio, scored as deletions)   then one cut id per line
    """
    lines = _errs_header(score.stats) + _errs_tables(score) + _errs_extra(score)
    _atomic_write_text(Path(path), "\n".join(lines) + "\n")


def write_wer_summary(path: Path | str, tag: str, wer: float) -> None:
    """Write ``wer-summary-<set>.txt``: ``settings\\tWER`` then ``<tag>\\t<wer>``."""
    _atomic_write_text(Path(path), f"settings\tWER\n{tag}\t{wer:.2f}\n")


# ---------------------------------------------------------------------------------------------
# exp/<name>/wer
# ---------------------------------------------------------------------------------------------


@dataclass
class WerRecord:
    """One line of ``exp/<name>/wer`` (columns in :data:`WER_FILE_COLUMNS` order)."""

    tag: str
    test_set: str
    wer: float
    errors: int
    ref_words: int
    ins: int
    dels: int
    subs: int
    utterances: int
    bad_cuts: int
    hallucinations: int
    bound_hits: Optional[int] = None

    def to_line(self) -> str:
        """Tab-separated line without newline; WER with 2 decimals; ``-`` for an unknown
        ``bound_hits``."""
        values = [self.tag, self.test_set, f"{self.wer:.2f}", self.errors, self.ref_words]
        values += [self.ins, self.dels, self.subs, self.utterances, self.bad_cuts]
        values += [self.hallucinations, "-" if self.bound_hits is None else self.bound_hits]
        return "\t".join(str(v) for v in values)

    @classmethod
    def from_line(cls, line: str) -> WerRecord:
        """Parse a line written by :meth:`to_line` (or by a version without the last
        column, ``bound_hits``).

        Raises:
            ValueError: the line does not have those fields.
        """
        fields = line.rstrip("\n").split("\t")
        if len(fields) not in (len(WER_FILE_COLUMNS) - 1, len(WER_FILE_COLUMNS)):
            raise ValueError(
                f"expected {len(WER_FILE_COLUMNS)} tab-separated fields "
                f"({' '.join(WER_FILE_COLUMNS)}), got {len(fields)}: {line!r}"
            )
        tag, test_set, wer, *ints = fields
        known = len(WER_FILE_COLUMNS) - 4  # the counts of every version
        hits = ints[known] if len(ints) > known else "-"
        try:
            counts = [int(v) for v in ints[:known]]
            return cls(tag, test_set, float(wer), *counts, None if hits == "-" else int(hits))
        except ValueError as e:
            raise ValueError(f"{e} in {line!r}") from None

    @classmethod
    def from_score(cls, tag: str, test_set: str, score: ScoreResult) -> WerRecord:
        """Summarize a :class:`ScoreResult`."""
        s = score.stats
        return cls(
            tag, test_set, round(s.wer, 2), s.errors, s.ref_words, s.ins, s.dels, s.subs,
            s.utterances, len(score.bad_cuts), len(score.hallucinations),
            None if score.bound_hits is None else len(score.bound_hits),
        )  # fmt: skip


def read_wer_file(path: Path | str) -> list[WerRecord]:
    """Read ``exp/<name>/wer`` (comment lines starting with ``#`` are skipped).

    Raises:
        ScoringInputError: a malformed line (the message names the file and the line).
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            records.append(WerRecord.from_line(line))
        except ValueError as e:
            raise ScoringInputError(f"{path}:{lineno}: {e}") from None
    return records


def update_wer_file(path: Path | str, records: Iterable[WerRecord]) -> list[WerRecord]:
    """Add records to ``exp/<name>/wer``, replacing lines with the same (tag, test_set).

    The file is rewritten atomically (temp file + rename) under an exclusive lock on
    ``<path>.lock``, so concurrent scorers do not lose each other's lines. Lines are kept
    sorted by (tag, test_set).

    Returns:
        All records now in the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = {(r.tag, r.test_set): r for r in read_wer_file(path)}
        merged.update({(r.tag, r.test_set): r for r in records})
        out = [merged[k] for k in sorted(merged)]
        text = WER_FILE_HEADER + "\n" + "".join(r.to_line() + "\n" for r in out)
        _atomic_write_text(path, text)
    return out


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Scoring a decode dir
# ---------------------------------------------------------------------------------------------


def normalize_results(results: Iterable[RecogResult], mode: Optional[str]) -> list[RecogResult]:
    """Apply ``slamasr.text.normalize_text(text, mode)`` to ref and hyp words.

    Args:
        results: (cut_id, ref_words, hyp_words) triples.
        mode: ``upper`` | ``lower`` | ``none``; None leaves the words untouched.
    """
    results = list(results)
    if mode is None:
        return results
    from slamasr.text import normalize_text  # the text layer; imported only when used

    def norm(words: list[str]) -> list[str]:
        return normalize_text(" ".join(words), mode).split()

    return [(cut_id, norm(ref), norm(hyp)) for cut_id, ref, hyp in results]


def find_test_sets(decode_dir: Path | str) -> list[str]:
    """Test sets with a ``recogs-<set>.txt`` in ``decode_dir``, sorted."""
    paths = Path(decode_dir).glob("recogs-*.txt")
    return sorted(p.name[len("recogs-") : -len(".txt")] for p in paths)


def score_test_set(
    decode_dir: Path | str,
    test_set: str,
    tag: str,
    text_norm: Optional[str] = None,
    loop_cfg: Optional[LoopDetectorConfig] = None,
) -> WerRecord:
    """Score ``recogs-<set>.txt``; write ``errs-<set>.txt`` and ``wer-summary-<set>.txt``.

    Args:
        decode_dir: directory holding the recogs (and optional bad-cuts) file.
        test_set: test set name.
        tag: decode tag recorded in the summary and the returned record.
        text_norm: normalization mode for :func:`normalize_results`.
        loop_cfg: hallucination thresholds.
    """
    decode_dir = Path(decode_dir)
    recogs = decode_dir / f"recogs-{test_set}.txt"
    results = normalize_results(read_recogs(recogs), text_norm)
    info = read_decode_info(decode_dir, test_set)
    if info is None:
        logging.warning(
            "%s has no %s (decoded by an older version): cannot check that its cuts are the "
            "test set's, nor count bound hits",
            decode_dir,
            decode_info_path(decode_dir, test_set).name,
        )
    else:
        check_recogs_cuts(results, info, recogs)
    bad_cuts = read_bad_cuts(decode_dir / f"bad-cuts-{test_set}.txt")
    hits = None if info is None else info.get("bound_hits", [])
    score = score_results(results, bad_cuts, loop_cfg, hits)
    write_errs(decode_dir / f"errs-{test_set}.txt", score)
    write_wer_summary(decode_dir / f"wer-summary-{test_set}.txt", tag, score.stats.wer)
    return WerRecord.from_score(tag, test_set, score)


def decode_tag(exp_dir: Path | str, decode_dir: Path | str) -> str:
    """The decode tag: ``decode_dir`` relative to ``exp_dir`` (its name if outside it)."""
    exp_dir, decode_dir = Path(exp_dir).resolve(), Path(decode_dir).resolve()
    try:
        return decode_dir.relative_to(exp_dir).as_posix()
    except ValueError:
        return decode_dir.name


def score_decode_dir(
    exp_dir: Path | str,
    decode_dir: Path | str,
    test_sets: Optional[Sequence[str]] = None,
    text_norm: Optional[str] = None,
) -> list[WerRecord]:
    """Score test sets of a decode dir and update ``<exp_dir>/wer``.

    Args:
        exp_dir: the experiment directory (its ``wer`` file is updated).
        decode_dir: holds ``recogs-<set>.txt`` files.
        test_sets: sets to score; default every recogs file found.
        text_norm: normalization mode (``upper`` | ``lower`` | ``none``) or None.

    Returns:
        One record per scored test set.

    Raises:
        FileNotFoundError: when a requested recogs file is missing or none is found.
        ScoringInputError: a recogs file is damaged or does not hold the cuts decoded (then
            ``<exp_dir>/wer`` is left as it was).
    """
    decode_dir = Path(decode_dir)
    sets = list(test_sets) if test_sets else find_test_sets(decode_dir)
    missing = [s for s in sets if not (decode_dir / f"recogs-{s}.txt").is_file()]
    if missing or not sets:
        raise FileNotFoundError(f"no recogs file in {decode_dir} for test sets {missing or '*'}")
    tag = decode_tag(exp_dir, decode_dir)
    records = [score_test_set(decode_dir, s, tag, text_norm) for s in sets]  # all, then wer
    update_wer_file(Path(exp_dir) / "wer", records)
    return records


# ---------------------------------------------------------------------------------------------
# Results table over exp/*/wer
# ---------------------------------------------------------------------------------------------


def _mean_wer(records: Sequence[WerRecord]) -> float:
    return sum(r.wer for r in records) / len(records) if records else math.inf


def _best_tags(rows: dict[tuple[str, str], dict[str, WerRecord]]) -> set[tuple[str, str]]:
    """Per experiment, the tag covering the most test sets with the lowest mean WER."""
    best: dict[str, tuple[tuple[int, float], str]] = {}
    for (exp, tag), by_set in rows.items():
        key = (-len(by_set), _mean_wer(list(by_set.values())))
        if exp not in best or key < best[exp][0]:
            best[exp] = (key, tag)
    return {(exp, tag) for exp, (_, tag) in best.items()}


def results_table(
    wer_files: Iterable[Path | str], best: bool = False, errors: Optional[list[str]] = None
) -> str:
    """Markdown table of WER (%) from ``exp/*/wer`` files.

    Rows are (experiment, tag) with the experiment named by the wer file's directory; columns
    are test sets in order of first appearance.

    Args:
        wer_files: paths of ``exp/<name>/wer`` files.
        best: keep only each experiment's best tag (most sets covered, then lowest mean WER).
        errors: when given, a malformed wer file is left out of the table and its
            :class:`ScoringInputError` message appended here; otherwise it raises.

    Returns:
        The table, ending with a newline; a missing (row, set) shows ``-``.
    """
    rows: dict[tuple[str, str], dict[str, WerRecord]] = {}
    sets: list[str] = []
    for wer_file in wer_files:
        exp = Path(wer_file).resolve().parent.name
        try:
            records = read_wer_file(wer_file)
        except ScoringInputError as e:
            if errors is None:
                raise
            errors.append(str(e))
            continue
        for rec in records:
            rows.setdefault((exp, rec.tag), {})[rec.test_set] = rec
            if rec.test_set not in sets:
                sets.append(rec.test_set)
    keep = _best_tags(rows) if best else set(rows)
    lines = ["| experiment | tag | " + " | ".join(sets) + " |"]
    lines.append("|" + "---|" * (len(sets) + 2))
    for exp, tag in sorted(keep):
        cells = [f"{rows[exp, tag][s].wer:.2f}" if s in rows[exp, tag] else "-" for s in sets]
        lines.append(f"| {exp} | {tag} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
