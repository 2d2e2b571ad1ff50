"""The offline English speech corpus: generated sentences spoken by eSpeak NG, as Lhotse manifests.

Layout written under ``out_dir``::

    audio/<split>/<cut_id>.flac                          16 kHz mono FLAC
    manifests/espeak_{recordings,supervisions,cuts}_<split>.jsonl.gz

Splits:

- ``train``: generated sentences, 15 eSpeak voices, each utterance with its own random rate,
  pitch, pitch range and volume (wide ranges: :data:`TRAIN_PROSODY`);
- ``dev``, ``test``: held-out generated sentences, training voices, the narrow prosody of
  :data:`RATE_RANGE` / :data:`PITCH_RANGE`;
- ``dev_ood`` and ``test_ood``: two disjoint sets of hand-written everyday sentences, each
  spoken by its own voices, never used in training;
- ``test_unseen``: generated in-domain sentences under what training never hears: eSpeak's
  whispered, croaky and aged variants (:data:`UNSEEN_VOICES`), half of them through a
  telephone channel or in brown noise (:data:`UNSEEN_CONDITIONS`), and the held-out voices of
  any other engine of :data:`OTHER_ENGINES`.

Supervision text is the normalized target (lower case, no punctuation); ``custom["display"]``
keeps the punctuated form that was spoken. Cut ids depend only on the seed, the split and the
index, and finished work (audio files, complete manifests) is never redone.

Another synthesizer joins with one line in :data:`OTHER_ENGINES`: a module exposing
``synthesize(text, voice, wav_path, sample_rate)`` and ``VOICES``; its voices join training,
except the held-out ones, which speak in ``test_unseen``.
"""

from __future__ import annotations

import gzip
import logging
import multiprocessing
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from tqdm import tqdm

from slamasr.corpora.engines import OTHER_ENGINES, run_synthesis_task
from slamasr.corpora.espeak import (
    DEV_OOD_VOICES,
    OOD_VOICES,
    TRAIN_VOICES,
    UNSEEN_VOICES,
    VoiceSetting,
)
from slamasr.corpora.lexicon import read_list
from slamasr.corpora.sentences import Sentence, generate_sentences, normalize_text

