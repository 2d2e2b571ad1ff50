"""Training-audio augmentation as icefall recipes do it with Lhotse, materialised once.

Each training utterance gets one seeded condition (:func:`choose_condition`): clean, or one or
two of

- speed perturbation 0.9 / 1.1 (as Lhotse's ``cut.perturb_speed``),
- reverberation with a synthetic room impulse response (as Lhotse's ``cut.reverb_rir``; the
  responses are generated here, :func:`synthetic_rir`: Lhotse's own generator needs
  torchaudio, which has no wheel for this torch),
- additive noise at an SNR of 10-20 dB (as Lhotse's ``cut.mix(..., snr=)``): white or pink
  noise generated here, or babble of three other training utterances.

The signal processing is numpy's, the computation Lhotse's transforms do: on eSpeak cuts here
Lhotse's ``perturb_speed`` took 57 ms and ``reverb_rir`` 250 ms per utterance (a direct
convolution), against a few ms each with FFTs, and stage 2 reads plain files. The rendered
audio is written as FLAC; the cut keeps its id and text, and ``supervision.custom["augment"]``
names its condition. Same utterance, other condition: no copies, no extra audio. Everything
depends only on the seed and the cut id, not on the number of jobs.

Example::

    augment_cuts("data/manifests/espeak_cuts_train.jsonl.gz",
                 "data/manifests/espeak_cuts_train_aug.jsonl.gz", "data/augment", seed=0)
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, RecordingSet
from lhotse.utils import fastcopy
from scipy.signal import butter, fftconvolve, lfilter, resample_poly, sosfilt

SAMPLE_RATE = 16000
SPEEDS = (0.9, 1.1)
NOISE_KINDS = ("white", "pink", "babble")
KINDS = ("speed", "reverb", "noise")
CLEAN_SHARE = 1 / 3
SNR_RANGE = (10.0, 20.0)
NUM_RIRS = 40
T60_RANGE = (0.2, 0.8)
NOISE_SECONDS = 30.0
BABBLE_TALKERS = 3
AUGMENT_CHUNK = 500


@dataclass(frozen=True)
class Sources:
    """What conditions draw on: responses and noises by id, babble talkers' samples."""

    rirs: dict[str, np.ndarray]
    noises: dict[str, np.ndarray]
    talkers: list[np.ndarray]


@dataclass(frozen=True)
class Condition:
    """One utterance's recording condition (all ``None``: clean).

    Attributes:
        speed: speed factor, or None.
        rir: id of the room impulse response recording, or None.
        noise: "white", "pink" or "babble", or None.
        snr: signal-to-noise ratio in dB of the added noise.
        seed: seed of the noise excerpt (offset, babble talkers).
    """

    speed: float | None = None
    rir: str | None = None
    noise: str | None = None
    snr: float | None = None
    seed: int = 0

    def describe(self) -> str:
        """e.g. ``"speed0.9+reverb:rir07+noise:pink@13.2dB"``, or ``"clean"``."""
        parts = []
        if self.speed is not None:
            parts.append(f"speed{self.speed}")
        if self.rir is not None:
            parts.append(f"reverb:{self.rir}")
        if self.noise is not None:
            parts.append(f"noise:{self.noise}@{self.snr:.1f}dB")
        return "+".join(parts) or "clean"


def choose_condition(
    rng: random.Random,
    rir_ids: list[str],
    noise_kinds: tuple[str, ...] = NOISE_KINDS,
    snr_range: tuple[float, float] = SNR_RANGE,
) -> Condition:
    """Draws one condition: clean with probability 1/3, else one or two of speed/reverb/noise.

    Args:
        rng: the utterance's random generator.
        rir_ids: ids of the impulse responses to choose from.
        noise_kinds: kinds of noise to choose from.
        snr_range: SNR range in dB (uniform).

    Returns:
        The condition.
    """
    if rng.random() < CLEAN_SHARE:
        return Condition(seed=rng.getrandbits(31))
    kinds = rng.sample(KINDS, rng.choice((1, 2)))
    return Condition(
        speed=rng.choice(SPEEDS) if "speed" in kinds else None,
        rir=rng.choice(rir_ids) if "reverb" in kinds else None,
        noise=rng.choice(noise_kinds) if "noise" in kinds else None,
        snr=round(rng.uniform(*snr_range), 1) if "noise" in kinds else None,
        seed=rng.getrandbits(31),
    )


