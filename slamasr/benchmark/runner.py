"""The whole benchmark run: environment, matmul peaks, both training passes, dev losses,
decoding, ratios and targets (:func:`run_benchmark`; the JSON fields: docs/benchmark.md)."""

from __future__ import annotations

import contextlib
import logging
import platform
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

from slamasr.benchmark.data import (
    build_cache,
    decode_loader_for,
    encoder_input_data_config,
    first_cuts,
    training_loaders,
)
from slamasr.benchmark.decode import ours_decode_source, run_decoding_modes
from slamasr.benchmark.modes import MODES, ModeSetup, build_modes, reference_llm
from slamasr.benchmark.options import BenchmarkOptions
from slamasr.benchmark.peaks import dtype_name, measure_peaks
from slamasr.benchmark.report import check_targets, compute_ratios
from slamasr.benchmark.train import (
    bench_train_config,
    dev_loss,
    make_trainer,
    summarize_training,
    train_pass,
)
from slamasr.training.config import TrainConfig
from slamasr.training.loop import Trainer

logger = logging.getLogger(__name__)


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (``platform`` values as a fallback)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()  # "model name\t: Intel(R) ..."
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, Any]:
    """Device, threads and versions recorded with the numbers."""
    from slamasr.utils import git_sha, time_tag

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "time": time_tag(),
        "device": str(device),
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "git_sha": git_sha(),
    }


def run_training_modes(
    modes: dict[str, ModeSetup],
    loaders: dict[str, Any],
    train_cfg: TrainConfig,
    peaks: dict[str, float],
    work_dir: Path,
    device: torch.device,
) -> tuple[dict[str, Any], dict[str, Trainer]]:
    """Train each mode over its loader once (a warm-up batch first, not trained on).

    Returns:
        Summaries keyed by mode, and each mode's trainer (its dev loss is computed with it).
    """
    summaries, trainers = {}, {}
    for name in MODES:
        setup = modes[name]
        warm = next(iter(loaders[name]))
        logger.info("training pass: %s", name)
        trainer = make_trainer(setup, loaders[name], train_cfg, device, work_dir / f"exp-{name}")
        run = train_pass(setup, trainer, warm)
        summary = summarize_training(run, peaks[dtype_name(setup.compute_dtype)])
        summaries[name] = {**summary, "compute_dtype": dtype_name(setup.compute_dtype)}
        trainers[name] = trainer
    return summaries, trainers


def _ours_max_duration(cfg: Any, opts: BenchmarkOptions) -> float:
    return opts.max_duration or cfg.data.max_duration or 30.0


def _training_data(
    cfg: Any, opts: BenchmarkOptions, modes: dict[str, ModeSetup], data_cfg: Any, work_dir: Path
) -> tuple[Any, float, dict[str, Any]]:
    """The training cuts (``steps x data.batch_size``), the seconds ours' encoder cache of
    them took to build, and both modes' loaders."""
    train_cuts = first_cuts(opts.cuts, opts.steps * data_cfg.batch_size, data_cfg, train=True)
    train_path = work_dir / "train_cuts.jsonl.gz"
    train_cuts.to_file(train_path)
    bf16 = modes["ours"].compute_dtype == torch.bfloat16
    cache_path, cache_s = build_cache(cfg, train_path, data_cfg, work_dir, bf16)
    max_duration = _ours_max_duration(cfg, opts)
    loaders = training_loaders(data_cfg, max_duration, cache_path, train_path, len(train_cuts))
    return train_cuts, cache_s, loaders


