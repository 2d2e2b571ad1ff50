"""The CPU recipe's run.sh refuses bad option values before any work, and names the LoRA
experiment it would train (fast: no stage runs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.test_recipe_espeak import _copy_recipe


@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    return _copy_recipe(tmp_path / "slam_asr")


def _run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "run.sh", *args, "--stage", "9", "--stop-stage", "9"],
        cwd=recipe,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--augment", "yes"], "option '--augment' takes true or false, got 'yes'"),
        (["--lora-rank", "x"], "--lora-rank x: give a whole number >= 0"),
        (["--lora-rank", "-1"], "--lora-rank -1: give a whole number >= 0"),
    ],
)
def test_bad_option_values_stop_before_any_work(recipe: Path, args: list, message: str) -> None:
    proc = _run(recipe, *args)
    assert proc.returncode == 1 and message in proc.stderr
    assert not (recipe / "exp").exists() and not (recipe / "data").exists()


def test_lora_rank_names_a_second_experiment_and_augment_is_off_by_default(recipe: Path) -> None:
    proc = _run(recipe, "--lora-rank", "8")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in (proc.stdout + proc.stderr).splitlines() if "config=" in x)
    exp_dir = line.split("exp_dir=")[1].split()[0]
    assert f"lora_exp_dir={exp_dir.rsplit('_', 1)[0]}_" in line and line.endswith("-lora8")
    assert "lora_exp_dir" not in next(
        x for x in (_run(recipe).stdout + _run(recipe).stderr).splitlines() if "config=" in x
    )
    # the clean training audio unless --augment true (chosen on dev: the recipe's README)
    conf = (recipe / "conf" / "whisper_tiny_en-smollm2_135m.yaml").read_text()
    assert "train_cuts: data/encoder_cache/espeak_cuts_train_whisper_mel80_enc" in conf
