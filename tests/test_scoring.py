"""Tests for slamasr.scoring and slamasr.bin.score."""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import types
from pathlib import Path

import jiwer
import pytest

from slamasr import scoring
from slamasr.bin import score as score_bin
from slamasr.scoring import (
    WER_FILE_HEADER,
    ErrorStats,
    WerRecord,
    compute_error_stats,
    find_loop,
    hallucination_reason,
    read_recogs,
    read_wer_file,
    score_decode_dir,
    score_results,
    update_wer_file,
    write_errs,
    write_recogs,
)


def _record(tag: str, test_set: str, wer: float) -> WerRecord:
    return WerRecord(tag, test_set, wer, 1, 10, 0, 0, 1, 2, 0, 0)


def _section(text: str, title: str) -> list[str]:
    """Lines of an errs-file section, from its title line to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
    return lines[start + 1 : end]


# --- WER against jiwer ----------------------------------------------------------------------


def test_wer_matches_jiwer_on_random_word_sequences() -> None:
    rng = random.Random(1234)
    vocab = ["A", "B", "C", "D", "E"]
    results = []
    for i in range(400):
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 8))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 8))]
        if i % 25 == 0:
            hyp = []  # empty hypotheses (bad cuts) are common
        results.append((f"utt{i:03d}", ref, hyp))
        ours = compute_error_stats([results[-1]])
        theirs = jiwer.process_words(" ".join(ref), " ".join(hyp))
        assert ours.errors == theirs.substitutions + theirs.deletions + theirs.insertions, (
            ref,
            hyp,
        )
        assert ours.ref_words == len(ref)
    stats = compute_error_stats(results)
    refs = [" ".join(r) for _, r, _ in results]
    hyps = [" ".join(h) for _, _, h in results]
    assert stats.wer == pytest.approx(100 * jiwer.wer(refs, hyps))


def test_wer_with_no_reference_words_counts_insertions() -> None:
    assert compute_error_stats([("u", [], [])]).wer == 0.0
    assert compute_error_stats([("u", [], ["A", "B"])]).wer == 200.0
    assert compute_error_stats([("u", ["A"], [])]).wer == 100.0


# --- errs file --------------------------------------------------------------------------------


@pytest.fixture
def hand_results() -> list[tuple[str, list[str], list[str]]]:
    # u1: B->X substitution; u2: deletion of C; u3: insertion of Z; u4: B->X again
    return [
        ("u2", ["A", "C", "D"], ["A", "D"]),
        ("u1", ["A", "B", "C"], ["A", "X", "C"]),
        ("u3", ["D"], ["D", "Z"]),
        ("u4", ["B"], ["X"]),
    ]


def test_errs_file_has_icefall_sections_and_right_counts(
    tmp_path: Path, hand_results: list
) -> None:
    path = tmp_path / "errs-test.txt"
    write_errs(path, score_results(hand_results))
    text = path.read_text()
    lines = text.splitlines()
    # 8 ref words, 4 errors -> 50.00
    assert lines[0] == "%WER = 50.00"
    assert lines[1] == (
        "Errors: 1 insertions, 1 deletions, 2 substitutions, over 8 reference words (5 correct)"
    )
    assert lines[2].startswith("Search below for sections starting with PER-UTT DETAILS:")
    assert _section(text, "PER-UTT DETAILS:") == [
        "u1:\tA (B->X) C",
        "u2:\tA (C->*) D",
        "u3:\tD (*->Z)",
        "u4:\t(B->X)",
    ]
    assert _section(text, "SUBSTITUTIONS:") == ["2   B -> X"]
    assert _section(text, "DELETIONS:") == ["1   C"]
    assert _section(text, "INSERTIONS:") == ["1   Z"]
    per_word = {line.split()[0]: line.split()[1:] for line in _section(text, "PER-WORD STATS:")}
    # word: corr tot_errs count_in_ref count_in_hyp
    assert per_word["B"] == ["0", "2", "2", "0"]
    assert per_word["X"] == ["0", "2", "0", "2"]
    assert per_word["C"] == ["1", "1", "2", "1"]
    assert per_word["A"] == ["2", "0", "2", "2"]
    assert _section(text, "HALLUCINATIONS/LOOPS: 0") == []
    assert _section(text, "BAD CUTS: 0") == []


def test_substitutions_sorted_by_frequency(tmp_path: Path) -> None:
    results = [("a", ["P"], ["Q"]), ("b", ["M", "M"], ["N", "N"]), ("c", ["M"], ["N"])]
    write_errs(tmp_path / "errs.txt", score_results(results))
    assert _section((tmp_path / "errs.txt").read_text(), "SUBSTITUTIONS:") == [
        "3   M -> N",
        "1   P -> Q",
    ]


# --- recogs files -----------------------------------------------------------------------------


def test_recogs_round_trip_with_quotes_and_apostrophes(tmp_path: Path) -> None:
    results = [
        ("b-2", ["IT'S", 'SAY "HI"', "O'REILLY'S"], ["IT'S", "\"'MIXED'\""]),
        ("a-1", ["TAB\tAND:COLON", "BACK\\SLASH"], []),
        ("c:3", [], ["ÜBER", "naïve"]),
    ]
    path = tmp_path / "recogs-test.txt"
    write_recogs(path, results)
    assert read_recogs(path) == sorted(results)
    lines = path.read_text().splitlines()
    assert [line.split(":\t")[0] for line in lines[::2]] == ["a-1", "b-2", "c:3"]
    assert lines[2] == 'b-2:\tref=["IT\'S", \'SAY "HI"\', "O\'REILLY\'S"]'
    assert lines[1] == "a-1:\thyp=[]"


def test_read_recogs_never_evaluates_code(tmp_path: Path) -> None:
    path = tmp_path / "recogs-evil.txt"
    marker = tmp_path / "pwned"
    path.write_text(
        f"u:\tref=['A']\nu:\thyp=__import__('pathlib').Path({str(marker)!r}).touch() or []\n"
    )
    with pytest.raises(ValueError, match="line 2"):
        read_recogs(path)
    assert not marker.exists()


def test_read_recogs_rejects_a_cut_without_hyp(tmp_path: Path) -> None:
    path = tmp_path / "recogs-x.txt"
    path.write_text("u1:\tref=['A']\nu1:\thyp=['A']\nu2:\tref=['B']\n")
    with pytest.raises(ValueError, match="u2"):
        read_recogs(path)


# --- loops / hallucinations -------------------------------------------------------------------


@pytest.mark.parametrize(
    "hyp, expected",
    [
        ("THE CAT SAT ON ON ON ON THE MAT", (("ON",), 4)),
        ("I SAID THANK YOU THANK YOU THANK YOU", (("THANK", "YOU"), 3)),
        ("A B C D A B C D A B C D E", (("A", "B", "C", "D"), 3)),
        ("HELLO " * 30, (("HELLO",), 30)),
    ],
)
def test_loop_detector_finds_loops(hyp: str, expected: tuple) -> None:
    assert find_loop(hyp.split(), ref=["THE", "CAT"]) == expected


@pytest.mark.parametrize(
    "hyp",
    [
        "THE CAT SAT ON THE MAT",
        "NO NO NO",  # a unigram needs 4 repeats
        "THANK YOU THANK YOU",  # a bigram needs 3
        "A B C D E A B C D E A B C D E",  # 5-grams are not checked
        "",
    ],
)
def test_loop_detector_ignores_normal_text(hyp: str) -> None:
    assert find_loop(hyp.split()) is None


def test_repetition_present_in_the_reference_is_not_a_loop() -> None:
    words = "HE SAID NO NO NO NO".split()
    assert find_loop(words, ref=words) is None
    assert find_loop(words + ["NO"], ref=words) == (("NO",), 5)


def test_much_longer_hypothesis_is_flagged() -> None:
    ref = "ONE TWO".split()
    assert hallucination_reason(ref, "ONE TWO THREE FOUR FIVE SIX".split()) is None  # 6 = 1.5*2+3
    reason = hallucination_reason(ref, "ONE TWO THREE FOUR FIVE SIX SEVEN".split())
    assert reason is not None and reason.startswith("too long")


def test_hallucinations_listed_in_errs_and_counted(tmp_path: Path) -> None:
    results = [
        ("ok", ["A", "B"], ["A", "B"]),
        ("loop", ["A", "B"], ["A", "B", "B", "B", "B"]),
        ("long", ["A"], "A X Y Z W V".split()),
    ]
    score = score_results(results)
    write_errs(tmp_path / "errs.txt", score)
    text = (tmp_path / "errs.txt").read_text()
    assert _section(text, "HALLUCINATIONS/LOOPS: 2") == [
        "long:\ttoo long: 6 hyp words for 1 ref words",
        "loop:\tloop: 'B' x4",
    ]
    assert WerRecord.from_score("t", "s", score).hallucinations == 2


# --- exp/<name>/wer ---------------------------------------------------------------------------


def test_wer_file_updated_in_place_not_duplicated(tmp_path: Path) -> None:
    path = tmp_path / "wer"
    update_wer_file(path, [_record("beam4", "clean", 5.0), _record("beam4", "other", 9.0)])
    update_wer_file(path, [_record("beam1", "clean", 6.0)])
    update_wer_file(path, [_record("beam4", "clean", 4.5)])
    lines = path.read_text().splitlines()
    assert lines[0] == WER_FILE_HEADER
    assert len(lines) == 4
    records = {(r.tag, r.test_set): r.wer for r in read_wer_file(path)}
    assert records == {("beam1", "clean"): 6.0, ("beam4", "clean"): 4.5, ("beam4", "other"): 9.0}


def test_wer_record_line_round_trip() -> None:
    rec = WerRecord("avg-5/beam-4", "test-other", 3.81, 12, 315, 1, 2, 9, 20, 1, 0, 3)
    line = rec.to_line()
    assert line == "avg-5/beam-4\ttest-other\t3.81\t12\t315\t1\t2\t9\t20\t1\t0\t3"
    assert WerRecord.from_line(line) == rec
    unknown = dataclasses.replace(rec, bound_hits=None)
    assert unknown.to_line().endswith("\t0\t-")
    assert WerRecord.from_line(unknown.to_line()) == unknown


def test_wer_lines_of_older_versions_still_parse() -> None:
    """A line written before the bound_hits column (11 fields) reads with bound_hits unknown."""
    old = "avg-5/beam-4\ttest-other\t3.81\t12\t315\t1\t2\t9\t20\t1\t0"
    rec = WerRecord.from_line(old)
    assert (rec.hallucinations, rec.bound_hits) == (0, None) and rec.utterances == 20
    with pytest.raises(ValueError, match="expected 12 tab-separated fields"):
        WerRecord.from_line("avg-5/beam-4\ttest-other\t3.81\t12")


def test_wer_file_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wer"
    update_wer_file(path, [_record("beam4", "clean", 5.0)])
    before = path.read_text()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk died before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        update_wer_file(path, [_record("beam4", "other", 7.0)])
    assert path.read_text() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wer", "wer.lock"]  # no temp left


# --- a whole decode dir -----------------------------------------------------------------------


def _make_decode_dir(exp: Path, tag: str = "beam4") -> Path:
    decode = exp / tag
    write_recogs(
        decode / "recogs-clean.txt",
        [("c1", ["A", "B"], ["A", "B"]), ("c2", ["C", "D"], []), ("c3", ["E"], [])],
    )
    (decode / "bad-cuts-clean.txt").write_text("c2\nc3\nnot-in-this-set\n")
    write_recogs(decode / "recogs-other.txt", [("o1", ["A", "B", "C", "D"], ["A", "X", "C", "D"])])
    return decode


def test_bad_cuts_counted_and_scored_as_deletions(tmp_path: Path) -> None:
    exp = tmp_path / "exp" / "X"
    decode = _make_decode_dir(exp)
    records = {r.test_set: r for r in score_decode_dir(exp, decode)}
    clean = records["clean"]
    assert (clean.bad_cuts, clean.dels, clean.errors, clean.ref_words) == (2, 3, 3, 5)
    assert clean.wer == 60.0
    assert records["other"].bad_cuts == 0
    assert _section((decode / "errs-clean.txt").read_text(), "BAD CUTS: 2") == ["c2", "c3"]


def test_score_main_writes_all_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    exp = tmp_path / "exp" / "X"
    decode = _make_decode_dir(exp, "avg-1/beam-4")
    score_bin.main(["--exp-dir", str(exp), "--decode-dir", str(decode), "--test-sets", "other"])
    assert "other\tWER 25.00%" in capsys.readouterr().out
    assert (decode / "errs-other.txt").read_text().startswith("%WER = 25.00\n")
    assert (decode / "wer-summary-other.txt").read_text() == "settings\tWER\navg-1/beam-4\t25.00\n"
    assert not (decode / "errs-clean.txt").exists()
    assert [(r.tag, r.test_set) for r in read_wer_file(exp / "wer")] == [("avg-1/beam-4", "other")]
    args = ["--exp-dir", str(exp), "--decode-dir", str(decode), "--test-sets", "nope"]
    assert score_bin.main(args) == 1
    assert "no recogs file" in capsys.readouterr().err


def test_text_norm_applied_to_ref_and_hyp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("slamasr.text")
    fake.normalize_text = lambda text, mode: text.upper() if mode == "upper" else text
    monkeypatch.setitem(sys.modules, "slamasr.text", fake)
    exp = tmp_path / "X"
    write_recogs(exp / "d" / "recogs-s.txt", [("u", ["Hello", "world"], ["HELLO", "World"])])
    assert score_decode_dir(exp, exp / "d")[0].wer == 100.0
    assert score_decode_dir(exp, exp / "d", text_norm="upper")[0].wer == 0.0


def test_error_stats_correct_count() -> None:
    stats = ErrorStats(ins=1, dels=2, subs=3, ref_words=10)
    assert (stats.errors, stats.correct, stats.wer) == (6, 5, 60.0)
    assert scoring.EPS == "*"


def test_text_norm_with_the_real_text_module(tmp_path: Path) -> None:
    pytest.importorskip("slamasr.text")
    exp = tmp_path / "X"
    write_recogs(exp / "d" / "recogs-s.txt", [("u", ["hello", "World"], ["HELLO", "world"])])
    assert score_decode_dir(exp, exp / "d", text_norm="upper")[0].wer == 0.0
    assert score_decode_dir(exp, exp / "d", text_norm="lower")[0].wer == 0.0


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("c2:\thyp=", "recogs-clean.txt:3: cut 'c2' has a ref line but no hyp line"),
        ("c3:\tref=", "recogs-clean.txt:5: cut 'c3' has a hyp line but no ref line"),
    ],
)
def test_score_names_the_file_and_line_of_a_lone_ref_or_hyp(
    tmp_path: Path, capsys: pytest.CaptureFixture, drop: str, message: str
) -> None:
    exp = tmp_path / "exp" / "X"
    decode = _make_decode_dir(exp)
    recogs = decode / "recogs-clean.txt"
    kept = [line for line in recogs.read_text().splitlines(True) if not line.startswith(drop)]
    recogs.write_text("".join(kept))
    assert score_bin.main(["--exp-dir", str(exp), "--decode-dir", str(decode)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (exp / "wer").exists()
