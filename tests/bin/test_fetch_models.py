"""Stage 0's model fetch: only loadable files, safetensors preferred, fast offline failure,
and ``.bin`` checkpoints converted once to safetensors with identical weights."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from slamasr.bin import fetch_models
from slamasr.bin.fetch_models import convert_bin_to_safetensors, fetch, weight_patterns

# hubert-xlarge-ls960-ft and vicuna-7b-v1.5 style repos
TF_AND_PT = [
    ".gitattributes", "README.md", "config.json", "preprocessor_config.json",
    "special_tokens_map.json", "tokenizer_config.json", "vocab.json",
    "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx",
    "onnx/config.json", "training_args.bin",
]
SAFE_AND_BIN = [
    "config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
    "special_tokens_map.json", "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors", "model.safetensors.index.json",
    "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
    "pytorch_model.bin.index.json", "tf_model.h5",
]
UNWANTED = (".h5", ".msgpack", ".onnx", ".ot")


def selected(files: list[str]) -> list[str]:
    """The files snapshot_download would fetch with fetch_models' patterns."""
    from huggingface_hub.utils import filter_repo_objects

    return list(filter_repo_objects(
        files, allow_patterns=weight_patterns(files), ignore_patterns=fetch_models.NEVER
    ))


def test_bin_only_repo_fetches_pytorch_weights_without_tf_flax_onnx() -> None:
    got = selected(TF_AND_PT)
    assert "pytorch_model.bin" in got
    assert {"config.json", "preprocessor_config.json", "vocab.json"} <= set(got)
    assert not [f for f in got if f.endswith(UNWANTED) or f.startswith("onnx/")]
    assert "training_args.bin" not in got


def test_safetensors_preferred_over_bin() -> None:
    got = selected(SAFE_AND_BIN)
    assert "model-00001-of-00002.safetensors" in got and "model.safetensors.index.json" in got
    assert "tokenizer.model" in got
    assert not [f for f in got if f.endswith(".bin") or f.endswith(".h5")]


def test_repo_without_pytorch_weights_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no PyTorch weights"):
        weight_patterns(["config.json", "tf_model.h5", "flax_model.msgpack"])


def test_fetch_passes_patterns_to_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls: dict[str, Any] = {}

    def fake_snapshot(repo: str, **kwargs: Any) -> str:
        calls.update(kwargs, repo=repo)
        return "/cache/snapshot"

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, r: TF_AND_PT)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    assert fetch("facebook/hubert-xlarge-ls960-ft", None) == "/cache/snapshot"
    assert "pytorch_model*.bin" in calls["allow_patterns"]
    assert "*.h5" in calls["ignore_patterns"] and "*.msgpack" in calls["ignore_patterns"]


def test_offline_and_not_cached_fails_fast_with_a_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    conf = Path(__file__).parents[2] / "egs/librispeech/slam_asr/conf/slam_asr.yaml"
    start = time.monotonic()
    rc = fetch_models.main(["--config", str(conf), "--cache-dir", str(tmp_path)])
    assert rc == 1 and time.monotonic() - start < 20
    assert "offline" in caplog.text and "not in the Hugging Face cache" in caplog.text


def test_unanswering_hub_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda s, r: time.sleep(60))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="no answer from the Hugging Face hub"):
        fetch("lmsys/vicuna-7b-v1.5", None, timeout=0.5)
    assert time.monotonic() - start < 5


def _tiny_llama(seed: int = 0) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def save_bin_checkpoint(model: torch.nn.Module, out: Path, shards: int) -> list[Path]:
    """Save ``model`` the pre-safetensors way (``pytorch_model*.bin`` pickles + index).

    transformers 5 ignores ``save_pretrained(safe_serialization=False)``, so the format
    LLaMA-2/Vicuna ship is written by hand: ``torch.save`` of state-dict shards.
    """
    model.config.save_pretrained(str(out))
    state = model.state_dict()
    names = list(state)
    per = -(-len(names) // shards)
    groups = [names[i : i + per] for i in range(0, len(names), per)]
    if len(groups) == 1:
        torch.save({n: state[n] for n in names}, out / "pytorch_model.bin")
        return [out / "pytorch_model.bin"]
    weight_map, paths = {}, []
    for i, group in enumerate(groups, start=1):
        name = f"pytorch_model-{i:05d}-of-{len(groups):05d}.bin"
        torch.save({n: state[n] for n in group}, out / name)
        weight_map.update(dict.fromkeys(group, name))
        paths.append(out / name)
    index = {"metadata": {}, "weight_map": weight_map}
    (out / "pytorch_model.bin.index.json").write_text(json.dumps(index), encoding="utf-8")
    return paths


def test_bin_shards_convert_to_safetensors_with_identical_weights(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = _tiny_llama()
    bins = save_bin_checkpoint(model, tmp_path, shards=3)
    assert len(bins) > 2 and not list(tmp_path.glob("*.safetensors"))

    written = convert_bin_to_safetensors(tmp_path)
    assert len(written) == len(bins) + 1  # shards + index
    assert convert_bin_to_safetensors(tmp_path) == []  # once
    for path in bins:
        path.unlink()  # the copies alone must load
    (tmp_path / "pytorch_model.bin.index.json").unlink()
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32)
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for name, tensor in want.items():
        assert torch.equal(tensor, got[name]), name


def test_single_bin_converts(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = _tiny_llama(1)
    save_bin_checkpoint(model, tmp_path, shards=1)
    assert convert_bin_to_safetensors(tmp_path) == [tmp_path / "model.safetensors"]
    (tmp_path / "pytorch_model.bin").unlink()
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
