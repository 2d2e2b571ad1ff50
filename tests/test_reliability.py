"""Reliability: nothing is lost or silently wrong when inputs, configs or checkpoints are bad.

- decoding a test set with missing/corrupt audio through the real pipeline (tiny HuBERT +
  tiny Llama, config.yaml + checkpoint in an exp dir) keeps every cut, flags the bad ones,
  and scoring counts them as deletions;
- config mistakes fail in ``load_config`` with one message naming the key and the fix,
  before any weights are read;
- remote code stays off unless asked for; every ``torch.load`` is ``weights_only``;
- a corrupt checkpoint (same size, flipped byte) is caught by its checksum and decoding
  ``last`` falls back to the previous good one.
"""

from __future__ import annotations

import ast
import logging
import pickle
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

import slamasr
from slamasr.bin import decode as decode_bin
from slamasr.config import (
    ENCODER_INPUT_KINDS,
    ConfigError,
    ExperimentConfig,
    load_config,
    save_config,
)
from slamasr.data.config import DataConfig
from slamasr.decoding import DecodeSet, decode_loader, decode_test_set, load_trainable_weights
from slamasr.decoding_config import DecodeConfig
from slamasr.models import build_model
from slamasr.models.config import LLMConfig
from slamasr.scoring import read_bad_cuts, read_recogs, score_decode_dir
from slamasr.training import checkpoint as ckpt
from slamasr.training.config import TrainConfig
from tests.helpers import (
    SMOL_STYLE_CHAT_TEMPLATE,
    make_tiny_encoder,
    make_tiny_llm,
    tiny_model_config,
)
from tests.training.doubles import DoubleModel

SR = 16000


def make_tiny_exp(root: Path, encoder: str = "whisper", steps: tuple[int, ...] = ()) -> Path:
    """An exp dir as training leaves it: ``config.yaml`` + ``checkpoints/best`` (+ step-N).

    Decoding settings are small (greedy, few tokens) so tests stay fast.

    Args:
        root: directory for the tiny models and the exp dir.
        encoder: whisper | hubert | fbank ...; ``data.input_kind`` follows it.
        steps: also write ``step-N`` checkpoints with different random weights.

    Returns:
        The exp dir.
    """
    model_cfg = tiny_model_config(encoder, root / "models")
    cfg = ExperimentConfig(
        model=model_cfg,
        data=DataConfig(input_kind=ENCODER_INPUT_KINDS[encoder], num_workers=0),
        train=TrainConfig(device="cpu"),
        decode=DecodeConfig(
            num_beams=1, max_new_tokens_per_second=1.0, min_new_tokens_bound=3, max_duration=0
        ),
    )
    exp = root / "exp"
    exp.mkdir(parents=True)
    save_config(cfg, exp / "config.yaml")
    torch.manual_seed(0)
    model = build_model(model_cfg)
    for name in ["best"] + [f"step-{s}" for s in steps]:
        weights = {k: torch.randn_like(v) for k, v in model.trainable_state_dict().items()}
        ckpt.save_checkpoint(exp / "checkpoints", name, weights, {}, {"step": 0}, {})
    return exp


def write_wav(path: Path, seconds: float, rate: int = SR, seed: int = 0) -> Path:
    """A noise burst with a quiet tail, as 16-bit PCM."""
    rng = np.random.default_rng(seed)
    samples = 0.1 * rng.standard_normal(int(seconds * rate)).astype(np.float32)
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------- bad audio


def _test_cuts(audio_dir: Path) -> Path:
    """4 cuts: 2 readable, 1 whose file is gone, 1 whose file is garbage; a manifest path."""
    audio_dir.mkdir()
    texts = {"good-1": "HELLO WORLD", "good-2": "THE CAT", "gone": "ONE TWO", "junk": "RED DOG"}
    cuts = []
    for i, (cut_id, text) in enumerate(texts.items()):
        rec = Recording.from_file(write_wav(audio_dir / f"{cut_id}.wav", 0.6, seed=i), cut_id)
        cut = rec.to_cut()
        cut.supervisions = [SupervisionSegment(cut_id, cut_id, 0.0, rec.duration, text=text)]
        cuts.append(cut)
    (audio_dir / "gone.wav").unlink()
    (audio_dir / "junk.wav").write_bytes(b"RIFF\x00\x00garbage" * 100)
    manifest = audio_dir / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    return manifest