def synthetic_rir(rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A statistical room impulse response: a direct-path impulse, then a diffuse tail of
    Gaussian noise decaying by 60 dB over the room's T60, darkened as it decays (air and wall
    absorption: a one-pole low-pass whose cut-off falls with time, applied in 8 segments).

    Args:
        rng: numpy generator (T60, distance, direct-to-reverberant ratio, tail noise).
        sample_rate: rate in Hz.

    Returns:
        float32 response, peak 1 at the direct path, shape (num_samples,).
    """
    t60 = rng.uniform(*T60_RANGE)
    delay = int(rng.uniform(1.0, 6.0) / 343.0 * sample_rate)  # 1-6 m source distance
    length = delay + int(t60 * sample_rate)
    t = np.arange(length - delay) / sample_rate
    tail = rng.standard_normal(length - delay) * np.exp(-6.908 * t / t60)
    segments = np.array_split(tail, 8)
    tail = np.concatenate(  # smoother (darker) the later it comes
        [
            lfilter([1.0 - (0.15 + 0.1 * i)], [1.0, -(0.15 + 0.1 * i)], segment)
            for i, segment in enumerate(segments)
        ]
    )
    drr_db = rng.uniform(-3.0, 8.0)  # direct-to-reverberant energy ratio
    tail *= np.sqrt(1.0 / (np.sum(tail**2) * 10 ** (drr_db / 10)))
    rir = np.zeros(length)
    rir[delay:] = tail
    rir[delay] = 1.0
    return (rir / np.abs(rir).max()).astype(np.float32)


def colored_noise(kind: str, rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) Gaussian noise, peak 0.5.

    Args:
        kind: "white", "pink" or "brown" (brown: test_unseen only, never in training).
        rng: numpy generator.
        num_samples: length.

    Returns:
        float32 samples, shape (num_samples,).
    """
    white = rng.standard_normal(num_samples)
    if kind == "white":
        noise = white
    elif kind in ("pink", "brown"):
        spectrum = np.fft.rfft(white)
        freqs = np.arange(spectrum.shape[0], dtype=np.float64)
        freqs[0] = 1.0
        shaping = np.sqrt(freqs) if kind == "pink" else freqs
        noise = np.fft.irfft(spectrum / shaping, n=num_samples)
    else:
        raise ValueError(f"noise kind {kind!r}; choose white, pink or brown")
    return (0.5 * noise / np.abs(noise).max()).astype(np.float32)


