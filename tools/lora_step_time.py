#!/usr/bin/env python3
"""Time joint training steps (LLM loss) with and without LoRA on a trained experiment.

Builds the experiment's model twice from its ``config.yaml`` (as recorded, and with
``model.lora`` rank ``--rank`` on ``--targets``), loads the checkpoint's trained weights into
both (the LoRA model's adapters start fresh: B = 0), takes the first training batch, and
trains each model on that same batch, alternating step by step so both see the same machine
load. Prints the trainable parameter counts and the seconds per step (forward, backward,
AdamW step) of each, in wall time and in this process's CPU time. Run it from the recipe
directory (the config's relative paths).

Usage (CPU recipe):
    cd egs/espeak_en/slam_asr
    nice -n 10 python ../../../tools/lora_step_time.py --exp-dir exp/<name> --rank 8 --steps 5
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slamasr.models.config import LoRAConfig


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp-dir", type=Path, required=True, help="a trained experiment")
    parser.add_argument("--checkpoint", default="best", help="its checkpoint (default best)")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    parser.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha (default 16)")
    parser.add_argument(
        "--targets", default="q_proj,v_proj", help="comma-separated LLM layers to adapt"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    return parser


def build(cfg: Any, checkpoint: Path, lora: LoRAConfig) -> tuple[Any, int]:
    """The experiment's model with ``lora``, holding the checkpoint's weights; its number of
    trainable parameters."""
    from slamasr.models import build_model, count_parameters
    from slamasr.training import checkpoint as ckpt

    model = build_model(dataclasses.replace(cfg.model, lora=lora), device="cpu")
    state = model.trainable_state_dict()  # fresh adapters stay as built
    state.update(ckpt.load_trainable(checkpoint))
    model.load_trainable_state_dict(state)
    return model, count_parameters(model, trainable_only=True)


def step(model: Any, optimizer: Any, batch: dict, dtype: torch.dtype) -> tuple[float, float, float]:
    """One joint training step; (wall seconds, CPU seconds of this process, loss).

    CPU seconds count only this process's work, so they move less than wall time when other
    processes share the cores.
    """
    start, cpu = time.perf_counter(), time.process_time()
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        out = model(batch, llm_loss=True)
    out["loss"].float().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start, time.process_time() - cpu, out["loss"].item()


def first_batch(cfg: Any) -> dict:
    """The first batch the training loader yields."""
    from slamasr.data import build_dataloader
    from slamasr.data.manifests import load_cuts

    cuts = load_cuts(cfg.data.train_cuts)
    return next(iter(build_dataloader(cuts, cfg.data, train=True, num_workers=0)))


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from slamasr.config import load_config
    from slamasr.training.checkpoint import resolve_checkpoint
    from slamasr.utils import resolve_autocast_dtype, set_seed

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.exp_dir / "config.yaml", recorded=True)
    checkpoint = resolve_checkpoint(args.exp_dir / "checkpoints", args.checkpoint)
    dtype = resolve_autocast_dtype(cfg.train.dtype, torch.device("cpu"))
    lora = LoRAConfig(args.rank, args.alpha, args.targets.split(","))
    set_seed(cfg.train.seed)
    batch = first_batch(cfg)
    runs = {}
    for name, lora_cfg in (("projector only", LoRAConfig()), (f"LoRA rank {args.rank}", lora)):
        set_seed(cfg.train.seed)
        model, params = build(cfg, checkpoint, lora_cfg)
        model.train()
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=cfg.train.lr)
        runs[name] = (model, optimizer, params, [], [])
    print(
        f"batch: {len(batch['texts'])} utterances, {float(batch['durations'].sum()):.1f} s of "
        f"audio; autocast {dtype}; {torch.get_num_threads()} threads; checkpoint {checkpoint}"
    )
    for i in range(args.warmup + args.steps):
        for model, optimizer, _, seconds, losses in runs.values():
            wall, cpu, loss = step(model, optimizer, batch, dtype)
            losses.append(loss)
            if i >= args.warmup:
                seconds.append((wall, cpu))
    base = [statistics.median(s[k] for s in next(iter(runs.values()))[3]) for k in (0, 1)]
    for name, (_, _, params, seconds, losses) in runs.items():
        print(f"{name}: {params} trainable parameters; loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        for k, what in enumerate(("wall", "CPU")):
            values = [s[k] for s in seconds]
            median = statistics.median(values)
            print(
                f"  {what} s/step: median {median:.3f} (x{median / base[k]:.2f}), mean "
                f"{statistics.mean(values):.3f}, min {min(values):.3f}, max {max(values):.3f} "
                f"over {len(values)} steps"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