SAMPLE_RATE = 16000
RATE_RANGE = (140, 170)
PITCH_RANGE = (40, 60)
"""eSpeak rate (words/min) and pitch of every split but train (as before training widened)."""
TRAIN_PROSODY = {
    "rate": (115, 210),
    "pitch": (20, 80),
    "pitch_range": (15, 95),
    "volume": (50, 110),
}
"""Training prosody: uniform ranges of :class:`VoiceSetting`'s fields, drawn per utterance
(volume at most a little above eSpeak's 100, which already peaks near full scale)."""
UNSEEN_CONDITIONS = ("clean", "clean", "telephone", "brown")
"""Channels of test_unseen, drawn per utterance: none (half), a telephone line, brown noise."""
UNSEEN_SNR_RANGE = (8.0, 15.0)
UNSEEN_START = 250
"""test_unseen speaks the test bucket's sentences from this index on: test may have up to
this many utterances."""
SPLITS = ("train", "dev", "test", "test_ood", "dev_ood", "test_unseen")
SYNTH_CHUNK = 512
"""Utterances per synthesis process: each chunk of a split's plan is spoken in order by a
fresh process, so the audio does not depend on the number of jobs or their scheduling."""
MANIFEST_KINDS = ("recordings", "supervisions", "cuts")


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: its id, both text forms, engine and voice, channel, audio path.

    ``condition`` is ``"clean"`` except in test_unseen; a conditioned utterance is synthesized
    to :attr:`synth_path` first, then rendered to ``audio_path``.
    """

    cut_id: str
    sentence: Sentence
    setting: VoiceSetting
    audio_path: Path
    engine: str = "espeak"
    condition: str = "clean"
    snr: float = 0.0

    @property
    def synth_path(self) -> Path:
        """Where the synthesizer writes: ``audio_path``, or ``<dir>/clean/`` if conditioned."""
        if self.condition == "clean":
            return self.audio_path
        return self.audio_path.parent / "clean" / self.audio_path.name


def ood_sentences() -> list[Sentence]:
    """The hand-written out-of-domain test sentences (``data/ood_sentences.txt``)."""
    return [Sentence(normalize_text(line), line) for line in read_list("ood_sentences")]


def dev_ood_sentences() -> list[Sentence]:
    """The hand-written out-of-domain dev sentences (``data/dev_ood_sentences.txt``)."""
    return [Sentence(normalize_text(line), line) for line in read_list("dev_ood_sentences")]


def split_voices(split: str) -> list[tuple[str, str]]:
    """``(engine, voice)`` pairs a split draws from.

    Args:
        split: one of :data:`SPLITS`.

    Returns:
        eSpeak's voices of the split, then other engines' (train: their training voices;
        test_unseen: their held-out ones; no other split has any).
    """
    espeak = {"test_ood": OOD_VOICES, "dev_ood": DEV_OOD_VOICES, "test_unseen": UNSEEN_VOICES}
    pairs = [("espeak", voice) for voice in espeak.get(split, TRAIN_VOICES)]
    for name, engine in OTHER_ENGINES.items():
        if split == "train":
            pairs += [(name, voice) for voice in engine.train_voices()]
        elif split == "test_unseen":
            pairs += [(name, voice) for voice in engine.held_out]
    return pairs


def split_sentences(split: str, num: int, seed: int) -> list[Sentence]:
    """The first ``num`` sentences of a split (hand-written ones: at most all of them)."""
    if split == "test_ood":
        return ood_sentences()[:num]
    if split == "dev_ood":
        return dev_ood_sentences()[:num]
    if split == "test_unseen":
        return unseen_sentences(num, seed)
    return generate_sentences(num, seed, split)


def unseen_sentences(num: int, seed: int) -> list[Sentence]:
    """test_unseen's sentences: the test bucket's from index :data:`UNSEEN_START` on, after
    any the test split uses (the generator's first sentences do not depend on the count)."""
    return generate_sentences(UNSEEN_START + num, seed, "test")[UNSEEN_START:] if num > 0 else []


def draw_setting(rng: random.Random, voice: str, split: str) -> VoiceSetting:
    """Prosody of one utterance: wide and four-dimensional in train, as before elsewhere."""
    if split != "train":
        return VoiceSetting(voice, rng.randint(*RATE_RANGE), rng.randint(*PITCH_RANGE))
    return VoiceSetting(voice, **{k: rng.randint(*r) for k, r in TRAIN_PROSODY.items()})


def manifest_path(out_dir: Path, kind: str, split: str) -> Path:
    """``out_dir/manifests/espeak_<kind>_<split>.jsonl.gz``."""
    return Path(out_dir) / "manifests" / f"espeak_{kind}_{split}.jsonl.gz"


def plan_split(out_dir: Path, split: str, num: int, seed: int) -> list[Utterance]:
    """Chooses sentences and voices of one split, deterministically from the seed.

    Args:
        out_dir: corpus root.
        split: one of :data:`SPLITS`.
        num: number of utterances (hand-written splits: at most their number of sentences).
        seed: random seed.

    Returns:
        The planned utterances.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    voices = split_voices(split)
    rng = random.Random(f"voices-{seed}-{split}")
    channel_rng = random.Random(f"channel-{seed}-{split}")
    plan = []
    for index, sentence in enumerate(split_sentences(split, num, seed)):
        engine, voice = rng.choice(voices)
        setting = draw_setting(rng, voice, split)
        condition, snr = "clean", 0.0
        if split == "test_unseen":
            condition = channel_rng.choice(UNSEEN_CONDITIONS)
            snr = round(channel_rng.uniform(*UNSEEN_SNR_RANGE), 1)
        cut_id = f"espeak-{split}-s{seed}-{index:06d}"
        suffix = ".flac" if engine == "espeak" else ".wav"
        path = Path(out_dir) / "audio" / split / f"{cut_id}{suffix}"
        plan.append(Utterance(cut_id, sentence, setting, path, engine, condition, snr))
    return plan


def synthesize_missing(
    plan: list[Utterance], num_jobs: int, chunk_size: int = SYNTH_CHUNK
) -> tuple[int, float]:
    """Synthesizes every planned utterance whose audio file does not exist yet.

    The plan is cut into chunks of ``chunk_size`` utterances, and each chunk with a missing
    file is spoken in order by a fresh process (eSpeak NG carries state from one utterance
    to the next): the samples depend only on the plan and ``chunk_size``, not on
    ``num_jobs``, the scheduling, or which files an interrupted run left behind.

    Args:
        plan: utterances of a split.
        num_jobs: worker processes.
        chunk_size: utterances per process.

    Returns:
        ``(number synthesized, seconds taken)``.
    """
    tasks = _synthesis_tasks(plan, chunk_size)
    if not tasks:
        return 0, 0.0
    start_time = time.perf_counter()
    count = 0
    context = multiprocessing.get_context("spawn")  # a fork would inherit a used library
    with context.Pool(max(1, min(num_jobs, len(tasks))), maxtasksperchild=1) as pool:
        results = pool.imap_unordered(run_synthesis_task, tasks)
        total = sum(1 for u in plan if _missing(u))
        with tqdm(total=total, desc="synthesize", unit="utt") as bar:
            for written in results:
                count += written
                bar.update(written)
    return count, time.perf_counter() - start_time


def _missing(utt: Utterance) -> bool:
    """Whether an utterance still has to be synthesized."""
    return not utt.audio_path.is_file() and not utt.synth_path.is_file()


def _synthesis_tasks(plan: list[Utterance], chunk_size: int) -> list[tuple[str, tuple]]:
    """Pool tasks of the chunks with a missing file: eSpeak chunks speak every utterance of
    the chunk in order (writing the missing ones), other engines' only the missing ones."""
    tasks: list[tuple[str, tuple]] = []
    for engine in ["espeak", *OTHER_ENGINES]:
        utts = [u for u in plan if u.engine == engine]
        for start in range(0, len(utts), chunk_size):
            chunk = utts[start : start + chunk_size]
            if not any(_missing(u) for u in chunk):
                continue
            if engine == "espeak":
                jobs = [
                    (u.sentence.display, u.setting, str(u.synth_path), _missing(u)) for u in chunk
                ]
                tasks.append((engine, (SAMPLE_RATE, jobs)))
            else:
                jobs = [
                    (u.sentence.display, u.setting.voice, str(u.synth_path))
                    for u in chunk
                    if _missing(u)
                ]
                tasks.append((engine, (OTHER_ENGINES[engine].module, SAMPLE_RATE, jobs)))
    return tasks


def apply_conditions(plan: list[Utterance]) -> int:
    """Renders each conditioned utterance's channel (telephone line, brown noise) from its
    synthesized file into its audio file, where that is missing.

    Returns:
        The number of files written.
    """
    from slamasr.data.augment import unseen_channel

    count = 0
    for utt in plan:
        if utt.condition == "clean" or utt.audio_path.is_file():
            continue
        samples, rate = sf.read(utt.synth_path, dtype="float32")
        rendered = unseen_channel(samples, rate, utt.condition, utt.snr, seed=utt.cut_id)
        tmp = utt.audio_path.with_name(f".{utt.audio_path.name}.tmp")
        sf.write(tmp, rendered, rate, format=utt.audio_path.suffix.lstrip(".").upper())
        os.replace(tmp, utt.audio_path)
        count += 1
    return count


def build_manifests(plan: list[Utterance]) -> CutSet:
    """Recordings, supervisions and cuts of synthesized utterances.

    Args:
        plan: utterances whose audio exists.

    Returns:
        Cuts with one supervision each; cut id == recording id == supervision id.
    """
    cuts = []
    for utt in plan:
        recording = Recording.from_file(utt.audio_path, recording_id=utt.cut_id)
        supervision = SupervisionSegment(
            id=utt.cut_id,
            recording_id=utt.cut_id,
            start=0.0,
            duration=recording.duration,
            channel=0,
            text=utt.sentence.text,
            language="English",
            speaker=utt.setting.voice
            if utt.engine == "espeak"
            else f"{utt.engine}:{utt.setting.voice}",
            custom=_custom(utt),
        )
        cut = MonoCut(
            id=utt.cut_id,
            start=0.0,
            duration=recording.duration,
            channel=0,
            recording=recording,
            supervisions=[supervision],
        )
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


def _custom(utt: Utterance) -> dict:
    """What a supervision records of how its utterance was made."""
    custom = {"display": utt.sentence.display, "engine": utt.engine}
    if utt.engine == "espeak":
        custom.update(rate=utt.setting.rate, pitch=utt.setting.pitch)
        custom.update(pitch_range=utt.setting.pitch_range, volume=utt.setting.volume)
    if utt.condition != "clean":
        custom["condition"] = (
            utt.condition if utt.condition != "brown" else (f"brown@{utt.snr:.1f}dB")
        )
    return custom


def _num_lines(path: Path) -> int:
    """Number of lines (= manifest items) of a ``.jsonl.gz`` file."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return sum(1 for _ in f)


def prepare_split(out_dir: Path, split: str, num: int, seed: int, num_jobs: int) -> Path:
    """Synthesizes one split and writes its three manifests, unless they already exist with
    ``num`` cuts. Audio files already present are reused (a larger ``num`` extends the split:
    the first utterances of a split do not depend on its size).

    Returns:
        The path of the split's cuts manifest.
    """
    paths = {kind: manifest_path(out_dir, kind, split) for kind in MANIFEST_KINDS}
    if all(path.is_file() for path in paths.values()) and _num_lines(paths["cuts"]) == num:
        logging.info("%s: %d cuts exist, skipping", split, num)
        return paths["cuts"]
    plan = plan_split(out_dir, split, num, seed)
    count, seconds = synthesize_missing(plan, num_jobs)
    apply_conditions(plan)
    if count:
        logging.info(
            "%s: synthesized %d utterances in %.1f s (%.1f utt/s, %d jobs)",
            split,
            count,
            seconds,
            count / seconds,
            num_jobs,
        )
    cuts = build_manifests(plan)
    paths["cuts"].parent.mkdir(parents=True, exist_ok=True)
    recordings, supervisions, _ = cuts.decompose()
    recordings.to_file(paths["recordings"])
    supervisions.to_file(paths["supervisions"])
    cuts.to_file(paths["cuts"])
    return paths["cuts"]


def prepare_espeak_corpus(
    out_dir: Path | str,
    num_train: int = 12000,
    num_dev: int = 200,
    num_test: int = 200,
    num_ood: int = 220,
    seed: int = 0,
    num_jobs: int = 2,
    num_dev_ood: int = 0,
    num_unseen: int = 0,
    augment: bool = False,
) -> dict[str, Path]:
    """Prepares the whole corpus (idempotent).

    Args:
        out_dir: corpus root (audio/ and manifests/ are written below it).
        num_train: training utterances.
        num_dev: dev utterances (held-out generator sentences).
        num_test: in-domain test utterances.
        num_ood: out-of-domain test utterances (hand-written sentences, unseen voices).
        seed: seed of sentence and voice choices; also part of every cut id.
        num_jobs: synthesis worker processes.
        num_dev_ood: out-of-domain dev utterances (other hand-written sentences and voices).
        num_unseen: test_unseen utterances (voices and channels training never hears).
        augment: also write ``train_aug``: each training utterance under a seeded condition
            (speed, room, noise: :mod:`slamasr.data.augment`), audio in ``out_dir/augment``.

    Returns:
        Split name → path of its cuts manifest.
    """
    for name, num, sentences in (
        ("num_ood", num_ood, ood_sentences()),
        ("num_dev_ood", num_dev_ood, dev_ood_sentences()),
    ):
        if num > len(sentences):
            raise ValueError(f"{name}={num} but only {len(sentences)} hand-written sentences exist")
    if num_unseen > 0 and num_test > UNSEEN_START:
        raise ValueError(
            f"num_test={num_test} would reach test_unseen's sentences (from {UNSEEN_START} on): "
            f"use num_test <= {UNSEEN_START}"
        )
    sizes = {
        "train": num_train,
        "dev": num_dev,
        "test": num_test,
        "test_ood": num_ood,
        "dev_ood": num_dev_ood,
        "test_unseen": num_unseen,
    }
    out_dir = Path(out_dir)
    manifests = {
        split: prepare_split(out_dir, split, num, seed, num_jobs)
        for split, num in sizes.items()
        if num > 0
    }
    if augment and num_train > 0:
        from slamasr.data.augment import augment_cuts

        manifests["train_aug"] = augment_cuts(
            manifests["train"],
            manifest_path(out_dir, "cuts", "train_aug"),
            out_dir / "augment",
            seed,
            num_jobs,
        )
    return manifests