def test_decoding_keeps_broken_cuts_and_scoring_counts_them(tmp_path: Path) -> None:
    """Every cut gets exactly one recogs block; bad ones are listed and scored as deletions."""
    exp = make_tiny_exp(tmp_path, "hubert")
    manifest = _test_cuts(tmp_path / "audio")
    argv = ["--exp-dir", str(exp), "--test-sets", f"test-x={manifest}"]
    assert decode_bin.main(argv) == 0
    out = exp / "decode-best-avg1-beam1"
    results = read_recogs(out / "recogs-test-x.txt")
    assert sorted(r[0] for r in results) == ["gone", "good-1", "good-2", "junk"]
    hyps = {cut_id: hyp for cut_id, _, hyp in results}
    assert hyps["gone"] == [] and hyps["junk"] == []
    assert read_bad_cuts(out / "bad-cuts-test-x.txt") == {"gone", "junk"}
    (record,) = score_decode_dir(exp, out)
    assert record.utterances == 4 and record.bad_cuts == 2 and record.ref_words == 8
    assert record.dels >= 4  # the 4 reference words of the two bad cuts
    assert "gone" in (out / "errs-test-x.txt").read_text()
    assert decode_bin.main(argv) == 1, "a second decode must not overwrite the recogs"


# --------------------------------------------------------------------------- config errors


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Local tiny checkpoints: a 128-mel Whisper, an 80-mel Whisper, an LLM."""
    root = tmp_path_factory.mktemp("tiny")
    cfg = tiny_model_config("whisper", root)
    return {
        "whisper80": Path(cfg.encoder.path),
        "whisper128": make_tiny_encoder("whisper", root / "w128", num_mel_bins=128),
        "llm": Path(cfg.llm.path),
    }


def _write_conf(path: Path, dirs: dict[str, Path], encoder: str = "whisper80") -> Path:
    path.write_text(
        "model:\n"
        f"  encoder: {{name: whisper, path: {dirs[encoder]}}}\n"
        f"  llm: {{path: {dirs['llm']}}}\n"
        "data: {input_kind: whisper_mel, n_mels: 80}\n",
        encoding="utf-8",
    )
    return path


BAD_CONFIGS = [
    # (overrides, conf encoder, words the single-line message must hold)
    (["model.encoder.nmels=128"], "whisper80", ["model.encoder.nmels", "Valid keys"]),
    (["train.lr=fast"], "whisper80", ["train.lr", "expected a number"]),
    (["model.llm.path=/no/such/llm"], "whisper80", ["model.llm.path", "no such directory"]),
    (["model.encoder.path=./nowhere"], "whisper80", ["model.encoder.path", "fetch_models"]),
    ([], "whisper128", ["data.n_mels=80", "128 mel bins", "set data.n_mels=128"]),
    (["data.input_kind=audio"], "whisper80", ["data.input_kind", "set data.input_kind=whisper"]),
    (
        ["model.encoder.name=hubert", "data.input_kind=audio"],
        "whisper80",
        ["set model.encoder.name=whisper"],
    ),  # noqa: E501
    (
        ["model.encoder.name=fbank", "data.input_kind=fbank", "model.encoder.feature_dim=40"],
        "whisper80",
        ["model.encoder.feature_dim=40", "set model.encoder.feature_dim=80"],
    ),
    (["model.llm.gguf_file=m.gguf"], "whisper80", ["model.llm.gguf_file", "not in"]),
    (
        ["model.prompt.template=chat"],
        "whisper80",
        ["model.prompt.template=chat", "set model.prompt.template=plain"],
    ),  # noqa: E501
    (
        ["data.max_audio_seconds=45"],
        "whisper80",
        ["data.max_audio_seconds=45", "set data.max_audio_seconds=30"],
    ),  # noqa: E501
    (
        ["train.ctc_only_steps=100"],
        "whisper80",
        ["train.ctc_only_steps=100", "model.projector.ctc_weight=0", "set model.projector"],
    ),
    (
        ["train.ctc_only_steps=100", "train.max_steps=100"],
        "whisper80",
        ["train.ctc_only_steps=100", "below train.max_steps=100"],
    ),
    (["model.projector.ctc_weight=-1"], "whisper80", ["model.projector.ctc_weight=-1", ">= 0"]),
    (
        ["decode.scorers.ctc.weight=0.3"],
        "whisper80",
        [
            "decode.scorers.ctc.weight=0.3",
            "model.projector.ctc_weight=0",
            "set decode.scorers.ctc.weight=0",
        ],
    ),
    (["decode.scorers.ctc.weight=1"], "whisper80", ["decode.scorers.ctc.weight=1", "[0, 1)"]),
    (
        ["decode.scorers.ctc.weight=0.3", "decode.scorers.ctc.head=char"],
        "whisper80",
        [
            "decode.scorers.ctc.head=char",
            "model.char_ctc.weight=0",
            "set decode.scorers.ctc.head=token",
        ],
    ),
    (
        ["decode.scorers.ctc.head=chars"],
        "whisper80",
        ["decode.scorers.ctc.head='chars'", "token or char"],
    ),
    (
        ["model.char_ctc.weight=0.3", "model.char_ctc.alphabet=abc"],
        "whisper80",
        ["model.char_ctc.alphabet='abc'", "no space"],
    ),
    (
        ["decode.scorers.word_prior.weight=-1"],
        "whisper80",
        ["decode.scorers.word_prior.weight=-1", ">= 0"],
    ),
    (
        ["decode.scorers.word_prior.weight=0.3"],
        "whisper80",
        [
            "decode.scorers.word_prior.weight > 0 needs decode.scorers.word_prior.path",
            "prepare_word_counts",
        ],
    ),
    (
        ["decode.scorers.word_prior.path=w.tsv", "decode.scorers.word_prior.weight=0.3"],
        "whisper80",
        [
            "decode.scorers.word_prior.weight",
            "decode.scorers.ctc.head=char",
            "decode.scorers.word_prior.weight=0",
        ],
    ),
]


@pytest.mark.parametrize("overrides,encoder,words", BAD_CONFIGS)
def test_config_errors_name_key_and_fix_before_loading(
    tmp_path: Path, tiny_dirs: dict[str, Path], overrides: list[str], encoder: str, words: list
) -> None:
    """One ConfigError, one line, naming key and fix; no from_pretrained/weights read."""
    conf = _write_conf(tmp_path / "c.yaml", tiny_dirs, encoder)
    no_load = mock.Mock(side_effect=AssertionError("weights loaded before the config check"))
    with (
        mock.patch("transformers.PreTrainedModel.from_pretrained", no_load),
        mock.patch("safetensors.torch.load_file", no_load),
        pytest.raises(ConfigError) as err,
    ):
        load_config(conf, overrides)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    no_load.assert_not_called()


def test_fitting_config_passes_the_cross_checks(tmp_path: Path, tiny_dirs: dict) -> None:
    """The checks reject only misfits: the matching 80-mel setup (and a hub id) load fine."""
    load_config(_write_conf(tmp_path / "c.yaml", tiny_dirs))
    load_config(_write_conf(tmp_path / "d.yaml", tiny_dirs, "whisper128"), ["data.n_mels=128"])
    hub = ["model.encoder.path=openai/whisper-tiny", "model.llm.path=org/llm"]
    load_config(_write_conf(tmp_path / "e.yaml", tiny_dirs), hub)
    chat_llm = make_tiny_llm(tmp_path / "chat", chat_template=SMOL_STYLE_CHAT_TEMPLATE)
    chat = [f"model.llm.path={chat_llm}", "model.prompt.template=chat"]
    load_config(_write_conf(tmp_path / "f.yaml", tiny_dirs), chat)


# --------------------------------------------------------------------------- safe loading


def _capture_loader(calls: list[dict[str, Any]]) -> Any:
    def loader(fn: Any, path: str, what: str, **kwargs: Any) -> Any:
        calls.append(kwargs)
        model = mock.MagicMock()
        model.to.return_value = model
        return model

    return loader


@pytest.mark.parametrize("allow", [None, True])
def test_load_llm_passes_trust_remote_code_only_when_configured(allow: Any) -> None:
    """Tokenizer and model loads get trust_remote_code=False unless the config says True."""
    from slamasr.models import llm as llm_mod

    cfg = LLMConfig(path="org/llm")
    if allow is not None:
        cfg.trust_remote_code = allow
    calls: list[dict[str, Any]] = []
    with mock.patch.object(llm_mod, "load_pretrained", _capture_loader(calls)):
        llm_mod.load_llm(cfg)
    assert len(calls) == 2
    assert [c["trust_remote_code"] for c in calls] == [bool(allow)] * 2


def _unsafe_torch_loads(source: str) -> list[int]:
    """Line numbers of ``torch.load`` calls without ``weights_only=True`` (and of any
    ``from torch import load``, which would hide calls from this check)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "torch":
            lines += [node.lineno for a in node.names if a.name == "load"]
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
            flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if flags.get("weights_only") != "True":
                lines.append(node.lineno)
    return lines


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    """Static check: each torch.load call in slamasr/ passes weights_only=True."""
    package = Path(slamasr.__file__).parent
    offenders = [
        f"{path.relative_to(package)}:{line}"
        for path in sorted(package.rglob("*.py"))
        for line in _unsafe_torch_loads(path.read_text(encoding="utf-8"))
    ]
    assert _unsafe_torch_loads("import torch\ntorch.load(f)\n") == [2]  # the check bites
    assert not offenders, f"torch.load without weights_only=True: {offenders}"


