"""prepare_espeak_corpus writes valid Lhotse manifests, reproducibly and only once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import soundfile as sf
from lhotse import CutSet, load_manifest
from lhotse.qa import validate

from slamasr.bin import prepare_espeak_corpus as cli
from slamasr.corpora.espeak import OOD_VOICES, TRAIN_VOICES
from slamasr.corpora.espeak_corpus import (
    manifest_path,
    plan_split,
    prepare_espeak_corpus,
    synthesize_missing,
)
from slamasr.corpora.sentences import normalize_text

pytest.importorskip("espeakng_loader")
SIZES = {"train": 4, "dev": 2, "test": 2, "test_ood": 3}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("espeak")
    prepare_espeak_corpus(out_dir, 4, 2, 2, 3, seed=11, num_jobs=1)
    return out_dir


@pytest.mark.parametrize("split", list(SIZES))
def test_manifests_are_valid_lhotse(corpus, split):
    cuts = CutSet.from_file(manifest_path(corpus, "cuts", split))
    validate(cuts, read_data=True)
    assert len(cuts) == SIZES[split]
    for cut in cuts:
        supervision = cut.supervisions[0]
        assert cut.duration > 0.3 and cut.sampling_rate == 16000
        assert supervision.text == normalize_text(supervision.custom["display"])
        assert (corpus / "audio" / split / f"{cut.id}.flac").is_file()
        voices = OOD_VOICES if split == "test_ood" else TRAIN_VOICES
        assert supervision.speaker in voices
    recordings = load_manifest(manifest_path(corpus, "recordings", split))
    supervisions = load_manifest(manifest_path(corpus, "supervisions", split))
    assert sorted(recordings.ids) == sorted(cuts.ids) == sorted(s.id for s in supervisions)


def test_cut_ids_are_deterministic(corpus):
    ids = CutSet.from_file(manifest_path(corpus, "cuts", "dev")).ids
    assert list(ids) == ["espeak-dev-s11-000000", "espeak-dev-s11-000001"]


def test_audio_is_the_same_whatever_the_jobs_and_after_an_interruption(tmp_path):
    """eSpeak carries state from one utterance to the next and seeds its noise from the
    clock; the chunked, seeded synthesis writes the same samples with 1 or 2 jobs, and an
    utterance re-synthesized after an interrupted run is the one an uninterrupted run has."""
    one = plan_split(tmp_path / "one", "test_ood", 5, seed=3)  # f3 is a noisy voice
    two = plan_split(tmp_path / "two", "test_ood", 5, seed=3)
    assert synthesize_missing(one, 1, chunk_size=3)[0] == 5
    time.sleep(1.0)  # unseeded, eSpeak's noise differs between processes started apart
    assert synthesize_missing(two, 2, chunk_size=3)[0] == 5
    lost = one[4].audio_path  # the second chunk's second utterance
    lost.unlink()
    assert synthesize_missing(one, 2, chunk_size=3)[0] == 1
    assert synthesize_missing(one, 2, chunk_size=3)[0] == 0
    for a, b in zip(one, two):
        samples_a, samples_b = sf.read(a.audio_path)[0], sf.read(b.audio_path)[0]
        assert samples_a.shape == samples_b.shape and (samples_a == samples_b).all(), a.cut_id


def test_rerun_skips_finished_work(corpus):
    path = manifest_path(corpus, "cuts", "train")
    before = path.stat().st_mtime_ns
    prepare_espeak_corpus(corpus, 4, 2, 2, 3, seed=11, num_jobs=1)
    assert path.stat().st_mtime_ns == before


def test_missing_manifests_are_rebuilt_without_resynthesis(corpus):
    audio = next((corpus / "audio" / "test").glob("*.flac"))
    audio_mtime = audio.stat().st_mtime_ns
    manifest_path(corpus, "cuts", "test").unlink()
    prepare_espeak_corpus(corpus, 4, 2, 2, 3, seed=11, num_jobs=1)
    assert manifest_path(corpus, "cuts", "test").is_file()
    assert audio.stat().st_mtime_ns == audio_mtime


def test_too_many_ood_sentences_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="num_ood"):
        prepare_espeak_corpus(tmp_path, 0, 0, 0, 100_000)


def test_command_line_entry_point(tmp_path):
    args = ["--out-dir", str(tmp_path), "--num-train", "2", "--num-dev", "0", "--num-test", "0"]
    cli.main(args + ["--num-ood", "1", "--num-jobs", "2"])
    assert len(CutSet.from_file(manifest_path(tmp_path, "cuts", "train"))) == 2
    assert not manifest_path(tmp_path, "cuts", "dev").exists()


def test_larger_split_extends_the_smaller_one(tmp_path):
    path = prepare_espeak_corpus(tmp_path, 2, 0, 0, 0, seed=5)["train"]
    small = [(c.id, c.supervisions[0].text) for c in CutSet.from_file(path)]
    first_audio = tmp_path / "audio" / "train" / f"{small[0][0]}.flac"
    mtime = first_audio.stat().st_mtime_ns
    path = prepare_espeak_corpus(tmp_path, 3, 0, 0, 0, seed=5)["train"]
    large = [(c.id, c.supervisions[0].text) for c in CutSet.from_file(path)]
    assert len(large) == 3 and large[:2] == small
    assert first_audio.stat().st_mtime_ns == mtime
