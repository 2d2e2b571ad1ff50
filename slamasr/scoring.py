"""Scoring: recogs files, kaldialign alignment, icefall-style errs/wer-summary files, exp wer.

Files handled here (all UTF-8):

``recogs-<set>.txt`` (written by decoding, one block per cut, sorted by cut id)::

    <cut_id>:\tref=['WORD', 'WORD']
    <cut_id>:\thyp=['WORD', 'WORD']

``bad-cuts-<set>.txt`` (beside the recogs; optional): one cut id per line, cuts whose audio
could not be read. They already have ``hyp=[]`` and so count as deletions.

``errs-<set>.txt``: icefall's format (``%WER = X.XX``, the counts line, PER-UTT DETAILS,
SUBSTITUTIONS, DELETIONS, INSERTIONS, PER-WORD STATS) followed by two sections of our own,
``HALLUCINATIONS/LOOPS:`` and ``BAD CUTS:``.

``wer-summary-<set>.txt``::

    settings\tWER
    <tag>\t2.45

``exp/<name>/wer``: one tab-separated line per (decode tag, test set); see
:data:`WER_FILE_COLUMNS`. Updated in place (a line with the same tag and set is replaced) and
written atomically (temp file + rename).
"""

from __future__ import annotations

import ast
import fcntl
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
)
"""Columns of ``exp/<name>/wer`` (tab-separated; ``wer`` in percent with 2 decimals)."""

WER_FILE_HEADER = "# " + "\t".join(WER_FILE_COLUMNS)

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
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            cut_id, kind, words = _parse_recogs_line(line, lineno)
            target = refs if kind == "ref" else hyps
            if cut_id in target:
                raise ValueError(f"{path}:{lineno}: duplicate {kind} for cut {cut_id!r}")
            target[cut_id] = words
    missing = set(refs) ^ set(hyps)
    if missing:
        raise ValueError(f"{path}: cuts without both ref and hyp: {sorted(missing)[:5]}")
    return [(cut_id, refs[cut_id], hyps[cut_id]) for cut_id in refs]


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
    """

    stats: ErrorStats
    alignments: dict[str, list[tuple[str, str]]]
    hallucinations: dict[str, str] = field(default_factory=dict)
    bad_cuts: list[str] = field(default_factory=list)


def score_results(
    results: Iterable[RecogResult],
    bad_cuts: Iterable[str] = (),
    loop_cfg: Optional[LoopDetectorConfig] = None,
) -> ScoreResult:
    """Align all results, count errors, flag hallucinations.

    Args:
        results: (cut_id, ref_words, hyp_words) triples (already normalized).
        bad_cuts: cut ids flagged unreadable; only those present in ``results`` are reported.
        loop_cfg: hallucination thresholds.
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
    return ScoreResult(stats, alignments, hallucinations, flagged)


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

    def to_line(self) -> str:
        """Tab-separated line without newline; WER with 2 decimals."""
        values = [self.tag, self.test_set, f"{self.wer:.2f}", self.errors, self.ref_words]
        values += [self.ins, self.dels, self.subs, self.utterances, self.bad_cuts]
        values += [self.hallucinations]
        return "\t".join(str(v) for v in values)

    @classmethod
    def from_line(cls, line: str) -> WerRecord:
        """Parse a line written by :meth:`to_line`."""
        fields = line.rstrip("\n").split("\t")
        if len(fields) != len(WER_FILE_COLUMNS):
            raise ValueError(f"expected {len(WER_FILE_COLUMNS)} tab-separated fields: {line!r}")
        tag, test_set, wer, *ints = fields
        return cls(tag, test_set, float(wer), *(int(v) for v in ints))

    @classmethod
    def from_score(cls, tag: str, test_set: str, score: ScoreResult) -> WerRecord:
        """Summarize a :class:`ScoreResult`."""
        s = score.stats
        return cls(
            tag, test_set, round(s.wer, 2), s.errors, s.ref_words, s.ins, s.dels, s.subs,
            s.utterances, len(score.bad_cuts), len(score.hallucinations),
        )  # fmt: skip


def read_wer_file(path: Path | str) -> list[WerRecord]:
    """Read ``exp/<name>/wer`` (comment lines starting with ``#`` are skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [WerRecord.from_line(x) for x in lines if x.strip() and not x.startswith("#")]


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
    results = normalize_results(read_recogs(decode_dir / f"recogs-{test_set}.txt"), text_norm)
    bad_cuts = read_bad_cuts(decode_dir / f"bad-cuts-{test_set}.txt")
    score = score_results(results, bad_cuts, loop_cfg)
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
    """
    decode_dir = Path(decode_dir)
    sets = list(test_sets) if test_sets else find_test_sets(decode_dir)
    missing = [s for s in sets if not (decode_dir / f"recogs-{s}.txt").is_file()]
    if missing or not sets:
        raise FileNotFoundError(f"no recogs file in {decode_dir} for test sets {missing or '*'}")
    tag = decode_tag(exp_dir, decode_dir)
    records = [score_test_set(decode_dir, s, tag, text_norm) for s in sets]
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


def results_table(wer_files: Iterable[Path | str], best: bool = False) -> str:
    """Markdown table of WER (%) from ``exp/*/wer`` files.

    Rows are (experiment, tag) with the experiment named by the wer file's directory; columns
    are test sets in order of first appearance.

    Args:
        wer_files: paths of ``exp/<name>/wer`` files.
        best: keep only each experiment's best tag (most sets covered, then lowest mean WER).

    Returns:
        The table, ending with a newline; a missing (row, set) shows ``-``.
    """
    rows: dict[tuple[str, str], dict[str, WerRecord]] = {}
    sets: list[str] = []
    for wer_file in wer_files:
        exp = Path(wer_file).resolve().parent.name
        for rec in read_wer_file(wer_file):
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
