"""LoRA on the frozen LLM (``model.lora``): injected in place, trained, saved, resumed,
averaged and decoded like the projector; off (rank 0) by default."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from pathlib import Path

import pytest
import torch

from slamasr.bin import decode as decode_bin
from slamasr.config import ExperimentConfig, save_config
from slamasr.data.config import DataConfig
from slamasr.decoding import (
    decode_data_config,
    decode_test_set,
    load_test_set,
    load_trainable_weights,
)
from slamasr.decoding_config import DecodeConfig
from slamasr.distributed import DistInfo
from slamasr.models import build_model
from slamasr.models.config import LoRAConfig, ModelConfig
from slamasr.models.hub import ModelLoadError
from slamasr.models.llm import decoder_and_head
from slamasr.models.lora import LoRAStateError, apply_lora, check_lora_state
from slamasr.scoring import read_recogs
from slamasr.training import checkpoint as ckpt
from slamasr.training.config import TrainConfig
from slamasr.training.naming import experiment_name
from slamasr.training.run import prepare_exp_dir, run_training
from tests.helpers import make_tiny_batch, tiny_model_config
from tests.test_reliability import _test_cuts
from tests.training.train_double import small_config

LORA = LoRAConfig(rank=4, alpha=8.0, target_modules=["q_proj", "v_proj"])


@pytest.fixture(scope="module")
def base_cfg(tmp_path_factory: pytest.TempPathFactory) -> ModelConfig:
    """A tiny fbank + 2-layer Llama model config (no LoRA)."""
    return tiny_model_config("fbank", tmp_path_factory.mktemp("lora_models"))


def _build(cfg: ModelConfig, lora: LoRAConfig | None = None, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(dataclasses.replace(cfg, lora=lora or LoRAConfig()))


def _lora_keys(state: dict) -> list[str]:
    return sorted(k for k in state if ".lora_" in k)


def _randomize_adapters(model: torch.nn.Module, seed: int = 1) -> None:
    """Give the adapters weights that change the LLM's output (B starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen))


# --------------------------------------------------------------------------- config, injection