class _Payload:
    """Unpickling this runs code: it would record that it ran."""

    ran: list[str] = []

    def __reduce__(self) -> tuple:
        return (_Payload.ran.append, ("pickle code ran",))


def test_checkpoint_loading_refuses_pickled_code(tmp_path: Path) -> None:
    """Behaviour: an optimizer.pt carrying a code-running pickle is rejected, not executed."""
    path = tmp_path / "step-1"
    path.mkdir()
    torch.save({"state": {}, "evil": _Payload()}, path / ckpt.OPTIMIZER)
    _Payload.ran.clear()
    with pytest.raises(pickle.UnpicklingError):
        ckpt.load_optimizer_state(path)
    assert _Payload.ran == []


def test_projector_weights_are_safetensors(tmp_path: Path) -> None:
    """Trainable weights are stored as safetensors (no pickle) and read back exactly."""
    from safetensors import safe_open

    weights = {"projector.w": torch.arange(6.0).reshape(2, 3)}
    path = ckpt.save_checkpoint(tmp_path, "step-1", weights, {}, {"step": 1}, {})
    with safe_open(str(path / ckpt.WEIGHTS), "pt") as f:
        assert list(f.keys()) == ["projector.w"]
    assert torch.equal(ckpt.load_trainable(path)["projector.w"], weights["projector.w"])


