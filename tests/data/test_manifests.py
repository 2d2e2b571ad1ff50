"""Manifests: LibriSpeech recipe on a fake tree, fast download failure, Kaldi dir, TSV list,
command/url audio sources refused without running them, the shuffled train-960."""

import time
from pathlib import Path

import pytest

from slamasr.bin import prepare_data_dir, prepare_librispeech
from slamasr.data.manifests import (
    CorpusDownloadError,
    cuts_from_kaldi_dir,
    cuts_from_tsv,
    download_librispeech_parts,
    load_cuts,
    prepare_librispeech_manifests,
)
from tests.data.conftest import write_audio

DEAD_URL = "http://127.0.0.1:9/resources"  # nothing listens on the discard port


def test_prepare_librispeech_writes_lazy_cut_manifests(fake_librispeech: Path, tmp_path: Path):
    out = tmp_path / "manifests"
    paths = prepare_librispeech_manifests(fake_librispeech, out, ["dev-clean", "test-other"])
    for part in ("dev-clean", "test-other"):
        assert paths[part] == out / f"librispeech_cuts_{part}.jsonl.gz"
        assert (out / f"librispeech_recordings_{part}.jsonl.gz").is_file()
        assert (out / f"librispeech_supervisions_{part}.jsonl.gz").is_file()
    cuts = load_cuts(paths["dev-clean"])
    assert cuts.is_lazy
    by_id = {c.id: c for c in cuts}
    assert sorted(by_id) == [f"1089-134686-{u:04d}" for u in range(3)]
    cut = by_id["1089-134686-0001"]
    assert cut.supervisions[0].text == "IT'S A FINE DAY"
    assert cut.sampling_rate == 16000
    assert cut.duration == pytest.approx(0.75)
    assert cut.load_audio().shape == (1, 12000)


def test_download_failure_is_fast_and_says_where_to_put_the_corpus(tmp_path: Path):
    start = time.monotonic()
    with pytest.raises(CorpusDownloadError) as err:
        download_librispeech_parts(tmp_path, ["dev-clean"], base_url=DEAD_URL, timeout=5)
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert "cannot download LibriSpeech from" in msg
    assert str(tmp_path / "LibriSpeech") in msg and "--corpus-dir" in msg


def test_download_skips_parts_already_present(fake_librispeech: Path):
    dl_dir = fake_librispeech.parent
    got = download_librispeech_parts(dl_dir, ["dev-clean", "test-other"], base_url=DEAD_URL)
    assert got == fake_librispeech


def test_prepare_librispeech_cli(fake_librispeech: Path, tmp_path: Path, caplog):
    out = tmp_path / "m"
    argv = ["--dl-dir", str(tmp_path / "empty"), "--output-dir", str(out), "--parts"]
    assert prepare_librispeech.main([*argv, "dev-clean", "--base-url", DEAD_URL]) == 1
    assert "cannot download LibriSpeech" in caplog.text
    assert (
        prepare_librispeech.main([*argv, "dev-clean", "--corpus-dir", str(fake_librispeech)]) == 0
    )
    assert len(load_cuts(out / "librispeech_cuts_dev-clean.jsonl.gz")) == 3


def test_kaldi_dir_with_8khz_audio_is_resampled(tmp_path: Path):
    d = tmp_path / "kaldi"
    a = write_audio(tmp_path / "a.wav", 1.0, sr=8000)
    b = write_audio(tmp_path / "b.wav", 0.5, sr=8000)
    d.mkdir()
    (d / "wav.scp").write_text(f"a {a}\nb {b}\n")
    (d / "text").write_text("a HELLO THERE\nb good bye\n")
    cuts = cuts_from_kaldi_dir(d, sampling_rate=8000)
    by_id = {c.id: c for c in cuts}
    assert sorted(by_id) == ["a", "b"]
    assert by_id["a"].sampling_rate == 16000
    assert by_id["a"].load_audio().shape == (1, 16000)
    assert by_id["b"].supervisions[0].text == "good bye"


def test_tsv_list_to_cuts_skips_unreadable_files(tmp_path: Path):
    write_audio(tmp_path / "x.flac", 1.0, sr=22050)
    write_audio(tmp_path / "y.wav", 0.5)
    tsv = tmp_path / "list.tsv"
    tsv.write_text(f"x.flac\tHello, world!\n{tmp_path / 'y.wav'}\tsecond one\nmissing.wav\tz\n")
    cuts, bad = cuts_from_tsv(tsv)
    assert bad == [str(tmp_path / "missing.wav")]
    by_id = {c.id: c for c in cuts}
    assert by_id["x"].sampling_rate == 16000
    assert by_id["x"].load_audio().shape == (1, 16000)
    assert by_id["y"].supervisions[0].text == "second one"
    out = tmp_path / "cuts.jsonl.gz"
    assert prepare_data_dir.main(["--tsv", str(tsv), "--output", str(out)]) == 0
    assert len(load_cuts(out)) == 2


# ------------------------------------------------------------------ command/url audio sources


def _command_source_manifest(tmp_path: Path, marker: Path, kind: str = "command") -> Path:
    """A manifest whose 2nd cut reads its audio through a command that creates ``marker``."""
    from lhotse import CutSet
    from lhotse.audio import AudioSource

    from tests.data.conftest import make_cut

    cuts = [make_cut(write_audio(tmp_path / f"u{i}.wav", 0.5), "a fine text") for i in range(3)]
    wav = cuts[1].recording.sources[0].source
    source = f"touch {marker} && cat {wav}" if kind == "command" else f"http://127.0.0.1:9/{wav}"
    cuts[1].recording.sources = [AudioSource(type=kind, channels=[0], source=source)]
    path = tmp_path / "foreign_cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path


