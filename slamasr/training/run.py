"""One training run from an ExperimentConfig: exp-dir policy, logging, building, the loop."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Optional

import torch

from slamasr.training import checkpoint as ckpt
from slamasr.training.config import TrainConfig, global_batch_description, resolve_batch
from slamasr.training.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    cleanup_distributed,
    dist_info_from_env,
    init_distributed,
)
from slamasr.training.loop import LoopState, build_trainer, train
from slamasr.training.report import ACCURACY_PLOT
from slamasr.utils import (
    env_info,
    resolve_autocast_dtype,
    resolve_device,
    set_seed,
    setup_logging,
    time_tag,
)

ENV_FILE = "env.json"
CONFIG_FILE = "config.yaml"


class ExpDirError(RuntimeError):
    """The exp dir holds results that this command would overwrite."""


def prepare_exp_dir(exp_dir: Path, resume: bool, overwrite: bool, is_main: bool) -> None:
    """Apply the no-silent-overwrite policy to ``exp_dir`` (collective).

    A dir with checkpoints refuses a fresh start unless ``overwrite`` (which deletes the
    checkpoints, TensorBoard logs and plot; text logs are kept) or ``resume``.

    Raises:
        ExpDirError: checkpoints exist and neither flag was given.
    """
    ckpt_dir = exp_dir / "checkpoints"
    has_ckpts = ckpt_dir.is_dir() and any(ckpt_dir.iterdir())
    if has_ckpts and not (resume or overwrite):
        raise ExpDirError(
            f"{exp_dir} already holds checkpoints; pass --resume to continue that run or "
            "--overwrite to delete them and start again"
        )
    if is_main:
        if overwrite and not resume:
            for path in (ckpt_dir, exp_dir / "tensorboard"):
                shutil.rmtree(path, ignore_errors=True)
            (exp_dir / ACCURACY_PLOT).unlink(missing_ok=True)
        exp_dir.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temporaries(ckpt_dir)
    barrier()


def find_resume_checkpoint(exp_dir: Path, resume: bool) -> Optional[Path]:
    """The newest valid step checkpoint when resuming, else None (fresh start)."""
    if not resume:
        return None
    path = ckpt.latest_valid_checkpoint(exp_dir / "checkpoints")
    if path is None:
        logging.info("--resume: no checkpoint in %s, starting from scratch", exp_dir)
    return path


def setup_run_logging(exp_dir: Path, dist_info: DistInfo) -> Path:
    """Log to ``exp_dir/log/log-train-<time>[-<rank>]`` (same time tag on every rank)."""
    tag = broadcast_object(time_tag())
    suffix = f"-{dist_info.rank}" if dist_info.world_size > 1 else ""
    log_file = exp_dir / "log" / f"log-train-{tag}{suffix}"
    setup_logging(log_file, dist_info.rank)
    return log_file


def write_run_info(cfg: Any, exp_dir: Path) -> None:
    """Write the resolved config (``config.yaml``) and ``env.json`` (git sha, versions)."""
    from slamasr.config import save_config

    save_config(cfg, exp_dir / CONFIG_FILE)
    info = env_info()
    (exp_dir / ENV_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    logging.info("git sha %s; versions %s", info["git_sha"], info["versions"])


def log_trainable_parameters(model: torch.nn.Module) -> int:
    """Log each trainable parameter's name and size and the total; return the total."""
    total = 0
    for name, p in model.named_parameters():
        if p.requires_grad:
            logging.info("trainable: %s %s (%d)", name, tuple(p.shape), p.numel())
            total += p.numel()
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    logging.info("trainable parameters: %d (%.2fM); frozen: %d", total, total / 1e6, frozen)
    return total


def run_training(
    cfg: TrainConfig,
    exp_dir: Path,
    model: torch.nn.Module,
    train_loader: Iterable[dict],
    dev_loader: Optional[Iterable[dict]],
    device: torch.device,
    dist_info: DistInfo,
    resume: bool = False,
    on_step_end: Optional[Callable[[int], None]] = None,
) -> LoopState:
    """Train ``model`` (already built, on ``device``) with ready loaders.

    The exp dir must have been prepared (:func:`prepare_exp_dir`).

    Returns:
        The final loop state.
    """
    autocast_dtype = resolve_autocast_dtype(cfg.dtype, device)
    logging.info(
        "device %s, autocast dtype %s, world size %d", device, autocast_dtype, dist_info.world_size
    )
    log_trainable_parameters(model)
    trainer = build_trainer(
        cfg, exp_dir, model, train_loader, dev_loader, device, autocast_dtype, dist_info
    )
    return train(trainer, find_resume_checkpoint(exp_dir, resume), on_step_end)


def _load_cuts(path: str) -> Any:
    from lhotse import load_manifest_lazy

    return load_manifest_lazy(path)


def build_loaders(cfg: Any, dist_info: DistInfo) -> tuple[Iterable[dict], Optional[Iterable]]:
    """Train and dev loaders from ``cfg.data`` (dev is None without ``data.dev_cuts``)."""
    from slamasr.data import build_dataloader

    def make(path: str, is_train: bool) -> Iterable[dict]:
        return build_dataloader(
            _load_cuts(path), cfg.data, is_train, dist_info.world_size, dist_info.rank
        )

    if not cfg.data.train_cuts:
        raise ValueError("data.train_cuts is empty; give the training CutSet manifest")
    dev = make(cfg.data.dev_cuts, False) if cfg.data.dev_cuts else None
    return make(cfg.data.train_cuts, True), dev


def train_from_config(
    cfg: Any,
    exp_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
) -> LoopState:
    """Everything ``slamasr.bin.train`` does: set up, build model and data, train, clean up.

    Args:
        cfg: the resolved ``ExperimentConfig``.
        exp_dir: experiment directory.
        resume: continue from the newest valid checkpoint (fresh start if there is none).
        overwrite: delete existing checkpoints and start again.
    """
    from slamasr.models import build_model

    device = resolve_device(dist_info_from_env().local_rank, cfg.train.device)
    dist_info = init_distributed(device)
    try:
        train_cfg, data_cfg = resolve_batch(cfg.train, cfg.data, dist_info.world_size)
        prepare_exp_dir(exp_dir, resume, overwrite, dist_info.is_main)
        setup_run_logging(exp_dir, dist_info)
        if dist_info.is_main:
            write_run_info(cfg, exp_dir)
        logging.info(global_batch_description(train_cfg, data_cfg, dist_info.world_size))
        cfg = dataclasses.replace(cfg, train=train_cfg, data=data_cfg)  # config.yaml: as given
        set_seed(cfg.train.seed)
        model = build_model(cfg.model, device=device)
        train_loader, dev_loader = build_loaders(cfg, dist_info)
        return run_training(
            cfg.train, exp_dir, model, train_loader, dev_loader, device, dist_info, resume
        )
    finally:
        cleanup_distributed()
