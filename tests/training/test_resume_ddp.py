"""Subprocess tests: SIGKILL + --resume equals an uninterrupted run; 2 gloo ranks stay equal."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("train_double.py")
COLLECTIVE_ENV = "SLAMASR_TEST_COLLECTIVE_DEVICE"


def _checked_collectives(stderr: str) -> dict[str, int]:
    """The ``collectives checked: {...}`` line of tests/training/collective_check.py."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("collectives checked: ")]
    assert lines, "the collective device check was not installed"
    return ast.literal_eval(lines[-1].removeprefix("collectives checked: "))


def _run(
    args: list[str], env: dict[str, str] | None = None, loader: str = "double"
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--loader", loader],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )


def _assert_equal_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs"


@pytest.mark.slow
@pytest.mark.parametrize("loader", ["double", "lhotse"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, loader: str) -> None:
    """Kill after step 8 (last checkpoint step 6, mid-epoch), resume: bitwise-equal result.

    ``lhotse``: the training loader samples with Lhotse, positioned on resume through the
    sampler's state instead of loading the skipped batches.
    """
    full = _run(
        ["--exp-dir", str(tmp_path / "full"), "--out", str(tmp_path / "full.st")], loader=loader
    )
    assert full.returncode == 0, full.stderr[-3000:]

    exp = tmp_path / "killed"
    killed = _run(["--exp-dir", str(exp), "--kill-after", "8"], loader=loader)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (exp / "checkpoints" / "step-6").is_dir()
    assert not (exp / "checkpoints" / "step-12").exists()

    again = _run(["--exp-dir", str(exp)], loader=loader)
    assert again.returncode != 0 and "--resume" in again.stderr, "must refuse a fresh start"

    resumed = _run(
        ["--exp-dir", str(exp), "--resume", "--out", str(tmp_path / "resumed.st")], loader=loader
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stderr and "step-6" in resumed.stderr
    assert ("Sampler positioned at batch 2 of epoch 1" in resumed.stderr) == (loader == "lhotse")
    _assert_equal_weights(tmp_path / "full.st", tmp_path / "resumed.st")
    _assert_equal_weights(
        tmp_path / "full" / "checkpoints" / "step-12" / "trainable.safetensors",
        exp / "checkpoints" / "step-12" / "trainable.safetensors",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.ddp
def test_two_gloo_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    """Data parallel on 2 CPU processes: both ranks hold the same trained projector.

    Every collective is checked against the trainer's declared collective device, emulated
    as ``meta`` (tests/training/collective_check.py): a tensor left elsewhere — e.g. the
    statistics vector on the CPU, which NCCL refuses — fails the run.
    """
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            COLLECTIVE_ENV: "meta",
        }
        args = ["--exp-dir", str(tmp_path / "ddp"), "--max-steps", "6"]
        args += ["--out", str(tmp_path / f"rank{rank}.st")]
        procs.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        checked = _checked_collectives(err)
        assert checked["all_reduce"] >= 12 and checked["broadcast"] >= 1, checked
        assert checked["broadcast_object_list"] >= 1, checked
    _assert_equal_weights(tmp_path / "rank0.st", tmp_path / "rank1.st")
    ckpt = tmp_path / "ddp" / "checkpoints" / "step-6"
    assert (ckpt / "rank-0.json").is_file() and (ckpt / "rank-1.json").is_file()
    _assert_equal_weights(tmp_path / "rank0.st", ckpt / "trainable.safetensors")
    logs = sorted(p.name for p in (tmp_path / "ddp" / "log").iterdir())
    assert len(logs) == 2 and logs[0].endswith("-0") and logs[1].endswith("-1")
