"""The offline English speech corpus: generated sentences spoken by eSpeak NG, as Lhotse manifests.

Layout written under ``out_dir``::

    audio/<split>/<cut_id>.flac                          16 kHz mono FLAC
    manifests/espeak_{recordings,supervisions,cuts}_<split>.jsonl.gz

Splits: ``train``, ``dev``, ``test`` (held-out generator sentences, training voices) and
``test_ood`` (hand-written everyday sentences, voices never used in training). Supervision text
is the normalized target (lower case, no punctuation); ``custom["display"]`` keeps the
punctuated form that was spoken. Cut ids depend only on the seed, the split and the index, and
finished work (audio files, complete manifests) is never redone.
"""

from __future__ import annotations

import gzip
import logging
import multiprocessing
import random
import time
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from tqdm import tqdm

from slamasr.corpora.espeak import (
    OOD_VOICES,
    TRAIN_VOICES,
    VoiceSetting,
    synthesize_chunk,
)
from slamasr.corpora.lexicon import read_list
from slamasr.corpora.sentences import Sentence, generate_sentences, normalize_text

SAMPLE_RATE = 16000
RATE_RANGE = (140, 170)
PITCH_RANGE = (40, 60)
SYNTH_CHUNK = 512
"""Utterances per synthesis process: each chunk of a split's plan is spoken in order by a
fresh process, so the audio does not depend on the number of jobs or their scheduling."""
MANIFEST_KINDS = ("recordings", "supervisions", "cuts")


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: its id, both text forms, the voice and the audio path."""

    cut_id: str
    sentence: Sentence
    setting: VoiceSetting
    audio_path: Path


def ood_sentences() -> list[Sentence]:
    """The hand-written out-of-domain sentences (``data/ood_sentences.txt``)."""
    return [Sentence(normalize_text(line), line) for line in read_list("ood_sentences")]


def manifest_path(out_dir: Path, kind: str, split: str) -> Path:
    """``out_dir/manifests/espeak_<kind>_<split>.jsonl.gz``."""
    return Path(out_dir) / "manifests" / f"espeak_{kind}_{split}.jsonl.gz"


def plan_split(out_dir: Path, split: str, num: int, seed: int) -> list[Utterance]:
    """Chooses sentences and voices of one split, deterministically from the seed.

    Args:
        out_dir: corpus root.
        split: "train", "dev", "test" or "test_ood".
        num: number of utterances (for test_ood at most the number of hand-written sentences).
        seed: random seed.

    Returns:
        The planned utterances.
    """
    if split == "test_ood":
        sentences, voices = ood_sentences()[:num], OOD_VOICES
    else:
        sentences, voices = generate_sentences(num, seed, split), TRAIN_VOICES
    rng = random.Random(f"voices-{seed}-{split}")
    plan = []
    for index, sentence in enumerate(sentences):
        setting = VoiceSetting(
            voice=rng.choice(voices),
            rate=rng.randint(*RATE_RANGE),
            pitch=rng.randint(*PITCH_RANGE),
        )
        cut_id = f"espeak-{split}-s{seed}-{index:06d}"
        path = Path(out_dir) / "audio" / split / f"{cut_id}.flac"
        plan.append(Utterance(cut_id, sentence, setting, path))
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
    tasks = []
    for start in range(0, len(plan), chunk_size):
        chunk = plan[start : start + chunk_size]
        jobs = [
            (u.sentence.display, u.setting, str(u.audio_path), not u.audio_path.is_file())
            for u in chunk
        ]
        if any(write for *_, write in jobs):
            tasks.append((SAMPLE_RATE, jobs))
    if not tasks:
        return 0, 0.0
    start_time = time.perf_counter()
    count = 0
    context = multiprocessing.get_context("spawn")  # a fork would inherit a used library
    with context.Pool(max(1, min(num_jobs, len(tasks))), maxtasksperchild=1) as pool:
        results = pool.imap_unordered(synthesize_chunk, tasks)
        with tqdm(
            total=sum(w for _, jobs in tasks for *_, w in jobs), desc="synthesize", unit="utt"
        ) as bar:
            for written in results:
                count += len(written)
                bar.update(len(written))
    return count, time.perf_counter() - start_time


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
            speaker=utt.setting.voice,
            custom={
                "display": utt.sentence.display,
                "rate": utt.setting.rate,
                "pitch": utt.setting.pitch,
            },
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

    Returns:
        Split name → path of its cuts manifest.
    """
    available = len(ood_sentences())
    if num_ood > available:
        raise ValueError(f"num_ood={num_ood} but only {available} hand-written sentences exist")
    sizes = {"train": num_train, "dev": num_dev, "test": num_test, "test_ood": num_ood}
    out_dir = Path(out_dir)
    return {
        split: prepare_split(out_dir, split, num, seed, num_jobs)
        for split, num in sizes.items()
        if num > 0
    }
