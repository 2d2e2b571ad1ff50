"""One training run from an ExperimentConfig: exp-dir policy, logging, building, the loop.

Nothing in the exp dir is touched until the run is known to start: the exp-dir policy,
the training manifests and (on ``--resume``) the checkpoint's fit to the model this config
builds are all checked first, with log lines held in memory; a refusal leaves the exp dir
byte-identical.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from slamasr import checkpoints as ckpt
from slamasr.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    cleanup_distributed,
    dist_info_from_env,
    init_distributed,
)
from slamasr.logging_setup import setup_logging
from slamasr.training.checkpoint import remove_stale_temporaries
from slamasr.training.config import TrainConfig, global_batch_description, resolve_batch
from slamasr.training.loop import LoopState, build_trainer, train
from slamasr.training.report import ACCURACY_PLOT
from slamasr.utils import env_info, resolve_autocast_dtype, resolve_device, set_seed, time_tag

ENV_FILE = "env.json"
CONFIG_FILE = "config.yaml"
WER_FILE = "wer"
OLD_RUN_PREFIX = "old-"


class TrainingUserError(RuntimeError):
    """Training cannot start as asked; the one-line message says what, where and what to do."""


class ExpDirError(TrainingUserError):
    """The exp dir holds results that this command would overwrite."""


class ResumeError(ExpDirError):
    """``--resume`` cannot continue: no usable checkpoint, or one that does not fit the model."""


class TrainDataError(TrainingUserError):
    """A training/dev manifest is missing or holds no cuts."""


def _start_options(exp_dir: Path) -> str:
    return (
        f"pass --start-over to move them into {exp_dir}/{OLD_RUN_PREFIX}<time>/ and train from "
        "step 0, or --overwrite to delete them and train from step 0"
    )


def check_writable(exp_dir: Path) -> None:
    """Refuse early when ``exp_dir`` (or the nearest existing directory above it) is read-only.

    Raises:
        ExpDirError: naming the directory that cannot be written.
    """
    probe = exp_dir.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
        raise ExpDirError(
            f"cannot write to {exp_dir}: {probe} is not writable (permission denied or a "
            "read-only file system); choose another --exp-dir or fix its permissions"
        )


def check_exp_dir(
    exp_dir: Path, resume: bool, overwrite: bool, start_over: bool = False
) -> Optional[Path]:
    """Apply the no-silent-overwrite policy to ``exp_dir`` without changing anything in it.

    Returns:
        The checkpoint ``--resume`` continues from (None: start at step 0).

    Raises:
        ExpDirError: checkpoints exist and no flag says what to do with them.
        ResumeError: ``--resume`` found checkpoints but none it can continue from.
    """
    check_writable(exp_dir)
    ckpt_dir = exp_dir / "checkpoints"
    has_ckpts = ckpt_dir.is_dir() and any(ckpt_dir.iterdir())
    if has_ckpts and not (resume or overwrite or start_over):
        raise ExpDirError(
            f"{exp_dir} already holds checkpoints; pass --resume to continue that run, "
            f"or {_start_options(exp_dir).removeprefix('pass ')}"
        )
    if not resume:
        return None
    path = ckpt.resumable_checkpoint(ckpt_dir)
    if path is None:
        found = ckpt.describe_checkpoints(ckpt_dir)
        if found:
            raise ResumeError(
                f"--resume: {ckpt_dir} holds no checkpoint to continue from: "
                f"{'; '.join(found)}; {_start_options(exp_dir)}"
            )
        logging.info("--resume: no checkpoint in %s yet, starting from step 0", exp_dir)
    return path


def prepare_exp_dir(
    exp_dir: Path,
    resume: bool,
    overwrite: bool,
    is_main: bool,
    start_over: bool = False,
    check: bool = True,
) -> None:
    """Check (:func:`check_exp_dir`), then make ``exp_dir`` ready for the run (collective).

    ``overwrite`` deletes the checkpoints, TensorBoard logs and plot, and moves the old
    model's decode dirs, ``wer``, config and env into ``old-<time>/``; ``start_over`` moves
    all of these there (nothing deleted). Text logs stay. Each move is logged (WARNING).

    Args:
        check: run :func:`check_exp_dir` first (False: the caller just did).

    Raises:
        ExpDirError: see :func:`check_exp_dir` (raised before anything is changed).
    """
    if check:
        check_exp_dir(exp_dir, resume, overwrite, start_over)
    barrier()
    if is_main:
        ckpt_dir = exp_dir / "checkpoints"
        if start_over and not resume:
            old_run = [ckpt_dir, exp_dir / "tensorboard", exp_dir / ACCURACY_PLOT]
            why = "--start-over"
            move_aside(exp_dir, _with_run_info(exp_dir, old_run + _old_results(exp_dir)), why)
        elif overwrite and not resume:
            _delete_old_run(exp_dir)
            move_aside(exp_dir, _with_run_info(exp_dir, _old_results(exp_dir)), "--overwrite")
        exp_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(ckpt_dir)
    barrier()


def _old_results(exp_dir: Path) -> list[Path]:
    """Decode dirs and ``wer``."""
    results = sorted(p for p in exp_dir.glob("decode-*") if p.is_dir())
    return results + [p for p in (exp_dir / WER_FILE,) if p.is_file()]


def _with_run_info(exp_dir: Path, paths: list[Path]) -> list[Path]:
    """``paths`` plus the config and env that produced them, when any of ``paths`` exists."""
    if not any(_holds_something(p) for p in paths):
        return []
    return paths + [p for p in (exp_dir / CONFIG_FILE, exp_dir / ENV_FILE) if p.is_file()]


def _holds_something(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def _delete_old_run(exp_dir: Path) -> None:
    ckpt_dir = exp_dir / "checkpoints"
    if ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        found = ckpt.describe_checkpoints(ckpt_dir)
        logging.warning("--overwrite: deleting %s (%s)", ckpt_dir, "; ".join(found) or "empty")
    for path in (ckpt_dir, exp_dir / "tensorboard"):
        shutil.rmtree(path, ignore_errors=True)
    (exp_dir / ACCURACY_PLOT).unlink(missing_ok=True)


def move_aside(exp_dir: Path, paths: list[Path], why: str) -> Optional[Path]:
    """Move the existing ``paths`` into a new ``exp_dir/old-<time>/`` and log it (WARNING).

    Returns:
        The new directory, or None when none of ``paths`` exists.
    """
    present = [p for p in paths if _holds_something(p)]
    if not present:
        return None
    base = dest = exp_dir / f"{OLD_RUN_PREFIX}{time_tag()}"
    count = 0
    while dest.exists():
        count += 1
        dest = base.with_name(f"{base.name}-{count}")
    dest.mkdir()
    for path in present:
        shutil.move(str(path), str(dest / path.name))
    logging.warning(
        "%s: moved the previous run's %s into %s (they describe a model that is being replaced)",
        why,
        ", ".join(p.name for p in present),
        dest,
    )
    return dest


def find_resume_checkpoint(exp_dir: Path, resume: bool) -> Optional[Path]:
    """The newest valid step checkpoint when resuming, else None (fresh start)."""
    if not resume:
        return None
    return ckpt.latest_valid_checkpoint(exp_dir / "checkpoints")


def setup_run_logging(exp_dir: Path, dist_info: DistInfo) -> Path:
    """Log to ``exp_dir/log/log-train-<time>[-<rank>]`` (same time tag on every rank)."""
    tag = broadcast_object(time_tag())
    suffix = f"-{dist_info.rank}" if dist_info.world_size > 1 else ""
    log_file = exp_dir / "log" / f"log-train-{tag}{suffix}"
    setup_logging(log_file, dist_info.rank)
    return log_file


def write_run_info(cfg: Any, exp_dir: Path) -> None:
    """Write the resolved config (``config.yaml``) and ``env.json`` (git sha, versions).

    A ``config.yaml`` that differs (a resume with changed settings) is first kept as
    ``log/config-before-<time>.yaml`` and the changed keys are logged (WARNING).
    """
    from slamasr.config import save_config

    path = exp_dir / CONFIG_FILE
    changes = config_changes(read_recorded_config(exp_dir), as_recorded(cfg))
    if path.is_file() and changes:
        kept = exp_dir / "log" / f"config-before-{time_tag()}.yaml"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, kept)
        logging.warning("settings changed since %s: %s (old file kept as %s)", path, changes, kept)
    save_config(cfg, path)
    info = env_info()
    (exp_dir / ENV_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    logging.info("git sha %s; versions %s", info["git_sha"], info["versions"])


def as_recorded(cfg: Any) -> dict[str, Any]:
    """``cfg`` as ``config.yaml`` would read back (YAML round trip: tuples become lists)."""
    from slamasr.config import to_dict

    return yaml.safe_load(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def read_recorded_config(exp_dir: Path) -> Optional[dict[str, Any]]:
    """The exp dir's ``config.yaml`` as a plain dict, or None if absent or unreadable."""
    try:
        with open(exp_dir / CONFIG_FILE, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_changes(old: Optional[dict[str, Any]], new: dict[str, Any], section: str = "") -> str:
    """``key: old -> new`` for each setting (under ``section``) that differs; "" if none."""
    if old is None:
        return ""
    before, after = _flatten(old), _flatten(new)
    keys = sorted(k for k in set(before) | set(after) if k.startswith(section))
    return ", ".join(
        f"{k}: {before.get(k, '(unset)')!r} -> {after.get(k, '(unset)')!r}"
        for k in keys
        if before.get(k, "(unset)") != after.get(k, "(unset)")
    )


def check_checkpoint_fits(model: torch.nn.Module, path: Path, cfg: Any, exp_dir: Path) -> None:
    """Refuse a resume whose checkpoint's tensors do not match the model ``cfg`` builds.

    Read from the safetensors header only; nothing is loaded into the model.

    Raises:
        ResumeError: a tensor is missing, extra, or has another shape (names the first ones
            and the ``model.*`` settings changed since the recorded ``config.yaml``).
    """

    saved = ckpt.checkpoint_shapes(path)
    wanted = {k: tuple(v.shape) for k, v in model.trainable_state_dict().items()}
    diffs = [
        f"{k}: {saved.get(k, 'absent')} saved, {wanted.get(k, 'absent')} now"
        for k in sorted(set(saved) | set(wanted))
        if saved.get(k) != wanted.get(k)
    ]
    if not diffs:
        return
    more = f" (+{len(diffs) - 2} more)" if len(diffs) > 2 else ""
    changed = config_changes(read_recorded_config(exp_dir), as_recorded(cfg), "model.")
    why = f"; changed since {exp_dir / CONFIG_FILE}: {changed}" if changed else ""
    raise ResumeError(
        f"--resume: checkpoint {path} does not fit the model this config builds "
        f"({'; '.join(diffs[:2])}{more}){why}. Nothing in {exp_dir} was changed: resume with "
        "the recorded settings, or train the new settings into another --exp-dir"
    )


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
    resume_from: Optional[Path] = None,
) -> LoopState:
    """Train ``model`` (already built, on ``device``) with ready loaders.

    The exp dir must have been prepared (:func:`prepare_exp_dir`). ``resume_from`` (with
    ``resume``) names the checkpoint already chosen, else the newest valid one is used.

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
    if resume_from is None or not resume_from.is_dir():
        resume_from = find_resume_checkpoint(exp_dir, resume)
    return train(trainer, resume_from if resume else None, on_step_end)


def _load_cuts(path: str, allow_command_sources: bool = False) -> Any:
    from slamasr.data.manifests import UnsafeManifestError, load_cuts

    try:
        return load_cuts(path, allow_command_sources=allow_command_sources)
    except UnsafeManifestError as e:
        raise TrainDataError(str(e)) from e


def check_manifests(data_cfg: Any) -> None:
    """Each training/dev manifest exists and holds at least one cut (reads one line).

    Raises:
        TrainDataError: one line naming the key, the file and what to do.
    """
    if not data_cfg.train_cuts:
        raise TrainDataError(
            "data.train_cuts is empty; set it to the training CutSet manifest "
            "(data.train_cuts=data/manifests/<corpus>_cuts_<train set>.jsonl.gz)"
        )
    entries = [("data.train_cuts", data_cfg.train_cuts), ("data.dev_cuts", data_cfg.dev_cuts)]
    for key, path in entries:
        if not path:
            continue
        if not Path(path).is_file():
            raise TrainDataError(
                f"{key}={path}: no such file (working directory {Path.cwd()}); run the recipe's "
                f"data stages or point {key} at an existing CutSet manifest"
            )
        cuts = _load_cuts(path, data_cfg.allow_command_sources)
        if cuts is None or next(iter(cuts), None) is None:
            raise TrainDataError(
                f"{key}={path} holds 0 cuts, so there is nothing to "
                f"{'train' if key == 'data.train_cuts' else 'validate'} on; rebuild it with the "
                f"recipe's data stages or point {key} at a non-empty CutSet manifest "
                "(python -m slamasr.bin.validate_data --cuts FILE checks one)"
            )


def build_loaders(cfg: Any, dist_info: DistInfo) -> tuple[Iterable[dict], Optional[Iterable]]:
    """Train and dev loaders from ``cfg.data`` (dev is None without ``data.dev_cuts``)."""
    from slamasr.data import build_dataloader

    def make(path: str, is_train: bool) -> Iterable[dict]:
        return build_dataloader(
            _load_cuts(path, cfg.data.allow_command_sources),
            cfg.data,
            is_train,
            dist_info.world_size,
            dist_info.rank,
        )

    check_manifests(cfg.data)
    dev = make(cfg.data.dev_cuts, False) if cfg.data.dev_cuts else None
    return make(cfg.data.train_cuts, True), dev


class HeldLogRecords(logging.Handler):
    """Keeps log records in memory until the run's log file exists (then :meth:`release`)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def release(self) -> None:
        """Write the held records to the root logger's file handlers; stop holding."""
        logging.getLogger().removeHandler(self)
        files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
        for handler in files:
            for record in self.records:
                if record.levelno >= handler.level:
                    handler.handle(record)
        self.records = []


