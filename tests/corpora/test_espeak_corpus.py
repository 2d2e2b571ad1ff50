"""prepare_espeak_corpus writes valid Lhotse manifests, reproducibly and only once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, load_manifest
from lhotse.qa import validate

from slamasr.bin import prepare_espeak_corpus as cli
from slamasr.corpora import engines
from slamasr.corpora.espeak import DEV_OOD_VOICES, OOD_VOICES, TRAIN_VOICES, UNSEEN_VOICES
from slamasr.corpora.espeak_corpus import (
    PITCH_RANGE,
    RATE_RANGE,
    TRAIN_PROSODY,
    UNSEEN_START,
    manifest_path,
    plan_split,
    prepare_espeak_corpus,
    split_voices,
    synthesize_missing,
)
from slamasr.corpora.sentences import generate_sentences, normalize_text

pytest.importorskip("espeakng_loader")
SIZES = {"train": 4, "dev": 2, "test": 2, "test_ood": 3, "dev_ood": 2, "test_unseen": 4}
VOICES = {"test_ood": OOD_VOICES, "dev_ood": DEV_OOD_VOICES, "test_unseen": UNSEEN_VOICES}
EXTRA = {"num_dev_ood": 2, "num_unseen": 4}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("espeak")
    prepare_espeak_corpus(out_dir, 4, 2, 2, 3, seed=11, num_jobs=1, **EXTRA)
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
        assert supervision.speaker in VOICES.get(split, TRAIN_VOICES)
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
    prepare_espeak_corpus(corpus, 4, 2, 2, 3, seed=11, num_jobs=1, **EXTRA)
    assert path.stat().st_mtime_ns == before


def test_missing_manifests_are_rebuilt_without_resynthesis(corpus):
    audio = next((corpus / "audio" / "test").glob("*.flac"))
    audio_mtime = audio.stat().st_mtime_ns
    manifest_path(corpus, "cuts", "test").unlink()
    prepare_espeak_corpus(corpus, 4, 2, 2, 3, seed=11, num_jobs=1, **EXTRA)
    assert manifest_path(corpus, "cuts", "test").is_file()
    assert audio.stat().st_mtime_ns == audio_mtime


def test_too_many_ood_sentences_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="num_ood"):
        prepare_espeak_corpus(tmp_path, 0, 0, 0, 100_000)


def test_test_reaching_unseen_sentences_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="num_test"):
        prepare_espeak_corpus(tmp_path, 0, 0, UNSEEN_START + 1, 0, num_unseen=1)


def test_too_many_dev_ood_sentences_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="num_dev_ood"):
        prepare_espeak_corpus(tmp_path, 0, 0, 0, 0, num_dev_ood=100_000)


def test_command_line_error_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--out-dir", str(tmp_path), "--num-ood", "100000"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "num_ood=100000" in err and "Traceback" not in err


def test_command_line_entry_point(tmp_path):
    args = ["--out-dir", str(tmp_path), "--num-train", "2", "--num-dev", "0", "--num-test", "0"]
    args += ["--num-dev-ood", "0", "--num-unseen", "0"]
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


def test_training_prosody_is_wide_and_the_other_splits_keep_theirs(tmp_path):
    train = plan_split(tmp_path, "train", 400, seed=0)
    for field, (low, high) in TRAIN_PROSODY.items():
        values = [getattr(u.setting, field) for u in train]
        assert low <= min(values) and max(values) <= high, field
        assert max(values) - min(values) >= 0.8 * (high - low), field  # spans its range
    assert TRAIN_PROSODY["rate"][1] - TRAIN_PROSODY["rate"][0] > 2 * (RATE_RANGE[1] - RATE_RANGE[0])
    for split in ("dev", "test", "test_ood", "dev_ood", "test_unseen"):
        for utt in plan_split(tmp_path, split, 40, seed=0):
            assert RATE_RANGE[0] <= utt.setting.rate <= RATE_RANGE[1], split
            assert PITCH_RANGE[0] <= utt.setting.pitch <= PITCH_RANGE[1], split
            assert (utt.setting.pitch_range, utt.setting.volume) == (50, 100), split


def test_test_plans_are_those_of_before_the_new_splits(tmp_path):
    """test draws voices, rates and pitches as before (values printed by main's code)."""
    plan = plan_split(tmp_path, "test", 3, seed=0)
    assert [(u.setting.voice, u.setting.rate, u.setting.pitch) for u in plan] == [
        ("en-us+m8", 165, 46),
        ("en-us+robert", 157, 51),
        ("en-us+klatt4", 168, 59),
    ]


def test_unseen_split_uses_new_voices_channels_and_sentences(tmp_path):
    plan = plan_split(tmp_path, "test_unseen", 60, seed=0)
    held_out = {v for engine in engines.OTHER_ENGINES.values() for v in engine.held_out}
    assert {u.setting.voice for u in plan} == set(UNSEEN_VOICES) | held_out
    assert {u.condition for u in plan} == {"clean", "telephone", "brown"}
    texts = {u.sentence.text for u in plan}
    assert not texts & {s.text for s in generate_sentences(20000, 0, "train")}
    assert not texts & {s.text for s in generate_sentences(UNSEEN_START, 0, "test")}
    brown = [u for u in plan if u.condition == "brown"]
    assert all(8.0 <= u.snr <= 15.0 for u in brown)
    assert all(u.synth_path != u.audio_path for u in brown)


def test_unseen_channels_are_rendered_and_recorded(corpus):
    cuts = CutSet.from_file(manifest_path(corpus, "cuts", "test_unseen"))
    for cut, utt in zip(cuts, plan_split(corpus, "test_unseen", SIZES["test_unseen"], seed=11)):
        condition = cut.supervisions[0].custom.get("condition", "clean")
        assert condition.split("@")[0] == utt.condition
        if utt.condition != "clean":
            clean, rendered = sf.read(utt.synth_path)[0], cut.load_audio()[0]
            assert clean.shape == rendered.shape and not np.allclose(clean, rendered)


def test_another_engine_joins_training_and_its_held_out_voice_tests(tmp_path, monkeypatch):
    engine = engines.Engine("tests.corpora.fake_engine", held_out=("high",))
    monkeypatch.setitem(engines.OTHER_ENGINES, "fake", engine)
    train_pairs, unseen_pairs = split_voices("train"), split_voices("test_unseen")
    assert ("fake", "low") in train_pairs and ("fake", "mid") in train_pairs
    assert ("fake", "high") not in train_pairs and ("fake", "high") in unseen_pairs
    assert not {("fake", "low"), ("fake", "mid")} & set(unseen_pairs)
    assert not {pair for pair in split_voices("test") if pair[0] == "fake"}
    cuts = prepare_espeak_corpus(tmp_path, 60, 0, 0, 0, seed=2, num_jobs=2, num_unseen=30)
    train = list(CutSet.from_file(cuts["train"]))
    unseen = list(CutSet.from_file(cuts["test_unseen"]))
    train_speakers = {c.supervisions[0].speaker for c in train}
    unseen_speakers = {c.supervisions[0].speaker for c in unseen}
    assert {"fake:low", "fake:mid"} <= train_speakers and "fake:high" not in train_speakers
    assert "fake:high" in unseen_speakers and not {"fake:low", "fake:mid"} & unseen_speakers
    fake = next(c for c in train if c.supervisions[0].speaker == "fake:low")
    words = len(fake.supervisions[0].custom["display"].split())
    assert fake.duration == pytest.approx(0.25 * words)
    assert fake.supervisions[0].custom["engine"] == "fake"


def test_held_out_voice_must_be_one_of_the_engine(monkeypatch):
    engine = engines.Engine("tests.corpora.fake_engine", held_out=("nobody",))
    with pytest.raises(ValueError, match="nobody"):
        engine.train_voices()
