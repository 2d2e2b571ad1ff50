"""Manifests: LibriSpeech recipe on a fake tree, fast download failure, Kaldi dir, TSV list."""

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
