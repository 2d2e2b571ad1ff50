"""Path-shaped model paths are never taken for Hugging Face ids (issue 20 item 6)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from slamasr.bin import show_config
from slamasr.config import ConfigError, load_config
from slamasr.models.hub import ModelLoadError, is_path_shaped, load_pretrained

CONF = Path(__file__).parents[2] / "egs/librispeech/slam_asr/conf/slam_asr.yaml"
HUB_IDS = [
    "gpt2", "lmsys/vicuna-7b-v1.5", "openai/whisper-large-v2", "microsoft/phi-2",
    "facebook/hubert-xlarge-ls960-ft", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "Qwen/Qwen2.5-7B",
]
PATHS = [
    "models/x", "models/smollm2-135m-instruct", "download/vicuna", "exp/a", "data/m",
    "./x", "../x", "/abs/x", "~/x", ".x", "a/b/c", "x/", "with space/x", "c:\\models\\x",
    "org--x/y", "a/../b",
]


@pytest.mark.parametrize("value", HUB_IDS)
def test_hub_ids_are_not_paths(value: str) -> None:
    assert not is_path_shaped(value)


@pytest.mark.parametrize("value", PATHS)
def test_path_shaped_values(value: str) -> None:
    assert is_path_shaped(value)


def test_missing_recipe_path_is_a_config_error_naming_it_and_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(CONF, ["model.llm.path=models/x"])
    message = str(err.value)
    assert "model.llm.path='models/x'" in message and str(tmp_path) in message
    assert "\n" not in message


def test_existing_relative_dir_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models/x").mkdir(parents=True)
    assert load_config(CONF, ["model.llm.path=models/x"]).model.llm.path == "models/x"


def test_show_config_get_reads_values_before_stage_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recipes read config values before their stage 0 creates models/; a full check fails."""
    monkeypatch.chdir(tmp_path)
    args = ["--config", str(CONF), "model.llm.path=models/x"]
    assert show_config.main(args[:2] + ["--get", "model.llm.path"] + args[2:]) == 0
    assert capsys.readouterr().out.strip() == "models/x"
    assert show_config.main(args) == 2
    assert "models/x" in capsys.readouterr().err


def test_load_pretrained_refuses_a_missing_path_without_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def loader(path: str, **kwargs: object) -> None:
        raise AssertionError(f"the hub was asked for {path}")

    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        load_pretrained(loader, "models/x", "LLM")
    assert time.monotonic() - start < 1
    assert "models/x" in str(err.value) and os.getcwd() in str(err.value)