@pytest.mark.parametrize("kind", ["command", "url"])
def test_load_cuts_refuses_command_and_url_sources_without_running_them(tmp_path, kind):
    from slamasr.data.manifests import UnsafeManifestError

    marker = tmp_path / "command_ran"
    path = _command_source_manifest(tmp_path, marker, kind)
    with pytest.raises(UnsafeManifestError) as err:
        load_cuts(path)
    msg = str(err.value)
    assert str(path) in msg and "'u1'" in msg and f"{kind!r} audio source" in msg
    assert "--allow-command-sources" in msg and "data.allow_command_sources=true" in msg
    assert not marker.exists()


def test_command_sources_run_only_after_the_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "command_ran"
    cuts = load_cuts(_command_source_manifest(tmp_path, marker), allow_command_sources=True)
    assert not marker.exists()  # loading reads metadata only ...
    assert {c.id: c for c in cuts}["u1"].load_audio().shape == (1, 8000)
    assert marker.exists()  # ... and the source really is a command that creates the marker


def test_an_escaped_source_type_is_refused_too(tmp_path: Path) -> None:
    """JSON may spell "command" as "\\u0063ommand"; the check parses such lines."""
    import gzip

    from slamasr.data.manifests import UnsafeManifestError

    marker = tmp_path / "ran"
    path = _command_source_manifest(tmp_path, marker)
    with gzip.open(path, "rt") as f:
        text = f.read().replace('"type": "command"', '"type": "\\u0063ommand"')
    assert "command" not in text and "url" not in text
    escaped = tmp_path / "escaped_cuts.jsonl"
    escaped.write_text(text.replace(str(marker), "/nonexistent/m"))
    with pytest.raises(UnsafeManifestError, match="'u1'"):
        load_cuts(escaped)


@pytest.mark.parametrize("tool", ["validate_data", "compute_features"])
def test_entry_points_refuse_command_sources_with_one_line(tmp_path, capsys, tool):
    from slamasr.bin import compute_features, validate_data

    marker = tmp_path / "command_ran"
    path = _command_source_manifest(tmp_path, marker)
    if tool == "validate_data":
        rc = validate_data.main(["--cuts", str(path), "--num-jobs", "1"])
    else:
        rc = compute_features.main(["--cuts", str(path), "--out-dir", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "'command' audio source" in err
    assert "Traceback" not in err and not marker.exists()


# ------------------------------------------------------------------ shuffled train-960


def test_combined_train_manifest_is_mixed_not_part_after_part(tmp_path: Path) -> None:
    from lhotse import CutSet, Recording
    from lhotse.audio import AudioSource
    from lhotse.testing.dummies import dummy_cut

    from slamasr.bin import combine_cuts

    def file_cut(i: int):  # metadata only (Lhotse's dummy recording is a command source)
        src = AudioSource(type="file", channels=[0], source=f"/corpus/{i}.flac")
        rec = Recording(f"rec{i}", [src], sampling_rate=16000, num_samples=16000, duration=1.0)
        return dummy_cut(i, recording=rec)

    sizes = {"train-clean-100": 285, "train-clean-360": 1041, "train-other-500": 1487}  # /100
    inputs, start = [], 0
    for part, num in sizes.items():
        inputs.append(tmp_path / f"librispeech_cuts_{part}.jsonl.gz")
        cuts = [file_cut(start + i) for i in range(num)]
        for cut in cuts:
            cut.id = f"{part}-{cut.id}"
        CutSet.from_cuts(cuts).to_file(inputs[-1])
        start += num
    out = tmp_path / "librispeech_cuts_train-960.jsonl.gz"
    assert combine_cuts.main(["--output", str(out), *map(str, inputs)]) == 0
    ids = [c.id for c in load_cuts(out)]
    expected = [c.id for p in inputs for c in load_cuts(p)]
    assert sorted(ids) == sorted(expected) and len(ids) == len(expected)  # nothing lost
    other = [cid.startswith("train-other-500") for cid in ids]
    overall = sum(other) / len(other)  # 0.53
    for quarter in range(4):  # each quarter of the epoch holds its share of "other"
        part = other[quarter * len(ids) // 4 : (quarter + 1) * len(ids) // 4]
        assert abs(sum(part) / len(part) - overall) < 0.06, (quarter, sum(part) / len(part))
    again = tmp_path / "again.jsonl.gz"
    combine_cuts.main(["--output", str(again), *map(str, inputs)])
    assert [c.id for c in load_cuts(again)] == ids  # seeded: the same order every time


def test_training_and_decoding_apply_the_command_source_policy(tmp_path: Path) -> None:
    """Training's manifest check and decoding's test-set loader refuse command sources too."""
    from slamasr.data.config import DataConfig
    from slamasr.decoding import load_test_set
    from slamasr.training.run import TrainDataError, check_manifests

    marker = tmp_path / "command_ran"
    path = _command_source_manifest(tmp_path, marker)
    with pytest.raises(TrainDataError, match="'command' audio source"):
        check_manifests(DataConfig(train_cuts=str(path), dev_cuts=str(path)))
    with pytest.raises(ValueError, match="'command' audio source"):
        load_test_set("t", str(path), DataConfig(), 0, 1)
    assert not marker.exists()
    allowed = DataConfig(train_cuts=str(path), allow_command_sources=True)
    check_manifests(allowed)  # opted in: accepted
    assert set(load_test_set("t", str(path), allowed, 0, 1).refs) == {
        c.id for c in load_cuts(path, allow_command_sources=True)
    }