# --------------------------------------------------------------------------- checkpoints


def test_decoding_last_skips_a_corrupt_newest_checkpoint(tmp_path: Path, caplog) -> None:
    """A flipped byte (size unchanged) fails the SHA-256 check; 'last' uses step-1, warning."""
    for step in (1, 2):
        weights = {"projector.w": torch.full((4,), float(step))}
        ckpt.save_checkpoint(tmp_path / "checkpoints", f"step-{step}", weights, {}, {}, {})
    file = tmp_path / "checkpoints" / "step-2" / ckpt.WEIGHTS
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        weights, paths = load_trainable_weights(tmp_path, "last", 1)
    assert paths == [tmp_path / "checkpoints" / "step-1"]
    assert torch.equal(weights["projector.w"], torch.full((4,), 1.0))
    assert "SHA-256" in caplog.text and "step-2" in caplog.text
    with pytest.raises(FileNotFoundError, match="step-2 is unusable"):
        load_trainable_weights(tmp_path, "step-2", 1)


def _kill_inside_publish(ckpt_dir: Path, new_complete: bool) -> None:
    """Leave ``ckpt_dir`` as a kill between _publish's two renames would: no ``best``,
    the previous one (weights 1.0) as ``.old-best``, the new one (2.0) as ``.tmp-best``."""
    for name, value in (("best", 1.0), ("scratch", 2.0)):
        weights = {"projector.w": torch.full((4,), value)}
        ckpt.save_checkpoint(ckpt_dir, name, weights, {}, {"step": int(value)}, {})
    (ckpt_dir / "best").rename(ckpt_dir / ".old-best")
    (ckpt_dir / "scratch").rename(ckpt_dir / ".tmp-best")
    if not new_complete:
        (ckpt_dir / ".tmp-best" / ckpt.MANIFEST).unlink()


