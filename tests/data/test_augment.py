"""Training augmentation: seeded conditions, the signal processing of each, and a
materialised manifest that does not depend on the number of jobs."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from slamasr.data import augment
from slamasr.data.augment import (
    Condition,
    Sources,
    add_noise,
    augment_cuts,
    choose_condition,
    colored_noise,
    render,
    reverberate,
    speed_perturb,
    synthetic_rir,
    telephone,
)
from tests.data.conftest import make_cut, write_audio

SR = 16000


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    return 0.3 * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)


def _peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * SR / samples.shape[0])


def _band_energy(samples: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.shape[0], 1 / SR)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def test_conditions_a_third_clean_the_rest_one_or_two_kinds():
    rng = random.Random(0)
    conds = [choose_condition(rng, ["rir00", "rir01"]) for _ in range(3000)]
    kinds = Counter(sum(x is not None for x in (c.speed, c.rir, c.noise)) for c in conds)
    assert set(kinds) == {0, 1, 2}
    assert abs(kinds[0] / 3000 - 1 / 3) < 0.04
    assert {c.speed for c in conds} == {None, 0.9, 1.1}
    assert {c.noise for c in conds} == {None, "white", "pink", "babble"}
    snrs = [c.snr for c in conds if c.noise is not None]
    assert 10.0 <= min(snrs) < 11.0 and 19.0 < max(snrs) <= 20.0
    again = [choose_condition(random.Random(0), ["rir00", "rir01"]) for _ in range(1)]
    assert again[0] == conds[0]


def test_speed_changes_duration_and_pitch_by_the_factor():
    tone = _tone(500.0, 2.0)
    for factor in (0.9, 1.1):
        out = speed_perturb(tone, factor)
        assert out.shape[0] == pytest.approx(tone.shape[0] / factor, abs=1)
        assert _peak_hz(out) == pytest.approx(500.0 * factor, abs=2.0)


def test_synthetic_rooms_decay_and_differ():
    rirs = [synthetic_rir(np.random.default_rng(i)) for i in range(5)]
    for rir in rirs:
        peak = int(np.argmax(np.abs(rir)))
        assert rir[peak] == 1.0 and peak < 0.02 * SR  # direct path within 6 m
        tail = rir[peak + 1 :]
        assert 0.2 * SR * 0.9 <= tail.shape[0] <= 0.8 * SR
        head, end = (
            np.split(tail[: tail.shape[0] // 4 * 4], 4)[0],
            np.split(tail[: tail.shape[0] // 4 * 4], 4)[3],
        )
        assert np.sum(end**2) < 0.01 * np.sum(head**2)  # -20 dB by the last quarter
    assert len({rir.shape[0] for rir in rirs}) > 1


def test_reverberation_keeps_length_and_power_and_smears_in_time():
    rir = synthetic_rir(np.random.default_rng(3))
    click = np.zeros(SR)
    click[1000] = 1.0
    wet = reverberate(click, rir)
    assert wet.shape == click.shape
    assert np.mean(wet**2) == pytest.approx(np.mean(click**2), rel=1e-6)
    assert int(np.argmax(np.abs(wet))) == 1000  # aligned on the direct path
    assert np.sum(wet[1100:] ** 2) > 0.05 * np.sum(wet**2)  # energy after the click


def test_noise_is_added_at_the_requested_snr():
    speech = _tone(300.0)
    noise = colored_noise("pink", np.random.default_rng(1), 5 * SR)
    for snr in (10.0, 17.5):
        mixed = add_noise(speech, noise, snr)
        added = mixed - speech
        assert 10 * np.log10(np.mean(speech**2) / np.mean(added**2)) == pytest.approx(snr, abs=1e-6)


def test_noise_colors_have_their_spectral_tilt():
    rng = np.random.default_rng(0)
    tilt = {}
    for kind in ("white", "pink", "brown"):
        noise = colored_noise(kind, rng, 4 * SR)
        tilt[kind] = _band_energy(noise, 100, 500) / _band_energy(noise, 4000, 4400)
    assert tilt["white"] == pytest.approx(1.0, rel=0.2)
    assert 10 < tilt["pink"] < 25 and tilt["brown"] > 10 * tilt["pink"]  # 1/f, 1/f^2
    with pytest.raises(ValueError, match="noise kind"):
        colored_noise("purple", rng, 10)


def test_telephone_line_cuts_the_high_band_and_keeps_the_length():
    rng = np.random.default_rng(5)
    wide = 0.2 * rng.standard_normal(SR)
    narrow = telephone(wide)
    assert narrow.shape == wide.shape
    assert _band_energy(narrow, 4500, 8000) < 1e-3 * _band_energy(wide, 4500, 8000)
    assert _band_energy(narrow, 500, 3000) > 0.3 * _band_energy(wide, 500, 3000)


def test_render_never_clips_and_clean_is_unchanged():
    speech = np.clip(_tone(200.0) * 3.2, -0.98, 0.98)  # near full scale
    sources = Sources({}, {"white": colored_noise("white", np.random.default_rng(0), SR)}, [])
    loud = render(speech, Condition(noise="white", snr=10.0), sources)
    assert np.abs(loud).max() <= 0.99 + 1e-6
    assert np.allclose(render(speech, Condition(), sources), speech, atol=1e-7)


@pytest.fixture(scope="module")
def clean_cuts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    cuts = [
        make_cut(write_audio(root / f"utt{i:02d}.flac", 0.6 + 0.1 * i, freq=200 + 40 * i),
                 f"sentence number {i}")
        for i in range(8)
    ]  # fmt: skip
    path = root / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path


def _read(manifest: Path) -> list[tuple[str, str, str, np.ndarray]]:
    return [
        (c.id, c.supervisions[0].text, c.supervisions[0].custom["augment"], c.load_audio()[0])
        for c in CutSet.from_file(manifest)
    ]


def test_materialised_manifest_is_the_same_whatever_the_jobs(clean_cuts, tmp_path):
    one = augment_cuts(clean_cuts, tmp_path / "a" / "cuts.jsonl.gz", tmp_path / "a", 7, 1)
    two = augment_cuts(clean_cuts, tmp_path / "b" / "cuts.jsonl.gz", tmp_path / "b", 7, 2, 3)
    first, second = _read(one), _read(two)
    clean = {c.id: c for c in CutSet.from_file(clean_cuts)}
    assert [x[0] for x in first] == list(clean)  # order and ids kept, nothing dropped
    for (cut_id, text, cond, audio), (*same, audio2) in zip(first, second):
        assert (cut_id, text, cond) == tuple(same) and np.array_equal(audio, audio2)
        assert text == clean[cut_id].supervisions[0].text
        original = clean[cut_id].load_audio()[0]
        if cond == "clean":
            assert np.allclose(audio, original, atol=1e-4)
        else:
            assert not (audio.shape == original.shape and np.allclose(audio, original, atol=1e-3))
        if "speed" in cond:
            factor = float(cond.split("speed")[1].split("+")[0])
            assert audio.shape[0] == pytest.approx(original.shape[0] / factor, abs=2)
    assert len({x[2] for x in first}) > 3  # several conditions among 8 utterances
    other = _read(augment_cuts(clean_cuts, tmp_path / "c" / "cuts.jsonl.gz", tmp_path / "c", 8))
    assert [x[2] for x in other] != [x[2] for x in first]  # the seed decides


def test_rerun_skips_and_a_changed_input_is_redone(clean_cuts, tmp_path):
    out = augment_cuts(clean_cuts, tmp_path / "cuts.jsonl.gz", tmp_path, 7)
    before = out.stat().st_mtime_ns
    augment_cuts(clean_cuts, out, tmp_path, 7)
    assert out.stat().st_mtime_ns == before
    fewer = tmp_path / "fewer.jsonl.gz"
    CutSet.from_file(clean_cuts).subset(first=5).to_file(fewer)
    augment_cuts(fewer, out, tmp_path, 7)
    assert len(CutSet.from_file(out)) == 5
    other_seed = augment_cuts(clean_cuts, tmp_path / "s8.jsonl.gz", tmp_path, 8)
    for cut, again in zip(CutSet.from_file(other_seed), CutSet.from_file(out)):
        conds = {c.supervisions[0].custom["augment"] for c in (cut, again)}
        same_file = cut.recording.sources[0].source == again.recording.sources[0].source
        assert same_file == (conds == {"clean"})  # a clean cut keeps the clean file itself


def test_sources_are_written_once_and_seeded(tmp_path):
    rirs, noises = augment.prepare_sources(tmp_path / "x", seed=1)
    augment.prepare_sources(tmp_path / "y", seed=1)
    assert len(rirs) == augment.NUM_RIRS and sorted(noises.ids) == ["pink", "white"]
    a = sf.read(tmp_path / "x" / "s1" / "rirs" / "rir05.flac")[0]
    b = sf.read(tmp_path / "y" / "s1" / "rirs" / "rir05.flac")[0]
    assert np.array_equal(a, b)
    augment.prepare_sources(tmp_path / "x", seed=2)
    c = sf.read(tmp_path / "x" / "s2" / "rirs" / "rir05.flac")[0]
    assert not (a.shape == c.shape and np.array_equal(a, c))
