"""Downsampler + projector: shapes, tail dropping, and the paper's parameter counts."""

from __future__ import annotations

import pytest
import torch

from slamasr.models.projector import FrameDownsampler, Projector, projector_num_params

WHISPER = {"tiny": 384, "base": 512, "small": 768, "medium": 1024, "large": 1280}
SSL = {"base": 768, "large": 1024, "xlarge": 1280}
LLMS = {"TinyLlama": 2048, "Phi-2": 2560, "LLaMA-2/Vicuna": 4096}

# (encoder width, LLM width) -> projector size in millions, as printed in the paper's
# Tables 3 and 4 (Table 3: Whisper-large into each LLM; Table 4: each encoder into Vicuna).
PAPER_MILLIONS = {
    (1280, 2048): 17.31,  # Whisper-large / HuBERT X-Large -> TinyLlama
    (1280, 2560): 18.35,  # -> Phi-2
    (1280, 4096): 21.50,  # -> LLaMA-2 / Vicuna
    (384, 4096): 12.33,  # Whisper-tiny
    (512, 4096): 13.64,  # Whisper-base
    (768, 4096): 16.26,  # Whisper-small, HuBERT/WavLM Base
    (1024, 4096): 18.88,  # Whisper-medium, HuBERT/WavLM Large
    (80, 4096): 9.21,  # FBank
}


@pytest.mark.parametrize("dims,millions", sorted(PAPER_MILLIONS.items()))
def test_param_count_matches_paper(dims: tuple[int, int], millions: float) -> None:
    """A built projector has exactly the closed-form count, equal to the paper's figure."""
    enc, llm = dims
    assert round(projector_num_params(enc, llm) / 1e6, 2) == millions
    if enc * llm <= 1280 * 2048:  # build the smaller ones for real (fast)
        module = Projector("mlp", enc, llm, downsample_rate=5, hidden_dim=2048)
        assert sum(p.numel() for p in module.parameters()) == projector_num_params(enc, llm)


def test_every_paper_width_pair_is_covered() -> None:
    """Every encoder width of the paper into Vicuna, and Whisper-large into every LLM."""
    widths = set(WHISPER.values()) | set(SSL.values()) | {80}
    assert {(w, 4096) for w in widths} | {(1280, d) for d in LLMS.values()} <= set(PAPER_MILLIONS)


def test_downsampler_concatenates_and_drops_tail() -> None:
    """Frames [0..k) become one row; a tail shorter than k is dropped; lengths //= k."""
    x = torch.arange(2 * 12 * 3, dtype=torch.float32).reshape(2, 12, 3)  # (B, T, D)
    out, lengths = FrameDownsampler(5)(x, torch.tensor([12, 7]))
    assert out.shape == (2, 2, 15)
    assert torch.equal(out[0, 1], x[0, 5:10].reshape(-1))
    assert lengths.tolist() == [2, 1]


def test_linear_projector_shape_and_count() -> None:
    proj = Projector("linear", 16, 32, downsample_rate=5, hidden_dim=2048)
    out, lengths = proj(torch.randn(2, 11, 16), torch.tensor([11, 6]))
    assert out.shape == (2, 2, 32) and lengths.tolist() == [2, 1]
    count = sum(p.numel() for p in proj.parameters())
    assert count == projector_num_params(16, 32, name="linear")


@pytest.mark.parametrize("norm", ["rms", "rms_fixed"])
def test_output_norm_scales_speech_to_the_given_rms(norm: str) -> None:
    """Each projected vector leaves with RMS = the gain (the LLM's token-embedding RMS),
    whatever the input's scale; the gain trains only for ``rms`` and is saved either way."""
    proj = Projector("mlp", 8, 16, 5, 32, output_norm=norm, output_rms=0.13)
    frames = 50.0 * torch.randn(2, 20, 8)
    out, lengths = proj(frames, torch.tensor([20, 12]))
    assert out.shape == (2, 4, 16) and lengths.tolist() == [4, 2]
    torch.testing.assert_close(out.pow(2).mean(-1).sqrt(), torch.full((2, 4), 0.13))
    trainable = {n for n, p in proj.named_parameters() if p.requires_grad}
    assert ("output_norm.gain" in trainable) == (norm == "rms")
    assert "output_norm.gain" in proj.state_dict()
    plain = Projector("mlp", 8, 16, 5, 32)
    assert sum(p.numel() for p in proj.parameters() if p.requires_grad) == sum(
        p.numel() for p in plain.parameters()
    ) + (16 if norm == "rms" else 0)


def test_output_norm_gain_starts_at_the_llm_embedding_rms(tmp_path) -> None:
    from slamasr.models import build_model
    from tests.helpers import tiny_model_config

    cfg = tiny_model_config("fbank", tmp_path)
    cfg.projector.output_norm = "rms"
    model = build_model(cfg)
    table = model.llm.get_input_embeddings().weight
    want = float(table.pow(2).mean().sqrt())
    torch.testing.assert_close(
        model.projector.output_norm.gain, torch.full((table.shape[1],), want)
    )
    cfg.projector.output_norm = "layer"
    with pytest.raises(ValueError, match="model.projector.output_norm='layer'"):
        cfg.validate()
