"""Train the test-double model through the real loop (a subprocess target for resume/DDP tests).

Usage: python tests/training/train_double.py --exp-dir /tmp/x --max-steps 12 [--resume]
       [--kill-after 8] [--out weights.safetensors]   (torchrun-style env for several ranks)

With ``SLAMASR_TEST_COLLECTIVE_DEVICE=meta`` every collective is checked against that declared
device (tests/training/collective_check.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from slamasr.distributed import cleanup_distributed, init_distributed  # noqa: E402
from slamasr.training.config import TrainConfig  # noqa: E402
from slamasr.training.loop import LoopState  # noqa: E402
from slamasr.training.run import prepare_exp_dir, run_training, setup_run_logging  # noqa: E402
from slamasr.utils import set_seed  # noqa: E402
from tests.training.collective_check import install_from_env  # noqa: E402
from tests.training.doubles import DoubleLoader, DoubleModel, lhotse_loader  # noqa: E402


def small_config(**overrides) -> TrainConfig:
    """A TrainConfig sized for seconds-long CPU runs."""
    base = dict(
        lr=1e-2,
        warmup_steps=3,
        max_steps=12,
        grad_accum=2,
        grad_clip=1.0,
        valid_interval=4,
        save_interval=3,
        keep_last=10,
        log_interval=1,
        seed=7,
        dtype="float32",
        device="cpu",
        tensorboard=False,
        progress_bar=False,
    )
    base.update(overrides)
    cfg = TrainConfig(**base)
    cfg.validate()
    return cfg


def run_double(
    exp_dir: Path,
    cfg: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    kill_after: Optional[int] = None,
    nan_items: tuple[int, ...] = (),
    loader: str = "double",
) -> tuple[DoubleModel, LoopState]:
    """Prepare ``exp_dir``, build the doubles for this rank, train.

    ``loader``: double (DoubleLoader) | lhotse (a Lhotse sampler over dummy cuts).
    """
    device = torch.device("cpu")
    info = init_distributed(device)
    prepare_exp_dir(exp_dir, resume, overwrite, info.is_main)
    setup_run_logging(exp_dir, info)
    set_seed(cfg.seed)
    model = DoubleModel()
    if loader == "lhotse":
        train = lhotse_loader(40, 4, info.world_size, info.rank)
    else:
        train = DoubleLoader(40, 4, info.world_size, info.rank, nan_items=nan_items)
    dev = DoubleLoader(12, 4, info.world_size, info.rank)

    def hook(step: int) -> None:
        if kill_after is not None and step == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    state = run_training(cfg, exp_dir, model, train, dev, device, info, resume, hook)
    return model, state


def main(argv: Optional[list[str]] = None) -> None:
    """Parse, train, optionally write the final trainable weights of this rank."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--exp-dir", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-after", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--loader", choices=("double", "lhotse"), default="double")
    args = parser.parse_args(argv)
    install_from_env()
    try:
        model, _ = run_double(
            args.exp_dir,
            small_config(max_steps=args.max_steps),
            args.resume,
            False,
            args.kill_after,
            loader=args.loader,
        )
        if args.out is not None:
            save_file(model.trainable_state_dict(), str(args.out))
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    main()
