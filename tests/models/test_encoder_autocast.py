"""``model.encoder.autocast``: the encoder's own autocast, whatever the caller's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slamasr.models.config import EncoderConfig
from slamasr.models.encoders import build_encoder
from tests.helpers import make_tiny_batch, make_tiny_encoder


def encode(path: Path, autocast: str, outer: torch.dtype | None = None) -> torch.Tensor:
    """Frames of a fixed batch from a tiny fp32 HuBERT with ``autocast``, optionally inside
    an ``outer`` autocast (the trainer's)."""
    encoder = build_encoder(
        EncoderConfig(name="hubert", path=str(path), dtype="float32", autocast=autocast)
    )
    batch = make_tiny_batch("hubert", num=2)
    ctx = torch.autocast("cpu", dtype=outer) if outer else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        frames, _ = encoder(batch["inputs"], batch["input_lengths"])
    return frames.float()


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_encoder("hubert", tmp_path_factory.mktemp("hubert"), feat_extract_norm="layer")


def test_float16_autocast_applies_inside_and_overrides_the_callers(hubert_dir: Path) -> None:
    plain = encode(hubert_dir, "")
    fp16 = encode(hubert_dir, "float16")
    assert not torch.equal(fp16, plain)  # fp16 matmuls: rounded
    assert torch.allclose(fp16, plain, rtol=0.05, atol=0.05)
    assert torch.equal(encode(hubert_dir, "", outer=torch.float16), fp16)
    assert torch.equal(encode(hubert_dir, "float16", outer=torch.bfloat16), fp16)


def test_float32_runs_without_the_callers_autocast(hubert_dir: Path) -> None:
    plain = encode(hubert_dir, "")
    assert not torch.equal(encode(hubert_dir, "", outer=torch.bfloat16), plain)
    assert torch.equal(encode(hubert_dir, "float32", outer=torch.bfloat16), plain)


def test_unknown_autocast_names_the_key() -> None:
    with pytest.raises(ValueError, match="model.encoder.autocast='half'"):
        EncoderConfig(name="hubert", path="x", autocast="half").validate()
