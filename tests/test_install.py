"""The LibriSpeech install command, as its README states it, gives a working toolkit.

The slow test builds a fresh virtualenv (no system site-packages), installs torch's CPU
wheel (GPU users install torch for their CUDA first), runs exactly the commands between the
``install-librispeech`` markers of ``egs/librispeech/slam_asr/README.md``, and then runs
``python -m slamasr.bin.<verb> --help`` for every entry point both recipes' ``run.sh`` call.
It needs PyPI (CI has it); pip's download cache is reused.

The fast tests check that a missing tensorboard or matplotlib never fails training.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "egs/librispeech/slam_asr/README.md"
RECIPES = [ROOT / "egs/librispeech/slam_asr/run.sh", ROOT / "egs/espeak_en/slam_asr/run.sh"]
BEGIN, END = "<!-- install-librispeech -->", "<!-- /install-librispeech -->"
TORCH_CPU = "pip install torch==2.13.0"


def install_commands(readme: Path = README) -> list[str]:
    """The shell commands between the README's install markers (comments and fences dropped).

    Format::

        <!-- install-librispeech -->
        ```bash
        pip install -e ".[...]"   # from the repository root
        ```
        <!-- /install-librispeech -->
    """
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise AssertionError(f"{readme} has no {BEGIN} ... {END} block with the install command")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    commands = []
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("```", "#")):
            commands.append(line)
    return commands


def recipe_entry_points() -> list[str]:
    """Every ``slamasr.bin.<verb>`` that a recipe's run.sh calls."""
    verbs: set[str] = set()
    for run_sh in RECIPES:
        verbs |= set(re.findall(r"slamasr\.bin\.([A-Za-z0-9_]+)", run_sh.read_text()))
    return sorted(verbs)


def test_recipes_call_entry_points_that_exist() -> None:
    verbs = recipe_entry_points()
    assert {"train", "decode", "score", "fetch_models", "prepare_librispeech"} <= set(verbs)
    for verb in verbs:
        assert (ROOT / "slamasr" / "bin" / f"{verb}.py").is_file(), verb


def test_install_markers_parse(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"intro\n{BEGIN}\n```bash\n# comment\npip install -e '.[x]'  # why\n```\n{END}\n"
    )
    assert install_commands(readme) == ["pip install -e '.[x]'"]


def _reporter(tmp_path: Path) -> tuple[object, types.SimpleNamespace]:
    from slamasr.training.config import TrainConfig
    from slamasr.training.report import TrainingReporter

    cfg = TrainConfig(tensorboard=True, progress_bar=False)
    state = types.SimpleNamespace(
        step=4, bad_steps=0, best_valid_loss=1.0, best_step=4,
        history=[{"step": 2, "acc": 0.1}, {"step": 4, "acc": 0.2}],
    )
    return TrainingReporter(tmp_path, cfg, is_main=True), state


def test_training_report_survives_missing_tensorboard_and_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Stage 3 must reach its sentinel: no tensorboard/matplotlib -> warnings, no crash."""
    for name in ("matplotlib", "matplotlib.pyplot", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    reporter, state = _reporter(tmp_path)
    with caplog.at_level(logging.WARNING):
        reporter.start(0)
        reporter.finish(state)
    assert "no TensorBoard logs" in caplog.text and "no accuracy plot" in caplog.text
    assert not (tmp_path / "train-accuracy.png").exists()


def test_training_report_writes_the_plot_when_matplotlib_is_there(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    reporter, state = _reporter(tmp_path)
    reporter.finish(state)
    assert (tmp_path / "train-accuracy.png").stat().st_size > 0


def _run(cmd: list[str] | str, env: dict[str, str], timeout: float = 1200) -> str:
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, shell=isinstance(cmd, str), capture_output=True, text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.slow
@pytest.mark.network
def test_fresh_venv_with_the_readme_install_runs_every_entry_point(tmp_path: Path) -> None:
    commands = install_commands()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        PYTHONNOUSERSITE="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    python = str(venv / "bin" / "python")
    _run(TORCH_CPU, env)
    for command in commands:
        _run(command, env)

    where = _run([python, "-c", "import slamasr, sys; print(sys.prefix, slamasr.__file__)"], env)
    prefix, module = where.split()
    assert Path(prefix) == venv and Path(module).is_relative_to(ROOT)
    _run([python, "-c", "import tensorboard, matplotlib, google.protobuf, "
          "torch.utils.tensorboard, sentencepiece"], env)
    # LLaMA/Vicuna ship only tokenizer.model: the fast tokenizer is converted (protobuf)
    _run([python, "-c", "import sys; from pathlib import Path; "
          "from tests.tokenizers_llama import make_llama_sp_tokenizer as m; "
          f"t = m(Path({str(tmp_path / 'tok')!r}), fast=True); assert t('HELLO')['input_ids']"],
         env)
    for verb in recipe_entry_points():
        out = _run([python, "-m", f"slamasr.bin.{verb}", "--help"], env, timeout=300)
        assert "usage" in out.lower(), verb
    _run([str(venv / "bin" / "lhotse"), "combine", "--help"], env)
    _run([python, "tools/collect_results.py", "--help"], env)
