"""validate_data: every problem of a corpus reported by kind with cut ids; exit status."""

from pathlib import Path

from lhotse import CutSet

from slamasr.bin import validate_data
from slamasr.data.config import DataConfig
from slamasr.data.validate import validate_cuts
from tests.data.conftest import corrupt, make_cut, write_audio


def _corpus(tmp_path: Path) -> CutSet:
    def cut(name: str, seconds: float, text: str = "a fine text", sr: int = 16000):
        path = write_audio(tmp_path / f"{name}.wav", seconds, sr=sr)
        return make_cut(path, text, cut_id=name)

    cuts = {
        "ok": cut("ok", 1.0),
        "missing": cut("missing", 1.0),
        "corrupt": cut("corrupt", 1.0),
        "truncated": cut("truncated", 1.0),
        "empty": cut("empty", 1.0, "   "),
        "short": cut("short", 0.05),
        "long": cut("long", 3.0, ""),  # two problems on one cut
        "rate8k": cut("rate8k", 1.0, "\u00bfQu\u00e9 tal?", sr=8000),
    }
    Path(cuts["missing"].recording.sources[0].source).unlink()
    corrupt(Path(cuts["corrupt"].recording.sources[0].source))
    write_audio(Path(cuts["truncated"].recording.sources[0].source), 0.5)
    return CutSet.from_cuts(cuts.values())


def test_validate_reports_all_problems_by_kind(tmp_path: Path) -> None:
    cfg = DataConfig(input_kind="audio", max_audio_seconds=2.0)
    report = validate_cuts(_corpus(tmp_path), cfg)
    assert report.num_cuts == 8 and not report.ok
    assert dict(report.problems) == {
        "missing_audio": ["missing"],
        "unreadable_audio": ["corrupt"],
        "duration_mismatch": ["truncated"],
        "empty_text": ["empty", "long"],
        "too_short": ["short"],
        "too_long": ["long"],
    }
    assert report.notes["resampled"] == ["rate8k"]
    assert report.notes["text_changed_by_normalization"] == ["rate8k"]


def test_validate_cli_exit_status_and_listing(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad_cuts.jsonl.gz"
    _corpus(tmp_path / "bad").to_file(bad)
    assert validate_data.main(["--cuts", str(bad), "--max-audio-seconds", "2"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEMS FOUND" in out
    assert "problem missing_audio: 1 cut(s): missing" in out
    assert "problem empty_text: 2 cut(s): empty long" in out

    good = tmp_path / "good_cuts.jsonl.gz"
    CutSet.from_cuts([make_cut(write_audio(tmp_path / "g.wav", 1.0), "fine")]).to_file(good)
    assert validate_data.main(["--cuts", str(good)]) == 0
    assert "1 cuts checked; OK" in capsys.readouterr().out


def test_validate_flags_cuts_without_features_for_feature_inputs(tmp_path: Path) -> None:
    cuts = CutSet.from_cuts([make_cut(write_audio(tmp_path / "g.wav", 1.0), "fine")])
    report = validate_cuts(cuts, DataConfig(input_kind="whisper_mel"))
    assert dict(report.problems) == {"no_features": ["g"]}


def test_validate_an_empty_manifest_is_a_problem(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty_cuts.jsonl.gz"
    CutSet.from_cuts([]).to_file(empty)
    assert validate_data.main(["--cuts", str(empty), "--num-jobs", "1"]) == 1
    out = capsys.readouterr().out
    assert "0 cuts checked; PROBLEMS FOUND (the manifest holds no cuts)" in out


def test_validate_reports_absurd_transcripts_and_text_breaking_ids(tmp_path: Path) -> None:
    def cut(name: str, text: str, cut_id: str | None = None):
        return make_cut(write_audio(tmp_path / f"{name}.wav", 2.0), text, cut_id=cut_id or name)

    cuts = CutSet.from_cuts(
        [
            cut("normal", "a fine text of normal length spoken at a normal rate"),
            cut("absurd", "word " * 1000),  # 5,000 characters on 2 s of audio
            cut("fast", "x" * 199),  # 99.5 characters per second: kept
            cut("tab", "fine", cut_id="a\tb"),
            cut("dots", "fine", cut_id="../../x"),  # a path-like id is harmless data
        ]
    )
    report = validate_cuts(cuts, DataConfig(input_kind="audio"))
    assert dict(report.problems) == {
        "too_many_chars_per_second": ["absurd"],
        "unsafe_id": ["a\tb"],
    }


def test_validate_with_one_or_two_jobs_gives_the_same_report(tmp_path: Path) -> None:
    from slamasr.data.validate import validate_manifest

    path = tmp_path / "cuts.jsonl.gz"
    corpus = list(_corpus(tmp_path / "c"))
    many = [c.with_id(f"{c.id}-{i}") for i in range(4) for c in corpus]  # 32 cuts
    CutSet.from_cuts(many).to_file(path)
    cfg = DataConfig(input_kind="audio", max_audio_seconds=2.0)
    one = validate_manifest(path, cfg, num_jobs=1, chunk_size=3)
    two = validate_manifest(path, cfg, num_jobs=2, chunk_size=3)
    assert one.num_cuts == two.num_cuts == 32
    assert one.format(max_ids=100) == two.format(max_ids=100)
    assert (dict(one.problems), dict(one.notes)) == (dict(two.problems), dict(two.notes))
    assert one.problems["missing_audio"] == [f"missing-{i}" for i in range(4)]  # manifest order
    assert dict(one.problems) == {
        k: [cid for c in many if c.id.rsplit("-", 1)[0] in v for cid in [c.id]]
        for k, v in dict(validate_cuts(CutSet.from_cuts(corpus), cfg).problems).items()
    }