def _train_and_dev(
    cfg: Any,
    opts: BenchmarkOptions,
    modes: dict[str, ModeSetup],
    data_cfg: Any,
    work_dir: Path,
    device: torch.device,
    peaks: dict[str, float],
) -> dict[str, Any]:
    """Cache build, both training passes and both dev losses."""
    dev_path = opts.dev_cuts or cfg.data.dev_cuts
    if not dev_path:
        raise ValueError("no dev cuts: pass --dev-cuts or set data.dev_cuts")
    train_cuts, cache_s, loaders = _training_data(cfg, opts, modes, data_cfg, work_dir)
    lr = opts.lr or cfg.train.lr
    train_cfg = bench_train_config(cfg.train, lr)
    train, trainers = run_training_modes(modes, loaders, train_cfg, peaks, work_dir, device)
    dev_cuts = first_cuts(dev_path, opts.dev_max_cuts, data_cfg, train=False)
    dev_loader = decode_loader_for(dev_cuts, data_cfg, data_cfg.batch_size)
    audio = sum(c.duration for c in train_cuts)
    return {
        "setup": {
            "train_cuts": len(train_cuts),
            "train_audio_seconds": audio,
            "dev_cuts": len(dev_cuts),
            "lr": lr,
            "reference_batch_size": data_cfg.batch_size,
            "ours_max_duration": _ours_max_duration(cfg, opts),
        },
        "encoder_cache": {"build_seconds": cache_s, "audio_seconds": audio},
        "train": train,
        "dev": {name: dev_loss(trainers[name], dev_loader) for name in MODES},
    }


def _joint_settings(cfg: Any, opts: BenchmarkOptions) -> Optional[Any]:
    """The config's decode settings when ``--joint-decode`` asks for the joint search."""
    if not opts.joint_decode:
        return None
    if cfg.decode.scorers["ctc"].weight <= 0:
        raise ValueError(
            "--joint-decode decodes with the config's decode.scorers.ctc.weight, which is 0; "
            "set it (e.g. --set decode.scorers.ctc.weight=0.5) or drop --joint-decode"
        )
    return cfg.decode


def _decoding(
    cfg: Any,
    opts: BenchmarkOptions,
    modes: dict[str, ModeSetup],
    data_cfg: Any,
    work_dir: Path,
    device: torch.device,
) -> dict[str, Any]:
    """The ``decode`` section: nothing without ``--decode-cuts``."""
    if not opts.decode_cuts:
        return {"ours": []}
    joint = _joint_settings(cfg, opts)
    cuts = first_cuts(opts.decode_cuts, opts.decode_max_cuts, data_cfg, train=False)
    bf16 = modes["ours"].compute_dtype == torch.bfloat16
    source = ours_decode_source(cfg, cuts, data_cfg, opts, work_dir, bf16)
    return run_decoding_modes(modes, cuts, data_cfg, opts, device, source, joint)


def _modes_from_config(cfg: Any, seed: int, device: torch.device) -> dict[str, ModeSetup]:
    """Ours from ``build_model`` (the model training builds), the reference beside it."""
    from slamasr.models import build_model
    from slamasr.utils import resolve_autocast_dtype

    model = build_model(cfg.model, device=device)
    ours_dtype = resolve_autocast_dtype(cfg.train.dtype, device)
    return build_modes(model, seed, ours_dtype, reference_llm(model, cfg.model.llm, device))


def run_benchmark(cfg: Any, opts: BenchmarkOptions) -> dict[str, Any]:
    """Run everything; return the JSON-ready result (see docs/benchmark.md for its fields).

    Args:
        cfg: the resolved ExperimentConfig (model, data sampling, train lr/dtype).
        opts: what to run.
    """
    from slamasr.utils import resolve_device

    device = resolve_device(0, opts.device)
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    with contextlib.ExitStack() as stack:
        work_dir = Path(opts.work_dir or stack.enter_context(tempfile.TemporaryDirectory()))
        work_dir.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {"environment": environment(device)}
        peaks = result["matmul_peak_flops"] = measure_peaks(device, opts.peak_seconds)
        modes = _modes_from_config(cfg, opts.seed, device)
        data_cfg = encoder_input_data_config(cfg, modes["ours"].model)
        result.update(_train_and_dev(cfg, opts, modes, data_cfg, work_dir, device, peaks))
        result["decode"] = _decoding(cfg, opts, modes, data_cfg, work_dir, device)
    result["ratios"] = compute_ratios(result, opts.amortize_epochs)
    result["targets"] = check_targets(result)
    return result
