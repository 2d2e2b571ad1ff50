"""Downsampler (concatenate every k frames) + projector into the LLM's embedding space."""

from __future__ import annotations

import torch
from torch import nn

from slamasr.models.config import ProjectorConfig
from slamasr.models.ctc import TokenCTCHead


class FrameDownsampler(nn.Module):
    """Concatenate every ``k`` consecutive frames; a tail shorter than ``k`` is dropped.

    Args:
        rate: k.
    """

    def __init__(self, rate: int) -> None:
        super().__init__()
        self.rate = rate

    def forward(
        self, frames: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D), (B,)`` -> ``(B, T // k, k * D), (B,) // k``."""
        batch, time, dim = frames.shape
        keep = (time // self.rate) * self.rate
        stacked = frames[:, :keep].reshape(batch, keep // self.rate, self.rate * dim)
        return stacked, torch.div(lengths, self.rate, rounding_mode="floor")


class OutputNorm(nn.Module):
    """RMS-normalise each vector, then scale by a per-channel gain (learned or fixed).

    Args:
        dim: vector width.
        init_gain: the gain's starting value (the LLM's token-embedding RMS).
        learnable: a trained parameter, else a fixed buffer (kept in checkpoints).
        eps: added to the mean square.
    """

    def __init__(self, dim: int, init_gain: float, learnable: bool, eps: float = 1e-6) -> None:
        super().__init__()
        gain = torch.full((dim,), float(init_gain))
        if learnable:
            self.gain = nn.Parameter(gain)
        else:
            self.register_buffer("gain", gain)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` -> ``(..., dim)`` with RMS ``gain`` per vector."""
        scale = torch.rsqrt(x.float().pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (x * scale.to(x.dtype)) * self.gain.to(x.dtype)


class Projector(nn.Module):
    """Downsample then map to the LLM width: ``mlp`` (Linear-ReLU-Linear) or ``linear``.

    Args:
        name: mlp | linear.
        encoder_dim: D, the encoder's output width.
        llm_dim: the LLM's embedding width.
        downsample_rate: k.
        hidden_dim: width of the MLP's hidden layer (paper 2048).
        output_norm: none | rms | rms_fixed (see ``ProjectorConfig``).
        output_rms: the gain's starting value for ``rms``/``rms_fixed``.
        ctc_weight: > 0 builds the auxiliary token CTC head with this loss weight (``self.ctc``,
            see ``slamasr.models.ctc``); 0 = none (the paper).
        ctc_classes: its ``num_classes`` (0 = the whole vocabulary).
    """

    def __init__(
        self,
        name: str,
        encoder_dim: int,
        llm_dim: int,
        downsample_rate: int,
        hidden_dim: int,
        output_norm: str = "none",
        output_rms: float = 1.0,
        ctc_weight: float = 0.0,
        ctc_classes: int = 0,
    ) -> None:
        super().__init__()
        self.downsample = FrameDownsampler(downsample_rate)
        in_dim = downsample_rate * encoder_dim
        if name == "mlp":
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, llm_dim)
            )
        elif name == "linear":
            self.net = nn.Sequential(nn.Linear(in_dim, llm_dim))
        else:
            raise ValueError(f"unknown projector {name!r}; choose mlp or linear")
        if output_norm == "none":
            self.output_norm: nn.Module = nn.Identity()
        elif output_norm in ("rms", "rms_fixed"):
            self.output_norm = OutputNorm(llm_dim, output_rms, learnable=output_norm == "rms")
        else:
            raise ValueError(f"unknown output_norm {output_norm!r}; choose none, rms, rms_fixed")
        self.llm_dim = llm_dim
        self.ctc: TokenCTCHead | None = (
            TokenCTCHead(llm_dim, num_classes=ctc_classes, weight=ctc_weight)
            if ctc_weight > 0
            else None
        )

    def forward(
        self, frames: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D), (B,)`` -> ``(B, T // k, llm_dim), (B,)``."""
        stacked, out_lengths = self.downsample(frames, lengths)  # (B, T', kD)
        weight = self.net[0].weight
        projected = self.net(stacked.to(weight.dtype))  # (B, T', llm_dim)
        return self.output_norm(projected), out_lengths


def build_projector(
    cfg: ProjectorConfig, encoder_dim: int, llm_dim: int, output_rms: float = 1.0
) -> Projector:
    """Build the projector described by the ``model.projector`` section.

    ``output_rms`` is the starting gain of an output norm (the LLM's token-embedding RMS).
    """
    cfg.validate()
    return Projector(
        cfg.name,
        encoder_dim,
        llm_dim,
        cfg.downsample_rate,
        cfg.hidden_dim,
        output_norm=cfg.output_norm,
        output_rms=output_rms,
        ctc_weight=cfg.ctc_weight,
        ctc_classes=cfg.ctc_classes,
    )


def projector_num_params(
    encoder_dim: int,
    llm_dim: int,
    downsample_rate: int = 5,
    hidden_dim: int = 2048,
    name: str = "mlp",
) -> int:
    """Closed-form parameter count (weights + biases) of a projector, for the paper's tables."""
    in_dim = downsample_rate * encoder_dim
    if name == "linear":
        return in_dim * llm_dim + llm_dim
    return in_dim * hidden_dim + hidden_dim + hidden_dim * llm_dim + llm_dim