def telephone(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A narrow-band telephone line: 8 kHz, 300-3400 Hz band-pass, G.711 mu-law (8 bits),
    back to ``sample_rate``. Never used in training.

    Args:
        samples: float samples, shape (num_samples,).
        sample_rate: their rate (16 kHz).

    Returns:
        float32 samples at ``sample_rate``, same length.
    """
    narrow = resample_poly(samples, 8000, sample_rate)
    narrow = sosfilt(butter(4, (300, 3400), btype="bandpass", fs=8000, output="sos"), narrow)
    peak = float(np.abs(narrow).max()) or 1.0
    x = np.clip(narrow / peak, -1.0, 1.0)  # mu-law on a full-scale line, 256 levels
    code = np.round(np.sign(x) * np.log1p(255 * np.abs(x)) / np.log(256) * 127) / 127
    x = np.sign(code) * np.expm1(np.abs(code) * np.log(256)) / 255 * peak
    wide = resample_poly(x, sample_rate, 8000)[: samples.shape[0]]
    return np.pad(wide, (0, samples.shape[0] - wide.shape[0])).astype(np.float32)


def unseen_channel(
    samples: np.ndarray, sample_rate: int, condition: str, snr: float, seed: str
) -> np.ndarray:
    """test_unseen's channels, none of them in training: ``"telephone"`` or ``"brown"``
    (brown noise at ``snr`` dB, seeded by ``seed``).

    Returns:
        float32 samples, same length, peak at most 0.99.
    """
    if condition == "telephone":
        out = telephone(samples, sample_rate).astype(np.float64)
    elif condition == "brown":
        rng = np.random.default_rng(list(seed.encode()))
        out = add_noise(
            samples.astype(np.float64), colored_noise("brown", rng, samples.shape[0]), snr
        )
    else:
        raise ValueError(f"unknown test_unseen channel {condition!r}; use telephone or brown")
    peak = float(np.abs(out).max()) if out.size else 0.0
    return (out * (0.99 / peak) if peak > 0.99 else out).astype(np.float32)


def _write(path: Path, make: Callable[[], np.ndarray], recording_id: str) -> Recording:
    """Writes ``make()`` as a 16-kHz FLAC (unless the file exists); returns its recording."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(tmp, make(), SAMPLE_RATE, format="FLAC")
        os.replace(tmp, path)
    return Recording.from_file(path, recording_id=recording_id)


def prepare_sources(
    out_dir: Path, seed: int, noise_kinds: tuple[str, ...] = ("white", "pink")
) -> tuple[RecordingSet, RecordingSet]:
    """The synthetic impulse responses and noises, written once under ``out_dir/s<seed>``.

    Args:
        out_dir: e.g. ``data/augment`` (gets ``s<seed>/rirs/`` and ``s<seed>/noise/``).
        seed: seed of the responses and noises.
        noise_kinds: generated noise kinds (babble comes from the utterances themselves).

    Returns:
        ``(rirs, noises)``: recording ids ``rir00``..., and the noise kinds.
    """
    out_dir = Path(out_dir) / f"s{seed}"
    rirs = []
    for index in range(NUM_RIRS):
        rng = np.random.default_rng([seed, 1, index])
        rir_id = f"rir{index:02d}"
        path = out_dir / "rirs" / f"{rir_id}.flac"
        rirs.append(_write(path, functools.partial(synthetic_rir, rng), rir_id))
    noises = []
    num_samples = int(NOISE_SECONDS * SAMPLE_RATE)
    for index, kind in enumerate(noise_kinds):
        rng = np.random.default_rng([seed, 2, index])
        make = functools.partial(colored_noise, kind, rng, num_samples)
        noises.append(_write(out_dir / "noise" / f"{kind}.flac", make, kind))
    return RecordingSet.from_recordings(rirs), RecordingSet.from_recordings(noises)


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi/Lhotse speed perturbation: the audio read as if sampled at ``factor`` x 16 kHz
    and resampled to 16 kHz (duration / factor, pitch x factor); polyphase resampling."""
    ratio = Fraction(SAMPLE_RATE, round(SAMPLE_RATE * factor))  # 0.9: 10/9
    return resample_poly(samples, ratio.numerator, ratio.denominator)


def reverberate(samples: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Kaldi's ``wav-reverberate`` (as Lhotse's ``ReverbWithImpulseResponse``): convolution,
    output shifted by the response's peak and cut to the input's length, power kept."""
    wet = fftconvolve(samples, rir)
    shift = int(np.argmax(np.abs(rir)))
    wet = wet[shift : shift + samples.shape[0]]
    power_in, power_out = np.mean(samples**2), np.mean(wet**2)
    return wet * np.sqrt(power_in / power_out) if power_out > 0 else wet


def add_noise(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Adds ``noise`` (tiled or cut to length) scaled to ``snr_db`` against the whole signal,
    as Lhotse's ``cut.mix(..., snr=)`` does."""
    reps = -(-samples.shape[0] // max(1, noise.shape[0]))
    noise = np.tile(noise, reps)[: samples.shape[0]]
    power_s, power_n = np.mean(samples**2), np.mean(noise**2)
    if power_n == 0 or power_s == 0:
        return samples
    return samples + noise * np.sqrt(power_s / (power_n * 10 ** (snr_db / 10)))


def babble(talkers: list[np.ndarray], num_samples: int) -> np.ndarray:
    """Several utterances at equal power, summed (each tiled to ``num_samples``)."""
    total = np.zeros(num_samples)
    for talker in talkers:
        tiled = np.tile(talker, -(-num_samples // max(1, talker.shape[0])))[:num_samples]
        power = np.mean(tiled**2)
        total += tiled / np.sqrt(power) if power > 0 else tiled
    return total


def render(samples: np.ndarray, cond: Condition, sources: Sources) -> np.ndarray:
    """The utterance under ``cond``: speed, then room, then noise.

    Args:
        samples: clean float samples at 16 kHz, shape (num_samples,).
        cond: the condition.
        sources: impulse responses, noises and babble talkers.

    Returns:
        float32 samples, peak at most 0.99, shape (num_samples / speed,).
    """
    out = samples.astype(np.float64)
    if cond.speed is not None:
        out = speed_perturb(out, cond.speed)
    if cond.rir is not None:
        out = reverberate(out, sources.rirs[cond.rir])
    if cond.noise is not None:
        rng = random.Random(cond.seed)
        if cond.noise == "babble":
            noise = babble(sources.talkers, out.shape[0])
        else:
            full = sources.noises[cond.noise]
            offset = rng.randrange(max(1, full.shape[0] - out.shape[0]))
            noise = full[offset:]
        out = add_noise(out, noise, cond.snr)
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > 0.99:  # noise can push the sum beyond full scale
        out = out * (0.99 / peak)
    return out.astype(np.float32)


def materialize(clean: MonoCut, cond: Condition, sources: Sources, path: Path) -> MonoCut:
    """Renders the clean cut under ``cond`` to a FLAC file; returns a plain cut reading it.

    Args:
        clean: a clean mono cut with one supervision.
        cond: its condition, recorded in ``supervision.custom["augment"]``.
        sources: impulse responses, noises and babble talkers.
        path: FLAC path (reused if it exists: a killed run leaves no partial file); a clean
            condition writes none and keeps the clean cut's recording.

    Returns:
        A mono cut with the clean cut's id, text and speaker.
    """
    supervision = clean.supervisions[0]
    if cond.describe() == "clean":  # the clean file itself, not a copy
        custom = dict(supervision.custom or {}, augment="clean")
        return fastcopy(clean, supervisions=[fastcopy(supervision, custom=custom)])
    if not path.is_file():
        _write(path, lambda: render(clean.load_audio()[0], cond, sources), clean.id)
    recording = Recording.from_file(path, recording_id=clean.id)
    custom = dict(supervision.custom or {}, augment=cond.describe())
    supervision = fastcopy(supervision, start=0.0, duration=recording.duration, custom=custom)
    return MonoCut(
        id=clean.id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        recording=recording,
        supervisions=[supervision],
    )


def _augment_chunk(task: tuple[str, str, int, list[int]]) -> list[dict]:
    """Pool task: augments the cuts at ``indices`` of a manifest; returns them as dicts."""
    cuts_path, out_dir, seed, indices = task
    cuts = list(CutSet.from_file(cuts_path))
    rir_set, noise_set = prepare_sources(Path(out_dir), seed)
    rirs = {r.id: r.load_audio()[0] for r in rir_set}
    noises = {r.id: r.load_audio()[0] for r in noise_set}
    done = []
    for index in indices:
        clean = cuts[index]
        rng = random.Random(f"augment-{seed}-{clean.id}")
        cond = choose_condition(rng, list(rirs))
        talkers = []
        if cond.noise == "babble":
            picked = rng.sample(cuts, min(len(cuts), BABBLE_TALKERS + 1))
            talkers = [c.load_audio()[0] for c in picked if c.id != clean.id][:BABBLE_TALKERS]
        path = Path(out_dir) / f"s{seed}" / "audio" / f"{clean.id}.flac"
        done.append(materialize(clean, cond, Sources(rirs, noises, talkers), path).to_dict())
    return done


def augment_cuts(
    cuts_in: Path | str,
    cuts_out: Path | str,
    out_dir: Path | str,
    seed: int,
    num_jobs: int = 1,
    chunk_size: int = AUGMENT_CHUNK,
) -> Path:
    """Writes the augmented training manifest (skipped if it exists), order and ids kept.

    Args:
        cuts_in: clean cut manifest.
        cuts_out: manifest to write (its audio under ``out_dir/s<seed>/audio``).
        out_dir: directory of the augmented audio, impulse responses and noises.
        seed: augmentation seed.
        num_jobs: worker processes.
        chunk_size: cuts per pool task (each task reads the manifest and sources once).

    Returns:
        ``cuts_out``.
    """
    cuts_out, out_dir = Path(cuts_out), Path(out_dir)
    num = len(CutSet.from_file(cuts_in).to_eager())
    if cuts_out.is_file() and len(CutSet.from_file(cuts_out).to_eager()) == num:
        logging.info("%s exists with %d cuts; skipping augmentation", cuts_out, num)
        return cuts_out
    prepare_sources(out_dir, seed)  # once, before the workers read them
    tasks = [
        (str(cuts_in), str(out_dir), seed, list(range(s, min(s + chunk_size, num))))
        for s in range(0, num, chunk_size)
    ]
    start = time.perf_counter()
    if num_jobs > 1 and len(tasks) > 1:
        with multiprocessing.get_context("spawn").Pool(min(num_jobs, len(tasks))) as pool:
            chunks = pool.map(_augment_chunk, tasks)
    else:
        chunks = [_augment_chunk(task) for task in tasks]
    cuts = CutSet.from_dicts([d for chunk in chunks for d in chunk])
    if len(cuts) != num:
        raise RuntimeError(f"augmented {len(cuts)} of {num} cuts of {cuts_in}")
    cuts_out.parent.mkdir(parents=True, exist_ok=True)
    cuts.to_file(cuts_out)
    seconds = time.perf_counter() - start
    logging.info(
        "augmented %d cuts in %.1f s (%.1f ms/utt, %d jobs)",
        num,
        seconds,
        1000 * seconds / max(1, num),
        num_jobs,
    )
    return cuts_out
