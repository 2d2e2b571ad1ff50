"""Multi-node training: 2 torchrun "nodes" x 1 process on localhost (gloo), and the
rendezvous options of the LibriSpeech recipe's stage 3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .test_resume_ddp import COLLECTIVE_ENV, SCRIPT, _assert_equal_weights, _checked_collectives

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "librispeech" / "slam_asr"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ddp
def test_two_nodes_static_rendezvous_end_with_identical_weights(tmp_path: Path) -> None:
    """torchrun --nnodes 2 --node-rank 0/1 (static rendezvous on a localhost port): global
    ranks 0 and 1 train together and hold the same projector, on every collective checked
    against the declared collective device."""
    port, exp = _free_port(), tmp_path / "exp"
    procs = []
    for node in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2"]
        cmd += [f"--node-rank={node}", "--nproc-per-node=1", "--master-addr=127.0.0.1"]
        cmd += [f"--master-port={port}", str(SCRIPT), "--exp-dir", str(exp)]
        cmd += ["--max-steps", "4", "--out", str(tmp_path / f"node{node}.st")]
        env = {**os.environ, COLLECTIVE_ENV: "meta", "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        assert _checked_collectives(err)["all_reduce"] >= 8
    _assert_equal_weights(tmp_path / "node0.st", tmp_path / "node1.st")
    _assert_equal_weights(
        tmp_path / "node0.st", exp / "checkpoints" / "step-4" / "trainable.safetensors"
    )
    logs = sorted(p.name for p in (exp / "log").iterdir())
    assert len(logs) == 2 and logs[0].endswith("-0") and logs[1].endswith("-1")


def _stage3(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run run.sh's stage 3 with a fake torchrun that records its arguments."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "torchrun").write_text(
        '#!/bin/sh\necho "$@" > "$FAKE_TORCHRUN_ARGS"\nmkdir -p "$EXP"\n'
    )
    (fake / "torchrun").chmod(0o755)
    args_file, exp = tmp_path / "args", tmp_path / "exp"
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "FAKE_TORCHRUN_ARGS": str(args_file),
        "EXP": str(exp),
    }
    cmd = ["bash", "run.sh", "--stage", "3", "--stop-stage", "3", "--exp-dir", str(exp), *options]
    done = subprocess.run(cmd, cwd=RECIPE, env=env, capture_output=True, text=True, timeout=240)
    return done, args_file.read_text() if args_file.exists() else ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), "--standalone --nproc-per-node=1 -m slamasr.bin.train"),
        (
            ("--ngpu", "8", "--num-nodes", "2", "--node-rank", "1", "--master-addr", "n0"),
            "--nnodes=2 --node-rank=1 --master-addr=n0 --master-port=29500 --nproc-per-node=8 ",
        ),
        (
            ("--num-nodes", "4", "--rdzv-endpoint", "n0:29400"),
            "--nnodes=4 --rdzv-backend=c10d --rdzv-endpoint=n0:29400 --rdzv-id=exp ",
        ),
    ],
)
def test_recipe_stage3_passes_rendezvous_options_to_torchrun(tmp_path, options, expected):
    done, args = _stage3(tmp_path, *options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert args.startswith(expected), args
    assert (tmp_path / "exp" / ".train.done").is_file()


@pytest.mark.slow
def test_recipe_stage3_multinode_without_master_addr_is_refused(tmp_path: Path) -> None:
    done, args = _stage3(tmp_path, "--num-nodes", "2", "--node-rank", "1")
    assert done.returncode != 0 and not args
    assert "--num-nodes 2 needs --master-addr" in done.stderr
