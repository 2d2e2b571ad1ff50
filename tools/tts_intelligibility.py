"""How fast and how intelligible each English synthesizer's voices are.

For every voice: speaks the first N in-domain test sentences of the corpus generator and the
first N hand-written out-of-domain sentences, times the synthesis (real-time factors = wall
seconds, and CPU seconds of all the process's threads, per second of audio; the voice is
loaded by one untimed sentence first), writes a Lhotse cut set, decodes it with Whisper
tiny.en's own decoder (``slamasr.bin.whisper_baseline``, CTranslate2) and scores it
(``slamasr.bin.score``). Prints one table row per voice and sentence set.

Usage:
    python tools/tts_intelligibility.py --out-dir /tmp/tts --num 20 \
        --whisper-dir egs/espeak_en/slam_asr/models/whisper-tiny.en [--engines piper pico espeak] \
        [--skip-whisper]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from slamasr.corpora.espeak_corpus import ood_sentences
from slamasr.corpora.sentences import Sentence, generate_sentences

Speak = Callable[[str, str, Path], None]


def _espeak_engine() -> tuple[list[str], Speak]:
    from slamasr.corpora.espeak import EspeakSynthesizer, VoiceSetting
    from slamasr.corpora.piper import write_wav

    synth = EspeakSynthesizer(sample_rate=16000)

    def speak(text: str, voice: str, wav: Path) -> None:
        write_wav(synth.synthesize(text, VoiceSetting(voice)), wav, 16000)

    return ["en-us", "en-us+f2"], speak


def load_engine(name: str) -> tuple[list[str], Speak]:
    """The voices and the ``synthesize(text, voice, wav_path)`` of one engine."""
    if name == "espeak":
        return _espeak_engine()
    if name == "piper":
        from slamasr.corpora import piper as module
    elif name == "pico":
        from slamasr.corpora import pico as module
    else:
        raise ValueError(f"unknown engine {name!r}: choose piper, pico or espeak")
    return list(module.VOICES), module.synthesize


def speak_set(
    speak: Speak, voice: str, sentences: list[Sentence], wav_dir: Path, prefix: str
) -> tuple[CutSet, float, float]:
    """Speaks ``sentences`` into ``wav_dir``; returns their cuts and the wall and CPU
    real-time factors."""
    cuts, spent, cpu, audio_seconds = [], 0.0, 0.0, 0.0
    speak("Warm up.", voice, wav_dir / f"{prefix}-warmup.wav")  # loads the voice, untimed
    for i, sentence in enumerate(sentences):
        cut_id = f"{prefix}-{i:03d}"
        wav = wav_dir / f"{cut_id}.wav"
        start, start_cpu = time.perf_counter(), time.process_time()
        speak(sentence.display, voice, wav)
        spent += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        recording = Recording.from_file(wav, recording_id=cut_id)
        audio_seconds += recording.duration
        sup = SupervisionSegment(
            id=cut_id, recording_id=cut_id, start=0.0, duration=recording.duration,
            text=sentence.text, speaker=voice,
        )  # fmt: skip
        cuts.append(
            MonoCut(cut_id, 0.0, recording.duration, 0, recording=recording, supervisions=[sup])
        )
    return CutSet.from_cuts(cuts), spent / audio_seconds, cpu / audio_seconds


def whisper_wer(cuts_path: Path, test_set: str, args: argparse.Namespace) -> str:
    """Decodes with Whisper tiny.en's own decoder; returns ``"WER (errors/words)"``."""
    from slamasr.converters.ct2_whisper import find_whisper_tiny_en_ct2

    exp_dir = args.out_dir / "exp"
    decode_dir = exp_dir / "whisper-beam4"
    decode = [
        sys.executable, "-m", "slamasr.bin.whisper_baseline", "--model-dir",
        str(args.whisper_dir), "--test-set", test_set, "--cuts", str(cuts_path),
        "--decode-dir", str(decode_dir), "--num-beams", "4", "--text-norm", "lower",
        "--num-threads", "1", "--backend", "ct2", "--ct2-dir", str(find_whisper_tiny_en_ct2()),
    ]  # fmt: skip
    score = [
        sys.executable, "-m", "slamasr.bin.score", "--exp-dir", str(exp_dir),
        "--decode-dir", str(decode_dir), "--test-sets", test_set, "--text-norm", "lower",
    ]  # fmt: skip
    for cmd in (decode, score):
        subprocess.run(cmd, check=True, capture_output=True)
    for line in (exp_dir / "wer").read_text().splitlines():
        fields = line.split("\t")
        if len(fields) > 4 and fields[1] == test_set:
            return f"{fields[2]}% ({fields[3]}/{fields[4]})"
    raise RuntimeError(f"no line for {test_set} in {exp_dir / 'wer'}")


def main() -> None:
    """Parses arguments, then speaks, decodes and scores every voice's two sentence sets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--num", type=int, default=20, help="sentences per set and voice")
    parser.add_argument("--whisper-dir", type=Path, required=True, help="HF Whisper tiny.en")
    parser.add_argument("--engines", nargs="+", default=["piper", "pico", "espeak"])
    parser.add_argument("--skip-whisper", action="store_true", help="time synthesis only")
    args = parser.parse_args()
    sets = {
        "test": generate_sentences(args.num, seed=0, split="test"),
        "ood": ood_sentences()[: args.num],
    }
    print("engine\tvoice\tsentences\tRTF wall\tRTF CPU\tWhisper tiny.en WER", flush=True)
    for engine in args.engines:
        voices, speak = load_engine(engine)
        for voice in voices:
            for set_name, sentences in sets.items():
                test_set = f"{engine}_{voice.replace('+', '_')}_{set_name}"
                wav_dir = args.out_dir / "wav"
                cuts, wall, cpu = speak_set(speak, voice, sentences, wav_dir, test_set)
                cuts_path = args.out_dir / f"cuts_{test_set}.jsonl.gz"
                cuts.to_file(cuts_path)
                wer = "-" if args.skip_whisper else whisper_wer(cuts_path, test_set, args)
                row = f"{engine}\t{voice}\t{set_name} x{len(cuts)}\t{wall:.3f}\t{cpu:.3f}\t{wer}"
                print(row, flush=True)


if __name__ == "__main__":
    main()