@pytest.mark.parametrize("new_complete,value", [(True, 2.0), (False, 1.0)])
def test_best_survives_a_kill_between_publish_renames(
    tmp_path: Path, caplog, new_complete: bool, value: float
) -> None:
    """Decoding finds the verified leftover; the resume cleanup restores ``best`` from it
    (the complete new copy, else the old one) instead of deleting both."""
    ckpt_dir = tmp_path / "checkpoints"
    _kill_inside_publish(ckpt_dir, new_complete)
    with caplog.at_level(logging.WARNING):
        weights, _ = load_trainable_weights(tmp_path, "best", 1)
    assert torch.equal(weights["projector.w"], torch.full((4,), value))
    assert "mid-write" in caplog.text
    ckpt.remove_stale_temporaries(ckpt_dir)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["best"]
    assert ckpt.verify_checkpoint(ckpt_dir / "best") is None
    assert torch.equal(
        ckpt.load_trainable(ckpt_dir / "best")["projector.w"], weights["projector.w"]
    )


class _FragileModel(DoubleModel):
    """Beam search fails for any batch holding a cut whose id starts with ``poison``."""

    def generate(self, batch: dict[str, Any], **kwargs: Any) -> list[str]:
        if any(c.startswith("poison") for c in batch["cut_ids"]):
            raise RuntimeError("CUDA out of memory (simulated)")
        return super().generate(batch, **kwargs)


def _batch(ids: list[str]) -> dict[str, Any]:
    return {
        "inputs": torch.randn(len(ids), 6, 4),  # (B, T, D)
        "input_lengths": torch.full((len(ids),), 6),
        "texts": ["HELLO"] * len(ids),
        "cut_ids": ids,
        "durations": torch.ones(len(ids)),
        "bad_cut_ids": [],
    }


def test_a_failing_batch_is_retried_cut_by_cut(tmp_path: Path) -> None:
    """A model error in one batch costs only the cut that causes it (hyp=[], bad-cuts)."""
    refs = {c: "HELLO" for c in ("a", "poison-b", "c", "d")}
    loader = [_batch(["a", "poison-b", "c"]), _batch(["d"])]
    cpu = torch.device("cpu")
    path = decode_test_set(
        _FragileModel(), DecodeSet("t", refs, loader), DecodeConfig(), tmp_path, cpu
    )
    hyps = {cut_id: hyp for cut_id, _, hyp in read_recogs(path)}
    assert set(hyps) == set(refs) and hyps["poison-b"] == []
    assert all(hyps[c] for c in ("a", "c", "d"))
    assert read_bad_cuts(tmp_path / "bad-cuts-t.txt") == {"poison-b"}
    with pytest.raises(RuntimeError, match="every cut failed"):
        decode_loader(_FragileModel(), [_batch(["poison-x"])], DecodeConfig(), cpu)
