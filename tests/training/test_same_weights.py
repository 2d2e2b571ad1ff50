"""Training reproduces the same weights and the same logged statistics as the recorded run.

A tiny random SlamASR with both auxiliary heads (the projector's token CTC with sampled
classes, the character CTC on the encoder frames) trains through the real loop: CTC-only
warm-up steps, then joint steps, validating in both phases. The final trainable weights
(sha256 of each tensor's bytes) and every logged train/dev statistic must equal the golden
record in ``golden_same_weights.json``, bit for bit: a refactor of the model's loss or of the
loop's bookkeeping may not change a single operation.

One value was changed on purpose: the dev loss at step 4. Validation used to round each
batch's CE * tokens to float32 before summing in float64 (training did not); statistics by name
sum in float64 throughout. Put that rounding back into ``loop.validate`` and the original
record (commit 07c0b0b) passes unchanged, weights included.

The record depends on the torch build (and, rarely, the CPU's kernels): after a torch upgrade
rewrite it from the code before your change with::

    python -m tests.training.test_same_weights --write
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from slamasr.distributed import DistInfo
from slamasr.models import build_model
from slamasr.models.config import CharCTCConfig, ProjectorConfig
from slamasr.training import loop
from tests.helpers import make_tiny_batch, tiny_model_config

from .train_double import small_config

GOLDEN = Path(__file__).with_name("golden_same_weights.json")


class _Batches:
    """Three fixed batches per epoch (one with a transcript the character head cannot spell)."""

    def __init__(self, seeds: tuple[int, ...]) -> None:
        self.batches = [make_tiny_batch("fbank", num=3, seed=s) for s in seeds]
        self.batches[0]["texts"][2] = "one 2 three"

    def __iter__(self):
        return iter(self.batches)


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().contiguous().cpu().numpy().tobytes()).hexdigest()


def train_and_record(work: Path) -> dict[str, Any]:
    """Train the tiny two-head model for 5 steps (2 CTC-only) and return what it produced."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order for every kernel
    try:
        cfg = tiny_model_config("fbank", work / "models")
        cfg.projector = ProjectorConfig(hidden_dim=64, ctc_weight=0.5, ctc_classes=48)
        cfg.char_ctc = CharCTCConfig(weight=0.3, hidden_dim=32, context=1)
        torch.manual_seed(0)
        model = build_model(cfg, device="cpu")
        train_cfg = small_config(
            max_steps=5, ctc_only_steps=2, grad_accum=1, valid_interval=2, save_interval=100
        )
        trainer = loop.build_trainer(
            train_cfg,
            work / "exp",
            model,
            _Batches((0, 1, 2)),
            _Batches((3,)),
            torch.device("cpu"),
            torch.float32,
            DistInfo(),
        )
        state = loop.train(trainer)
    finally:
        torch.set_num_threads(threads)
    weights = model.trainable_state_dict()
    return {
        "torch": torch.__version__.split("+")[0],
        "step": state.step,
        "history": state.history,
        "valid_history": state.valid_history,
        "weights": {k: _digest(v) for k, v in sorted(weights.items())},
        "weight_sums": {k: float(v.double().sum()) for k, v in sorted(weights.items())},
    }


def test_training_reproduces_the_recorded_weights_and_statistics(tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(train_and_record(tmp_path)))  # same float/int round trip
    assert got["step"] == golden["step"] == 5
    assert got["history"] == golden["history"]
    assert got["valid_history"] == golden["valid_history"]
    assert got["weight_sums"] == golden["weight_sums"]
    assert got["weights"] == golden["weights"], (
        f"trainable weights differ from the record (torch {got['torch']}, recorded with "
        f"{golden['torch']})"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.training.test_same_weights --write")
    with tempfile.TemporaryDirectory() as tmp:
        record = train_and_record(Path(tmp))
    GOLDEN.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