def hold_log_records(rank: int) -> HeldLogRecords:
    """Log to the console now and keep every record for the log file written later."""
    setup_logging(None, rank)
    held = HeldLogRecords()
    logging.getLogger().addHandler(held)
    return held


def train_from_config(
    cfg: Any,
    exp_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
    start_over: bool = False,
) -> LoopState:
    """Everything ``slamasr.bin.train`` does: check, build model and data, train, clean up.

    The exp dir is changed only once the run is known to start: the exp-dir policy, the
    manifests and, on resume, the checkpoint's fit to the built model are checked first.

    Args:
        cfg: the resolved ``ExperimentConfig``.
        exp_dir: experiment directory.
        resume: continue from the newest valid checkpoint (step 0 when the exp dir has none;
            refused when it has checkpoints but none usable).
        overwrite: delete existing checkpoints, move old results aside, start again.
        start_over: move the old run (checkpoints included) aside and start again.
    """
    from slamasr.models import build_model

    device = resolve_device(dist_info_from_env().local_rank, cfg.train.device)
    dist_info = init_distributed(device)
    held = hold_log_records(dist_info.rank)
    try:
        train_cfg, data_cfg = resolve_batch(cfg.train, cfg.data, dist_info.world_size)
        resume_from = check_exp_dir(exp_dir, resume, overwrite, start_over)
        check_manifests(cfg.data)
        set_seed(cfg.train.seed)
        model = build_model(cfg.model, device=device)
        if resume_from is not None:
            check_checkpoint_fits(model, resume_from, cfg, exp_dir)
        prepare_exp_dir(exp_dir, resume, overwrite, dist_info.is_main, start_over, check=False)
        setup_run_logging(exp_dir, dist_info)
        held.release()
        if dist_info.is_main:
            write_run_info(cfg, exp_dir)
        logging.info(global_batch_description(train_cfg, data_cfg, dist_info.world_size))
        cfg = dataclasses.replace(cfg, train=train_cfg, data=data_cfg)  # config.yaml: as given
        train_loader, dev_loader = build_loaders(cfg, dist_info)
        return run_training(
            cfg.train,
            exp_dir,
            model,
            train_loader,
            dev_loader,
            device,
            dist_info,
            resume,
            resume_from=resume_from,
        )
    finally:
        logging.getLogger().removeHandler(held)
        cleanup_distributed()