def test_rank_zero_is_the_paper_model(base_cfg: ModelConfig) -> None:
    """Default: no adapters, nothing of the LLM trains, apply_lora is a no-op."""
    assert LoRAConfig().rank == 0
    model = _build(base_cfg)
    assert not _lora_keys(model.trainable_state_dict())
    assert all(k.startswith("projector.") for k in model.trainable_state_dict())
    assert apply_lora(model.llm, LoRAConfig()) == 0
    assert not any(".lora_" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"rank": -1}, "model.lora.rank"),
        ({"rank": 4, "alpha": 0.0}, "model.lora.alpha"),
        ({"rank": 4, "target_modules": []}, "model.lora.target_modules"),
    ],
)
def test_bad_settings_name_the_option(settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LoRAConfig(**settings).validate()


def test_unknown_target_module_names_the_llm_layers(base_cfg: ModelConfig) -> None:
    """A ModelLoadError, which bin/train and bin/transcribe print as one line."""
    with pytest.raises(ModelLoadError, match=r"matches no layer.*'q_proj'.*'v_proj'"):
        _build(base_cfg, LoRAConfig(rank=2, target_modules=["qkv"]))


def test_missing_peft_says_what_to_install(
    base_cfg: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError
    model = _build(base_cfg)
    with pytest.raises(ModelLoadError, match=r"model.lora.rank=4 needs the peft package.*pip"):
        apply_lora(model.llm, LORA)
    assert apply_lora(model.llm, LoRAConfig()) == 0  # rank 0 never imports it


def test_adapters_are_injected_in_place_and_are_the_only_trainable_llm_weights(
    base_cfg: ModelConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """model.llm stays the HF model; only llm.*lora_[AB]* (+ projector) require grad; their
    size is logged; a fresh adapter (B = 0) leaves the loss exactly as without LoRA."""
    plain = _build(base_cfg)
    with caplog.at_level(logging.INFO):
        lora = _build(base_cfg, LORA)
    assert (
        "LoRA: rank 4, alpha 8 (scale 2) on q_proj, v_proj: 1792 adapter parameters in 8 tensors"
    ) in caplog.text
    assert type(lora.llm) is type(plain.llm) and decoder_and_head(lora.llm) is not None
    state = lora.trainable_state_dict()
    keys = _lora_keys(state)
    assert len(keys) == 2 * 2 * 2 and all(k.startswith("llm.model.layers.") for k in keys)
    assert set(state) - set(keys) == set(plain.trainable_state_dict())
    assert all(v.dtype == torch.float32 for k, v in state.items() if k in keys)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert sorted(trainable) == sorted(state)
    # 2 layers x (q: 64->64, v: 64->32), rank 4: A is (4, 64), B is (out, 4)
    extra = sum(p.numel() for n, p in lora.named_parameters() if p.requires_grad) - sum(
        p.numel() for p in plain.trainable_parameters()
    )
    assert extra == 2 * (4 * 64 + 64 * 4 + 4 * 64 + 32 * 4)
    batch = make_tiny_batch("fbank", num=2)
    with torch.no_grad():
        assert torch.equal(lora(batch)["loss"], plain(batch)["loss"])


def test_gradients_reach_the_adapters_with_the_llm_in_eval_mode(base_cfg: ModelConfig) -> None:
    """model.train() keeps every LLM module (adapters included) in eval; the loss still
    back-propagates into A and B, never into the LLM's own weights."""
    model = _build(base_cfg, LORA)
    _randomize_adapters(model)
    model.train()
    assert not any(m.training for m in model.llm.modules()) and model.projector.training
    model(make_tiny_batch("fbank", num=2))["loss"].backward()
    for name, p in model.named_parameters():
        if ".lora_" in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        elif name.startswith("llm."):
            assert p.grad is None, name


# --------------------------------------------------------------------------- checkpoints


def test_lora_state_checks_name_both_sides(base_cfg: ModelConfig) -> None:
    """A LoRA checkpoint into a model without LoRA, or with another rank, is refused in one
    line; a checkpoint without LoRA still fits a model without LoRA."""
    plain, lora = _build(base_cfg), _build(base_cfg, LORA)
    rank8 = _build(base_cfg, dataclasses.replace(LORA, rank=8))
    check_lora_state(plain.trainable_state_dict(), plain.trainable_state_dict())
    check_lora_state(lora.trainable_state_dict(), lora.trainable_state_dict())
    with pytest.raises(
        LoRAStateError, match=r"\(rank 4 on q_proj, v_proj \(8 tensors\)\).*\(none\)"
    ):
        check_lora_state(plain.trainable_state_dict(), lora.trainable_state_dict())
    with pytest.raises(LoRAStateError, match=r"\(rank 4 on .*\(rank 8 on") as err:
        check_lora_state(rank8.trainable_state_dict(), lora.trainable_state_dict())
    assert "\n" not in str(err.value) and "model.lora" in str(err.value)
    with pytest.raises(LoRAStateError, match="model.lora"):  # never dropped silently
        plain.load_trainable_state_dict(lora.trainable_state_dict())
    with pytest.raises(LoRAStateError, match=r"\(rank 8 on"):
        lora.load_trainable_state_dict(rank8.trainable_state_dict())


def _train(cfg: ModelConfig, exp: Path, resume: bool = False, kill_after: int = 0):
    """Train the tiny LoRA model 6 steps (checkpoints every 3) on two fixed batches."""

    class Killed(Exception):
        pass

    def hook(step: int) -> None:
        if step == kill_after:
            raise Killed

    batches = [make_tiny_batch("fbank", num=2, seed=s) for s in (0, 1)]
    model = _build(cfg, LORA)
    prepare_exp_dir(exp, resume=resume, overwrite=False, is_main=True)
    train_cfg = small_config(max_steps=6, grad_accum=1, lr=1e-2, valid_interval=100)
    with contextlib.suppress(Killed):
        run_training(
            train_cfg, exp, model, batches, None, torch.device("cpu"), DistInfo(), resume, hook
        )
    return model


def test_resume_with_lora_is_bitwise(base_cfg: ModelConfig, tmp_path: Path) -> None:
    """Killed after step 4 and resumed from step-3: the same projector and adapter weights as
    an uninterrupted run; the adapters did train."""
    initial = _build(base_cfg, LORA).trainable_state_dict()
    full = _train(base_cfg, tmp_path / "full").trainable_state_dict()
    _train(base_cfg, tmp_path / "killed", kill_after=4)
    assert ckpt.latest_valid_checkpoint(tmp_path / "killed" / "checkpoints").name == "step-3"
    resumed = _train(base_cfg, tmp_path / "killed", resume=True).trainable_state_dict()
    assert _lora_keys(full) and set(full) == set(resumed)
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert all(not torch.equal(full[k], initial[k]) for k in _lora_keys(full) if "lora_B" in k)
    saved = ckpt.load_trainable(tmp_path / "full" / "checkpoints" / "step-6")
    assert set(saved) == set(full) and all(torch.equal(saved[k], full[k]) for k in full)


def test_average_covers_adapter_weights(base_cfg: ModelConfig, tmp_path: Path) -> None:
    """decode.avg averages the adapters like the projector; the average loads into the model."""
    model = _build(base_cfg, LORA)
    states = []
    for step in (3, 6):
        state = {k: torch.randn_like(v) for k, v in model.trainable_state_dict().items()}
        ckpt.save_checkpoint(
            tmp_path / "checkpoints", f"step-{step}", state, {}, {"step": step}, {}
        )
        states.append(state)
    avg, paths = load_trainable_weights(tmp_path, "step-6", 2)
    assert [p.name for p in paths] == ["step-3", "step-6"] and _lora_keys(avg)
    for key in states[0]:
        torch.testing.assert_close(avg[key], (states[0][key] + states[1][key]) / 2)
    model.load_trainable_state_dict(avg)
    for key, value in model.trainable_state_dict().items():
        assert torch.equal(value, avg[key]), key


# --------------------------------------------------------------------------- decoding, naming


def _lora_exp(root: Path) -> tuple[Path, ExperimentConfig, torch.nn.Module]:
    """An exp dir (HuBERT + Llama with LoRA) whose ``best`` checkpoint holds random projector
    and adapter weights; also the in-memory model holding them."""
    model_cfg = dataclasses.replace(tiny_model_config("hubert", root / "models"), lora=LORA)
    cfg = ExperimentConfig(
        model=model_cfg,
        data=DataConfig(input_kind="audio", num_workers=0),
        train=TrainConfig(device="cpu"),
        decode=DecodeConfig(
            num_beams=1, max_new_tokens_per_second=1.0, min_new_tokens_bound=4, max_duration=0
        ),
    )
    exp = root / "exp"
    exp.mkdir(parents=True)
    save_config(cfg, exp / "config.yaml")
    torch.manual_seed(0)
    model = build_model(model_cfg)
    _randomize_adapters(model)
    ckpt.save_checkpoint(exp / "checkpoints", "best", model.trainable_state_dict(), {}, {}, {})
    return exp, cfg, model


def _decode_in_memory(model, cfg: ExperimentConfig, manifest: Path, out: Path) -> dict:
    test_set = load_test_set("test-x", str(manifest), decode_data_config(cfg), 0, 1)
    path = decode_test_set(model, test_set, cfg.decode, out, torch.device("cpu"))
    return {cut: hyp for cut, _, hyp in read_recogs(path)}


def test_decoding_an_exp_dir_with_lora_matches_the_in_memory_model(tmp_path: Path) -> None:
    """bin/decode builds the model from config.yaml (adapters included) and loads the
    checkpoint's adapters: its hypotheses are the in-memory model's, which differ from the
    same model with its adapters zeroed."""
    exp, cfg, model = _lora_exp(tmp_path)
    manifest = _test_cuts(tmp_path / "audio")
    assert decode_bin.main(["--exp-dir", str(exp), "--test-sets", f"test-x={manifest}"]) == 0
    from_disk = {
        cut: hyp
        for cut, _, hyp in read_recogs(exp / "decode-best-avg1-beam1" / "recogs-test-x.txt")
    }
    model.eval()
    in_memory = _decode_in_memory(model, cfg, manifest, tmp_path / "mem")
    assert from_disk == in_memory and any(from_disk.values())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B" in name:
                p.zero_()
    assert _decode_in_memory(model, cfg, manifest, tmp_path / "zeroed") != from_disk


def test_a_lora_run_gets_its_own_experiment_name() -> None:
    """The name's hash covers model.lora; the default (rank 0) adds nothing to it."""
    base = ExperimentConfig()
    lora = dataclasses.replace(base, model=dataclasses.replace(base.model, lora=LORA))
    alpha = dataclasses.replace(
        base, model=dataclasses.replace(base.model, lora=dataclasses.replace(LORA, alpha=16.0))
    )
    names = {experiment_name(c) for c in (base, lora, alpha)}
    assert len(names) == 3
    off = LoRAConfig(rank=0)
    same = dataclasses.replace(base, model=dataclasses.replace(base.model, lora=off))
    assert experiment_name(same) == experiment_name(base)


def test_adapters_stay_float32_on_a_bfloat16_llm(base_cfg: ModelConfig) -> None:
    """Like the projector, the adapters train in float32 (bf16 weights would lose small
    updates); the LLM's own weights keep their dtype and the loss reaches the adapters."""
    cfg = dataclasses.replace(base_cfg, llm=dataclasses.replace(base_cfg.llm, dtype="bfloat16"))
    model = _build(cfg, LORA)
    _randomize_adapters(model)
    q_proj = model.llm.model.layers[0].self_attn.q_proj
    assert q_proj.base_layer.weight.dtype == torch.bfloat16
    adapters = {n: p for n, p in model.named_parameters() if ".lora_" in n}
    assert adapters and all(p.dtype == torch.float32 for p in adapters.values())
    model.train()
    loss = model(make_tiny_batch("fbank", num=2))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad.abs().sum() > 0 for p in adapters.values())


def test_the_benchmark_trains_and_loads_ours_adapters(tmp_path: Path) -> None:
    """The benchmark's ours mode keeps its adapters trainable (the reference gets its own
    frozen copy of the LLM) and loads a checkpoint's adapters for decoding."""
    from slamasr.benchmark.decode import load_decode_projectors
    from slamasr.benchmark.modes import build_modes

    cfg = dataclasses.replace(tiny_model_config("whisper", tmp_path / "models"), lora=LORA)
    modes = build_modes(build_model(cfg), seed=0, ours_dtype=torch.float32)
    ours = modes["ours"].model
    assert modes["reference"].model.llm is not ours.llm
    assert _lora_keys(ours.trainable_state_dict())
    state = {k: torch.randn_like(v) for k, v in ours.trainable_state_dict().items()}
    ckpt.save_checkpoint(tmp_path / "checkpoints", "best", state, {}, {"step": 0}, {})
    load_decode_projectors(modes, str(tmp_path / "checkpoints" / "best"))
    loaded = ours.trainable_state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in _lora_keys(state))
