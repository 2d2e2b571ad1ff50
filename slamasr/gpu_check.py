"""One-GPU check: real-size random-weight SLAM-ASR models through training, decoding,
collectives and the tiny recipe, as one JSON report (``python -m slamasr.bin.gpu_check``).

What it does, part by part (``--parts``):

- ``hubert``: HuBERT X-Large + Vicuna-7B shapes (``HubertConfig``/``LlamaConfig`` with the
  published dimensions, random weights, no download), bf16 as ``model.*.dtype: auto`` gives
  on a GPU; the LibriSpeech recipe's own config (``conf/slam_asr.yaml``) supplies projector,
  prompt, batch size (6) and decoding settings. Reports parameter dtypes, attention
  implementation, ``train_steps`` optimizer steps of the trainer's own step function
  (``slamasr.training.loop.train_one_step``) on 6 x 30 s utterances with ~300 target tokens
  each (peak memory, s/step, MFU against a bf16 matmul peak measured first), which
  parameters got gradients and whether they are finite, then beam-4 decoding of 6 long and
  128 short utterances (time, peak memory, rows that hit the max-new-tokens bound).
- ``whisper``: the same with Whisper large-v2 + Vicuna-7B shapes, 4 x 30 s log-mel
  (``conf/whisper_large_v2-vicuna.yaml``).
- ``collectives``: every public collective of ``slamasr.distributed`` on a 1-rank
  process group (nccl on CUDA, gloo on CPU; file:// store), then one trainer step and one
  validation of a tiny model inside that group. With one rank those functions would return
  early, so the check makes them take their multi-rank path (``is_distributed`` reads True)
  and records every ``torch.distributed`` call they make and the devices of its tensors.
- ``recipe``: the LibriSpeech recipe's stages 1-5 (``run.sh``) on a generated mini corpus
  with tiny random models, training and decoding on the check's device (``train.device``).

``--tiny`` (implied without CUDA) runs the same code with tiny shapes on CPU in well under
two minutes. Each part that fails records ``{"ok": false, "error": ...}`` and the others
still run; ``ok`` at the top is the conjunction. FLOPs are counted with
:mod:`slamasr.benchmark`'s functions (model FLOPs, matmuls only) plus the encoder's forward.

``--encoder-precision`` instead compares HuBERT X-Large outputs (real size, random weights,
CPU) between fp32, bf16 weights + bf16 waveform, and fp32 weights under fp16 or bf16 autocast
(:func:`encoder_precision`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import logging
import math
import os
import platform
import re
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from unittest import mock

import torch
from torch import nn

from slamasr import benchmark as bench
from slamasr.models.encoders import (
    SpeechEncoder,
    SSLSpeechEncoder,
    WhisperSpeechEncoder,
    normalize_waveforms,
)
from slamasr.models.slam import SlamASR

logger = logging.getLogger(__name__)

Batch = dict[str, Any]
PARTS = ("hubert", "whisper", "collectives", "recipe")
RECIPE_DIR = Path(__file__).resolve().parents[1] / "egs" / "librispeech" / "slam_asr"
SAMPLE_RATE = 16000

# --------------------------------------------------------------------------- shapes

# facebook/hubert-xlarge-ls960-ft (config.json): 48 x 1280, 16 heads, FFN 5120, layer-norm convs
HUBERT_XLARGE = dict(
    hidden_size=1280,
    num_hidden_layers=48,
    num_attention_heads=16,
    intermediate_size=5120,
    conv_dim=(512,) * 7,
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_bias=True,
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    vocab_size=32,
)
HUBERT_TINY = {  # the same architecture, small sizes (CPU)
    **HUBERT_XLARGE,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
# openai/whisper-large-v2, encoder half: 32 x 1280, 20 heads, FFN 5120, 80 mel bins
WHISPER_LARGE_V2 = dict(
    d_model=1280,
    encoder_layers=32,
    encoder_attention_heads=20,
    encoder_ffn_dim=5120,
    num_mel_bins=80,
    max_source_positions=1500,
)
WHISPER_TINY = {
    **WHISPER_LARGE_V2,
    "d_model": 32,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
}
# lmsys/vicuna-7b-v1.5 (LLaMA-2-7B shapes)
VICUNA_7B = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    vocab_size=32000,
)
LLM_TINY = {
    **VICUNA_7B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 400,
}


@dataclass(frozen=True)
class Setup:
    """One encoder x LLM pairing to check.

    Attributes:
        name: hubert | whisper (the part's name).
        conf: the LibriSpeech conf whose projector, prompt, batch and decode settings apply.
        encoder: encoder config kwargs.
        llm: LlamaConfig kwargs.
    """

    name: str
    conf: str
    encoder: dict[str, Any]
    llm: dict[str, Any]


def setups(tiny: bool) -> dict[str, Setup]:
    """The two pairings of the issue, real-size or tiny."""
    llm = LLM_TINY if tiny else VICUNA_7B
    return {
        "hubert": Setup("hubert", "slam_asr.yaml", HUBERT_TINY if tiny else HUBERT_XLARGE, llm),
        "whisper": Setup(
            "whisper",
            "whisper_large_v2-vicuna.yaml",
            WHISPER_TINY if tiny else WHISPER_LARGE_V2,
            llm,
        ),
    }


# how much work each part does: the issue's sizes on a GPU, a few seconds' worth with --tiny
REAL_SCALE: dict[str, Any] = dict(
    train_steps=3,
    audio_seconds=30.0,
    target_tokens=300,
    long_utts=6,
    short_utts=128,
    short_seconds=(2.0, 6.0),
)
TINY_SCALE: dict[str, Any] = dict(
    train_steps=3,
    audio_seconds=4.0,
    target_tokens=40,
    long_utts=2,
    short_utts=8,
    short_seconds=(1.0, 2.0),
)


@dataclass
class CheckOptions:
    """What to run (the CLI's options); None = the value of :data:`REAL_SCALE` or, with
    ``tiny``, :data:`TINY_SCALE` (:meth:`resolved`).

    Attributes:
        tiny: tiny shapes (implied on CPU).
        device: auto | cpu | cuda.
        parts: which of :data:`PARTS` to run.
        work_dir: scratch dir ("" = a temporary one, removed afterwards).
        train_steps: measured optimizer steps per pairing.
        audio_seconds: length of the training and long decoding utterances.
        target_tokens: transcript tokens per training utterance (EOS not included).
        long_utts: long utterances decoded (``audio_seconds`` each).
        short_utts: short utterances decoded.
        short_seconds: their durations, evenly spread over this range.
        matmul_size: side of the square bf16 matmul timed for the peak (1024 on CPU).
        peak_seconds: how long the peak is measured.
        seed: RNG seed of weights and inputs.
        recipe_timeout: seconds the tiny recipe may take (then it fails with an error).
    """

    tiny: bool = False
    device: str = "auto"
    parts: tuple[str, ...] = PARTS
    work_dir: str = ""
    train_steps: Optional[int] = None
    audio_seconds: Optional[float] = None
    target_tokens: Optional[int] = None
    long_utts: Optional[int] = None
    short_utts: Optional[int] = None
    short_seconds: Optional[tuple[float, float]] = None
    matmul_size: int = 8192
    peak_seconds: float = 2.0
    seed: int = 0
    recipe_timeout: float = 600.0

    def resolved(self) -> CheckOptions:
        """A copy with every None filled from the scale of ``tiny``."""
        scale = TINY_SCALE if self.tiny else REAL_SCALE
        fill = {k: v for k, v in scale.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill)


# --------------------------------------------------------------------------- tokenizer


def make_char_tokenizer(vocab_size: int) -> Any:
    """A character-level LLaMA-style tokenizer (``tokenizers``, no training) of ``vocab_size``.

    ``<unk> <s> </s> <pad>``, ``▁`` (Metaspace word start), printable ASCII, then filler
    tokens up to ``vocab_size`` so every id the random LLM emits decodes. BOS is added like
    LLaMA's tokenizer does. Sizes are realistic: one token per character.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = ["<unk>", "<s>", "</s>", "<pad>", "▁"] + [chr(c) for c in range(33, 127)]
    if vocab_size < len(pieces):
        raise ValueError(f"vocab_size {vocab_size} < {len(pieces)} base tokens")
    pieces += [f"<x{i}>" for i in range(vocab_size - len(pieces))]
    vocab = {p: i for i, p in enumerate(pieces)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


# --------------------------------------------------------------------------- building


def recipe_config(conf: str) -> Any:
    """The LibriSpeech recipe's ``conf`` resolved (defaults if the recipe is not installed)."""
    from slamasr.config import load_config

    path = RECIPE_DIR / "conf" / conf
    if not path.is_file():
        logger.warning("%s not found: using the package's config defaults", path)
        return load_config(None, validate=False)
    return load_config(path, validate=False)


def build_llm(shape: dict[str, Any], tokenizer: Any, dtype: torch.dtype, attn: str) -> nn.Module:
    """A random-weight LLaMA of ``shape``, frozen, on the current default device."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **shape,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    kwargs: dict[str, Any] = {"dtype": dtype}
    if attn:
        kwargs["attn_implementation"] = attn
    llm = LlamaForCausalLM._from_config(config, **kwargs)
    llm.requires_grad_(False)
    return llm.eval()


def build_encoder(name: str, shape: dict[str, Any], dtype: torch.dtype) -> SpeechEncoder:
    """A random-weight frozen encoder wrapper (hubert | whisper), as the loaders wrap them."""
    import transformers

    if name == "whisper":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        config = transformers.WhisperConfig(**shape)
        encoder = WhisperEncoder._from_config(config, dtype=dtype)
        return WhisperSpeechEncoder(encoder, pad_to_30s=True, trim_output=True, frozen=True)
    model = transformers.HubertModel._from_config(transformers.HubertConfig(**shape), dtype=dtype)
    use_mask = model.config.feat_extract_norm == "layer"
    return SSLSpeechEncoder(model, use_attention_mask=use_mask, normalize=use_mask, frozen=True)


def assemble_model(encoder: SpeechEncoder, llm: nn.Module, tokenizer: Any, cfg: Any) -> SlamASR:
    """SlamASR from built parts with the config's projector and prompt (as ``build_model``)."""
    from slamasr.models.llm import PromptTemplate
    from slamasr.models.projector import build_projector

    embedding = llm.get_input_embeddings()
    with torch.no_grad():
        text_rms = float(embedding.weight.float().pow(2).mean().sqrt())
    projector = build_projector(
        cfg.model.projector, encoder.output_dim, embedding.embedding_dim, text_rms
    ).to(embedding.weight.device)
    template = PromptTemplate(tokenizer, cfg.model.prompt, add_bos=cfg.model.llm.add_bos)
    return SlamASR(encoder, projector, llm, tokenizer, template)


def build_check_model(setup: Setup, cfg: Any, device: torch.device) -> SlamASR:
    """The pairing's model on ``device``, frozen parts in ``dtype: auto`` (bf16 on GPU)."""
    from slamasr.models.hub import resolve_dtype

    tokenizer = make_char_tokenizer(setup.llm["vocab_size"])
    with torch.device(device):
        encoder = build_encoder(setup.name, setup.encoder, resolve_dtype("auto", device))
        llm = build_llm(
            setup.llm, tokenizer, resolve_dtype("auto", device), cfg.model.llm.attn_implementation
        )
        return assemble_model(encoder, llm, tokenizer, cfg)


def _dtype_counts(module: nn.Module) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in module.parameters():
        name = str(p.dtype).replace("torch.", "")
        counts[name] = counts.get(name, 0) + p.numel()
    return counts


def attention_implementation(module: nn.Module) -> Optional[str]:
    """``config._attn_implementation`` of a Hugging Face module (None when it has none)."""
    config = getattr(module, "config", None)
    return getattr(config, "_attn_implementation", None)


def describe_model(model: SlamASR) -> dict[str, Any]:
    """Parameter counts per dtype and attention implementation of each part."""
    enc = model.encoder
    inner = enc.model if isinstance(enc, SSLSpeechEncoder) else getattr(enc, "encoder", enc)
    return {
        "parameters": {
            "encoder": _dtype_counts(enc),
            "projector": _dtype_counts(model.projector),
            "llm": _dtype_counts(model.llm),
        },
        "trainable_parameters": sum(p.numel() for p in model.trainable_parameters()),
        "attention_implementation": {
            "encoder": attention_implementation(inner),
            "llm": attention_implementation(model.llm),
        },
    }


# --------------------------------------------------------------------------- batches

WORDS = (
    "THE OF AND TO A IN THAT HE WAS IT HIS I WITH AS HAD FOR YOU BE HER AT NOT ON BUT SHE "
    "HIM IS BY WHICH ALL SO THEY THIS FROM WERE MY ONE HAVE THERE SAID WHEN THEM WHAT NO "
    "WOULD AN OR BEEN IF WE OUT UPON WILL ME MORE UP INTO COULD NOW VERY LITTLE TIME"
).split()


def target_text(template: Any, tokens: int, seed: int) -> str:
    """A word sequence whose transcript tokens (EOS excluded) number about ``tokens``."""
    gen = torch.Generator().manual_seed(seed)
    words: list[str] = []
    while len(template.target_ids(" ".join(words))) - 1 < tokens:
        words.append(WORDS[int(torch.randint(len(WORDS), (1,), generator=gen))])
    return " ".join(words[:-1]) if len(words) > 1 else words[0]


def make_batch(
    kind: str, durations: list[float], texts: list[str], seed: int, n_mels: int = 80
) -> Batch:
    """A batch dict as the data layer yields it, with random inputs of ``durations``.

    ``kind``: audio -> ``(B, S)`` 16 kHz waveform; whisper_mel -> ``(B, T, n_mels)`` log-mel
    at 100 Hz in Whisper's normalized range.
    """
    gen = torch.Generator().manual_seed(seed)
    audio = kind == "audio"
    rate = SAMPLE_RATE if audio else 100
    lengths = torch.tensor([int(d * rate) for d in durations])
    if audio:
        inputs = 0.1 * torch.randn(len(durations), int(lengths.max()), generator=gen)  # (B, S)
        inputs *= torch.arange(inputs.shape[1])[None, :] < lengths[:, None]
    else:
        shape = (len(durations), int(lengths.max()), n_mels)
        inputs = (0.3 * torch.randn(*shape, generator=gen)).clamp(-1.0, 1.5)  # (B, T, M)
        inputs *= (torch.arange(shape[1])[None, :] < lengths[:, None])[:, :, None]
    return {
        "inputs": inputs,
        "input_lengths": lengths,
        "texts": list(texts),
        "cut_ids": [f"check-{seed}-{i}" for i in range(len(durations))],
        "durations": torch.tensor(durations, dtype=torch.float32),
        "bad_cut_ids": [],
    }


def training_batch(model: SlamASR, cfg: Any, opts: CheckOptions) -> Batch:
    """``data.batch_size`` utterances of ``audio_seconds`` with ~``target_tokens`` each."""
    size = cfg.data.batch_size
    texts = [target_text(model.template, opts.target_tokens, opts.seed + i) for i in range(size)]
    return make_batch(model.encoder.input_kind, [opts.audio_seconds] * size, texts, opts.seed)


def decode_batches(
    model: SlamASR, durations: list[float], decode_cfg: Any, seed: int
) -> list[Batch]:
    """Batches of ``durations`` (longest first) as the decode sampler forms them:
    ``decode.max_duration`` seconds each (or ``decode.batch_size`` utterances)."""
    order = sorted(durations, reverse=True)
    groups: list[list[float]] = [[]]
    for d in order:
        full = (
            sum(groups[-1]) + d > decode_cfg.max_duration
            if decode_cfg.max_duration > 0
            else len(groups[-1]) >= decode_cfg.batch_size
        )
        if groups[-1] and full:
            groups.append([])
        groups[-1].append(d)
    return [
        make_batch(model.encoder.input_kind, g, [""] * len(g), seed + i)
        for i, g in enumerate(groups)
    ]


# --------------------------------------------------------------------------- memory and time


def reset_peak(device: torch.device) -> None:
    """Empty the CUDA cache and reset peak statistics (RSS mark on CPU)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    bench.reset_peak_memory(device)


def peak_bytes(device: torch.device) -> dict[str, Optional[int]]:
    """``torch.cuda.max_memory_allocated``/``max_memory_reserved`` on GPU, peak RSS always."""
    out: dict[str, Optional[int]] = {"peak_rss_bytes": bench.peak_rss_bytes()}
    out["gpu_max_allocated_bytes"] = bench.gpu_max_allocated_bytes(device)
    out["gpu_max_reserved_bytes"] = (
        int(torch.cuda.max_memory_reserved(device)) if device.type == "cuda" else None
    )
    return out


@contextlib.contextmanager
def timed(device: torch.device, into: dict[str, float], key: str) -> Iterator[None]:
    """Store the wall seconds of the block (queued GPU work included) in ``into[key]``."""
    bench.synchronize(device)
    start = time.perf_counter()
    yield
    bench.synchronize(device)
    into[key] = time.perf_counter() - start


# --------------------------------------------------------------------------- FLOPs


def _conv_out(length: int, conv: nn.Conv1d) -> int:
    pad = conv.padding[0] if isinstance(conv.padding, tuple) else 0
    return (length + 2 * pad - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[
        0
    ] + 1


def ssl_encoder_flops(encoder: SSLSpeechEncoder, samples: int) -> float:
    """Forward FLOPs of a HuBERT/WavLM/wav2vec 2.0 encoder on ``samples`` waveform samples.

    Matmuls only, as :mod:`slamasr.benchmark` counts: the conv feature extractor
    (``2*in*k*out/groups`` per output frame), the feature projection and the grouped
    positional conv over ``T`` frames, each layer's linears (``2*in*out*T``) and full
    attention (``4*D*T^2``).
    """
    model = encoder.model
    length, flops = samples, 0.0
    for conv in (m for m in model.feature_extractor.modules() if isinstance(m, nn.Conv1d)):
        length = _conv_out(length, conv)
        flops += 2.0 * conv.in_channels * conv.kernel_size[0] * conv.out_channels * length
    frames = length
    flops += 2.0 * bench.linear_params(model.feature_projection) * frames
    pos = model.encoder.pos_conv_embed.conv
    flops += 2.0 * pos.in_channels // pos.groups * pos.kernel_size[0] * pos.out_channels * frames
    layers = model.encoder.layers
    flops += 2.0 * sum(bench.linear_params(layer) for layer in layers) * frames
    flops += len(layers) * 4.0 * encoder.output_dim * frames**2
    return flops


def encoder_flops_per_utt(encoder: SpeechEncoder, seconds: float) -> float:
    """Forward FLOPs of the frozen encoder on one utterance of ``seconds``."""
    if isinstance(encoder, WhisperSpeechEncoder):
        return bench.whisper_encoder_flops(encoder)  # always 30 s of input
    if isinstance(encoder, SSLSpeechEncoder):
        return ssl_encoder_flops(encoder, int(seconds * SAMPLE_RATE))
    return 0.0


def encoder_frame_lengths(encoder: SpeechEncoder, batch: Batch) -> torch.Tensor:
    """Encoder output frames per utterance ``(B,)`` without running the encoder."""
    lengths = batch["input_lengths"]
    if isinstance(encoder, SSLSpeechEncoder):
        return encoder.model._get_feat_extract_output_lengths(lengths).long()
    return (lengths + 1) // 2


def step_flops(model: SlamASR, batch: Batch) -> float:
    """Model FLOPs of one training step on ``batch``: encoder forward + projector forward and
    backward + frozen-LLM forward and input-gradient backward (:func:`bench.training_flops`)."""
    frames = {**batch, "encoder_frame_lengths": encoder_frame_lengths(model.encoder, batch)}
    counts = bench.utterance_counts(model, frames)
    per_utt = encoder_flops_per_utt(model.encoder, float(batch["durations"].max()))
    return bench.training_flops(counts, bench.llm_shape(model.llm), model.projector, False, per_utt)


# --------------------------------------------------------------------------- training


def gradient_report(model: SlamASR) -> dict[str, Any]:
    """Which parameters hold a gradient, whether they are all projector's, all finite."""
    with_grad = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    projector = {n for n, _ in model.named_parameters() if n.startswith("projector.")}
    names = [n for n, _ in with_grad]
    return {
        "tensors_with_grad": len(names),
        "projector_tensors": len(projector),
        "only_projector": bool(names) and set(names) == projector,
        "outside_projector": sorted(set(names) - projector)[:5],
        "all_finite": bool(names) and all(bool(torch.isfinite(g).all()) for _, g in with_grad),
        "grad_norm": float(torch.norm(torch.stack([g.float().norm() for _, g in with_grad])))
        if with_grad
        else None,
    }


def make_trainer(
    model: SlamASR, batches: list[Batch], device: torch.device, exp_dir: Path, train_cfg: Any
) -> Any:
    """The training loop's own Trainer over a fixed list of batches (no checkpoints written)."""
    from slamasr.distributed import dist_info_from_env
    from slamasr.training.loop import build_trainer
    from slamasr.utils import resolve_autocast_dtype

    cfg = dataclasses.replace(train_cfg, tensorboard=False, progress_bar=False, warmup_steps=0)
    autocast = resolve_autocast_dtype(cfg.dtype, device)
    return build_trainer(cfg, exp_dir, model, batches, None, device, autocast, dist_info_from_env())


def run_train_steps(
    model: SlamASR, batch: Batch, cfg: Any, opts: CheckOptions, device: torch.device, peak: float
) -> dict[str, Any]:
    """``opts.train_steps`` steps of ``train_one_step`` on ``batch``: time, memory, MFU, grads.

    ``seconds_per_step`` and ``mfu`` leave out the first step (allocator and kernel warm-up)
    when there are two or more.
    """
    from slamasr.training.loop import EpochStream, train_one_step

    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(model, [batch], device, Path(tmp), cfg.train)
        stream = EpochStream(trainer)
        reset_peak(device)
        seconds, losses = [], []
        for _ in range(opts.train_steps):
            times: dict[str, float] = {}
            with timed(device, times, "s"):
                stats = train_one_step(trainer, stream)
            seconds.append(times["s"])
            losses.append(None if stats is None else stats["ce"][0] / max(stats["ce"][1], 1))
        memory = peak_bytes(device)
    flops = step_flops(model, batch)
    steady = seconds[1:] if len(seconds) > 1 else seconds
    per_step = sum(steady) / len(steady)
    counts = bench.utterance_counts(
        model, {**batch, "encoder_frame_lengths": encoder_frame_lengths(model.encoder, batch)}
    )
    return {
        "batch_size": len(batch["cut_ids"]),
        "audio_seconds_per_utt": float(batch["durations"][0]),
        "target_tokens_per_utt": [c.supervised for c in counts],
        "llm_tokens_per_utt": [c.length for c in counts],
        "autocast_dtype": str(trainer.autocast_dtype).replace("torch.", ""),
        "step_seconds": seconds,
        "seconds_per_step": per_step,
        "losses": losses,
        "skipped_steps": sum(loss is None for loss in losses),
        "flops_per_step": flops,
        "mfu": flops / per_step / peak if peak else None,
        **memory,
        "gradients": gradient_report(model),
    }


# --------------------------------------------------------------------------- decoding


def decode_timed_bounds(
    model: SlamASR, batches: list[Batch], decode_cfg: Any, device: torch.device
) -> dict[str, Any]:
    """Beam-search ``batches`` under the decoder's autocast; time, memory, bound hits.

    A row "hit the bound" when its hypothesis is as long as its max-new-tokens bound
    (it did not end with EOS before): its tail may be cut.
    """
    from slamasr.models.slam import new_token_bounds
    from slamasr.utils import resolve_autocast_dtype

    dtype = resolve_autocast_dtype("auto", device)
    model.eval()
    reset_peak(device)
    hits, rows, new_tokens, times = 0, 0, 0, {}
    with timed(device, times, "s"), torch.no_grad():
        for batch in batches:
            bounds = new_token_bounds(
                batch, decode_cfg.max_new_tokens_per_second, decode_cfg.min_new_tokens_bound
            )
            with bench.autocast_context(device, dtype):
                ids = model.generate_ids(
                    bench.move_batch(batch, device),
                    num_beams=decode_cfg.num_beams,
                    max_new_tokens_per_second=decode_cfg.max_new_tokens_per_second,
                    min_new_tokens_bound=decode_cfg.min_new_tokens_bound,
                    search=decode_cfg.search,
                )
            hits += sum(len(h) >= b for h, b in zip(ids, bounds))
            rows += len(ids)
            new_tokens += sum(len(h) for h in ids)
    audio = sum(float(b["durations"].sum()) for b in batches)
    return {
        "utterances": rows,
        "batches": len(batches),
        "num_beams": decode_cfg.num_beams,
        "audio_seconds": audio,
        "wall_seconds": times["s"],
        "rtf": times["s"] / audio if audio else None,
        "new_tokens": new_tokens,
        "rows_at_max_new_tokens": hits,
        **peak_bytes(device),
    }


def run_decoding(
    model: SlamASR, cfg: Any, opts: CheckOptions, device: torch.device
) -> dict[str, Any]:
    """Decode ``long_utts`` long and ``short_utts`` short utterances (beam from the config)."""
    low, high = opts.short_seconds
    n = opts.short_utts
    short = [low + (high - low) * i / max(n - 1, 1) for i in range(n)]
    long = [opts.audio_seconds] * opts.long_utts
    return {
        "long": decode_timed_bounds(
            model, decode_batches(model, long, cfg.decode, opts.seed), cfg.decode, device
        ),
        "short": decode_timed_bounds(
            model, decode_batches(model, short, cfg.decode, opts.seed + 1), cfg.decode, device
        ),
    }


# --------------------------------------------------------------------------- one pairing


def check_setup(
    setup: Setup, opts: CheckOptions, device: torch.device, peak: float
) -> dict[str, Any]:
    """Build one pairing, train ``train_steps`` steps, decode; free it again."""
    cfg = recipe_config(setup.conf)
    times: dict[str, float] = {}
    reset_peak(device)
    with timed(device, times, "build_seconds"):
        torch.manual_seed(opts.seed)
        model = build_check_model(setup, cfg, device)
    out: dict[str, Any] = {"conf": setup.conf, **times, **describe_model(model)}
    try:
        out["train"] = run_train_steps(
            model, training_batch(model, cfg, opts), cfg, opts, device, peak
        )
        model.zero_grad(set_to_none=True)
        out["decode"] = run_decoding(model, cfg, opts, device)
    finally:
        del model
        reset_peak(device)
    grads = out["train"]["gradients"]
    out["ok"] = (
        grads["only_projector"] and grads["all_finite"] and not out["train"]["skipped_steps"]
    )
    return out


# --------------------------------------------------------------------------- collectives


class CollectiveRecorder:
    """Wraps ``torch.distributed`` calls to record their names, tensor devices and group
    backends while :meth:`active`."""

    NAMES = ("all_reduce", "broadcast", "broadcast_object_list", "barrier", "all_gather_object")

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` that first records its call."""
        import torch.distributed as dist

        def recorded(*args: Any, **kwargs: Any) -> Any:
            group = kwargs.get("group", args[2] if len(args) > 2 else None)
            self.calls.append(
                {
                    "name": name,
                    "devices": [str(a.device) for a in args if torch.is_tensor(a)],
                    "backend": str(dist.get_backend(group)),
                }
            )
            return fn(*args, **kwargs)

        return recorded

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Record while inside; the functions are restored on exit."""
        import torch.distributed as dist

        with contextlib.ExitStack() as stack:
            for name in self.NAMES:
                original = getattr(dist, name)
                stack.enter_context(mock.patch.object(dist, name, self.wrap(name, original)))
            yield

    def take(self) -> list[dict[str, Any]]:
        """The calls recorded since the last take."""
        calls, self.calls = self.calls, []
        return calls


def misplaced_tensors(calls: list[dict[str, Any]], device: torch.device) -> list[str]:
    """Calls whose tensors are not on the training device's type, except on a gloo group
    (host-side tensors belong there); e.g. a CPU tensor all-reduced over nccl."""
    bad = []
    for call in calls:
        if call["backend"] == "gloo":
            continue
        for dev in call["devices"]:
            if torch.device(dev).type != device.type:
                bad.append(f"{call['name']} of a {dev} tensor over {call['backend']}")
    return bad


def init_single_rank_group(device: torch.device, store: Path) -> str:
    """Join a 1-rank process group (nccl on CUDA, gloo on CPU) through a file store."""
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    dist.init_process_group(backend, init_method=f"file://{store}", rank=0, world_size=1, **kwargs)
    return backend


def _collective_calls(device: torch.device) -> dict[str, Callable[[], bool]]:
    """Each public collective with inputs on ``device``, returning whether the result is
    right (on one rank every collective leaves its values as they were)."""
    from slamasr import distributed as d

    def all_reduce_sum() -> bool:
        values = torch.arange(9, dtype=torch.float64, device=device)
        return bool(torch.equal(d.all_reduce_sum(values.clone()), values))

    def average_gradients() -> bool:
        params = [nn.Parameter(torch.randn(3, 4, device=device)) for _ in range(2)]
        params[0].grad = torch.ones_like(params[0])  # params[1] has none: zeros take part
        d.average_gradients(params)
        return bool(torch.equal(params[0].grad, torch.ones_like(params[0])))

    def broadcast_parameters() -> bool:
        params = [nn.Parameter(torch.randn(5, device=device))]
        before = params[0].detach().clone()
        d.broadcast_parameters(params)
        return bool(torch.equal(params[0].detach(), before))

    def broadcast_object() -> bool:
        obj = {"tag": "2026-01-01", "n": 3}
        return d.broadcast_object(obj) == obj

    def barrier() -> bool:
        d.barrier()
        return True

    return {
        f.__name__: f
        for f in (
            all_reduce_sum,
            average_gradients,
            broadcast_parameters,
            broadcast_object,
            barrier,
        )
    }


def _run_recorded(
    fn: Callable[[], Any], recorder: CollectiveRecorder, device: torch.device
) -> tuple[Any, dict[str, Any]]:
    """Run ``fn``; return its value and {ok, torch_calls, devices, error}: ok when it raised
    nothing, made at least one ``torch.distributed`` call, and put no tensor of another
    device type on a non-gloo group (:func:`misplaced_tensors`)."""
    try:
        value, error = fn(), None
    except Exception as e:  # the check reports any failure of a collective
        logger.error("collective check failed:\n%s", traceback.format_exc())
        value, error = None, f"{type(e).__name__}: {e}"
    calls = recorder.take()
    if error is None and not calls:
        error = "no torch.distributed call was made"
    misplaced = misplaced_tensors(calls, device)
    if error is None and misplaced:
        error = "tensors off the training device: " + "; ".join(misplaced)
    return value, {
        "ok": error is None,
        "torch_calls": sorted({c["name"] for c in calls}),
        "devices": sorted({dev for c in calls for dev in c["devices"]}),
        "backends": sorted({c["backend"] for c in calls}),
        "error": error,
    }


def tiny_trainer_in_group(device: torch.device, work: Path) -> Callable[[], bool]:
    """One ``train_one_step`` and one ``validate`` of a tiny model, as the trainer calls the
    collectives (its own tensors, its own devices); True when the step was not skipped."""
    from slamasr.training.loop import EpochStream, train_one_step, validate

    setup = setups(tiny=True)["hubert"]
    cfg = recipe_config(setup.conf)
    torch.manual_seed(0)
    model = build_check_model(setup, cfg, device)
    batch = make_batch("audio", [1.0, 0.8], ["HELLO WORLD", "THE CAT"], 0)

    def step() -> bool:
        trainer = make_trainer(model, [batch], device, work, cfg.train)
        trainer.dev_loader = [batch]
        stats = train_one_step(trainer, EpochStream(trainer))
        metrics = validate(trainer)
        return stats is not None and math.isfinite(metrics["loss"])

    return step


def check_collectives(device: torch.device, work: Path) -> dict[str, Any]:
    """Every public collective of ``slamasr.distributed`` on a 1-rank group, then
    a tiny trainer step + validation in it; ``ok`` when all ran a real collective and
    gave the right values."""
    import torch.distributed as dist

    from slamasr import distributed as d

    work.mkdir(parents=True, exist_ok=True)
    store = work / "pg-store"
    store.unlink(missing_ok=True)
    trainer_step = tiny_trainer_in_group(device, work / "trainer")
    backend = init_single_rank_group(device, store)
    recorder = CollectiveRecorder()
    out: dict[str, Any] = {"backend": backend, "world_size": dist.get_world_size()}
    try:
        with mock.patch.object(d, "is_distributed", lambda: True), recorder.active():
            for name, fn in {**_collective_calls(device), "trainer_step": trainer_step}.items():
                value, report = _run_recorded(fn, recorder, device)
                if report["ok"] and value is not True:
                    report.update(ok=False, error="wrong result")
                out[name] = report
    finally:
        dist.destroy_process_group()
    out["ok"] = all(v["ok"] for v in out.values() if isinstance(v, dict))
    return out


# --------------------------------------------------------------------------- tiny recipe


def write_fake_librispeech(root: Path, parts: dict[str, int], seed: int = 0) -> None:
    """``root/LibriSpeech/<part>/<spk>/<chapter>/`` with flac tones in noise + transcripts."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    for i, (part, num) in enumerate(parts.items()):
        spk, chapter = str(100 + i), str(2000 + i)
        folder = root / "LibriSpeech" / part / spk / chapter
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for n in range(num):
            utt = f"{spk}-{chapter}-{n:04d}"
            t = np.arange(int(rng.uniform(0.6, 1.4) * SAMPLE_RATE)) / SAMPLE_RATE
            wav = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 900) * t)
            wav += 0.05 * rng.standard_normal(len(t))
            sf.write(folder / f"{utt}.flac", wav.astype(np.float32), SAMPLE_RATE)
            lines.append(f"{utt} " + " ".join(rng.choice(WORDS, size=int(rng.integers(2, 5)))))
        (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")


def save_tiny_models(models: Path) -> tuple[Path, Path]:
    """Tiny Whisper encoder and tiny LLaMA + tokenizer checkpoints (fp32) under ``models``."""
    import transformers

    torch.manual_seed(0)
    whisper = transformers.WhisperConfig(
        **WHISPER_TINY,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        vocab_size=64,
        max_target_positions=32,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
        decoder_start_token_id=3,
    )
    transformers.WhisperModel(whisper).save_pretrained(models / "whisper")
    tokenizer = make_char_tokenizer(LLM_TINY["vocab_size"])
    llm = build_llm(LLM_TINY, tokenizer, torch.float32, "")
    llm.save_pretrained(models / "llm")
    tokenizer.save_pretrained(str(models / "llm"))
    return models / "whisper", models / "llm"


# two train parts: stage 1 combines them into train-960 (``lhotse combine`` needs two or more)
RECIPE_PARTS = {
    "train-clean-100": 3,
    "train-clean-360": 1,
    "dev-other": 2,
    "test-clean": 2,
    "test-other": 2,
}
RECIPE_OVERRIDES = (
    "data.batch_size=2 data.num_workers=0 train.max_steps=2 train.warmup_steps=1 "
    "train.valid_interval=2 train.save_interval=2 train.valid_max_batches=1 train.log_interval=1 "
    "train.patience=0 train.progress_bar=false train.tensorboard=false "
    "decode.num_beams=4 decode.batch_size=2"
)


def recipe_command(work: Path, device: torch.device) -> list[str]:
    """``run.sh`` stages 1-5 on the generated corpus, training and decoding on ``device``."""
    overrides = f"{RECIPE_OVERRIDES} train.device={device.type}"
    return [
        *("bash", "./run.sh", "--stage", "1", "--stop-stage", "5"),
        *("--skip-download", "true", "--dl-dir", str(work / "download"), "--nj", "1"),
        *("--config", str(work / "tiny.yaml"), "--exp-dir", str(work / "exp" / "tiny")),
        *("--parts", " ".join(RECIPE_PARTS), "--overrides", overrides),
    ]


def prepare_recipe_dir(work: Path) -> None:
    """Scratch recipe dir linking run.sh, path.sh and conf/; corpus, tiny models, tiny conf."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("run.sh", "path.sh", "conf"):
        link = work / name
        if not link.exists():
            link.symlink_to(RECIPE_DIR / name)
    write_fake_librispeech(work / "download", RECIPE_PARTS)
    encoder, llm = save_tiny_models(work / "models")
    (work / "tiny.yaml").write_text(
        f"include: {RECIPE_DIR / 'conf' / 'whisper_tiny-vicuna.yaml'}\n"
        "model:\n"
        f"  encoder:\n    path: {encoder}\n    dtype: float32\n"
        "  projector:\n    hidden_dim: 64\n"
        f"  llm:\n    path: {llm}\n    dtype: float32\n"
    )


def run_tiny_recipe(device: torch.device, work: Path, timeout: float = 600) -> dict[str, Any]:
    """Stages 1-5 of the LibriSpeech recipe with tiny models; reads back the device the
    trainer logged and the WER lines."""
    if not (RECIPE_DIR / "run.sh").is_file():
        return {"ok": False, "error": f"{RECIPE_DIR}/run.sh not found (recipe not installed)"}
    prepare_recipe_dir(work)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")) if p
    )
    start = time.perf_counter()
    proc = subprocess.run(
        recipe_command(work, device),
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    exp = work / "exp" / "tiny"
    found = re.search(r"device (\S+), autocast dtype (\S+)", proc.stdout)
    wer_file = exp / "wer"  # "# tag<TAB>test_set<TAB>wer..." header, then one line per set
    lines = wer_file.read_text().splitlines() if wer_file.is_file() else []
    wer = [line for line in lines if line.strip() and not line.startswith("#")]
    out = {
        "returncode": proc.returncode,
        "wall_seconds": time.perf_counter() - start,
        "train_device": found.group(1).rstrip(",") if found else None,
        "train_autocast": found.group(2).rstrip(",").replace("torch.", "") if found else None,
        "wer_lines": wer,
    }
    out["ok"] = (
        proc.returncode == 0 and len(wer) == 2 and str(out["train_device"]).startswith(device.type)
    )
    if not out["ok"]:
        out["output_tail"] = proc.stdout[-3000:]
    return out


# --------------------------------------------------------------------------- orchestration


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and the device."""
    import transformers

    out: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "cuda": torch.version.cuda,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(
            gpu=props.name,
            gpu_memory_bytes=int(props.total_memory),
            capability=f"{props.major}.{props.minor}",
        )
    else:
        out["cpu"] = platform.processor() or platform.machine()
        out["threads"] = torch.get_num_threads()
    return out


def resolve_check_device(name: str) -> torch.device:
    """auto -> CUDA when available, else CPU."""
    from slamasr.utils import resolve_device

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but torch sees no CUDA device; use --device auto or cpu")
    return resolve_device(0, name)


def _guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one part; a failure becomes ``{"ok": false, "error": ...}`` (traceback logged)."""
    logger.info("gpu_check: %s ...", name)
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as e:  # one part failing must not lose the others' results
        logger.error("gpu_check part %s failed:\n%s", name, traceback.format_exc())
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    out["part_seconds"] = time.perf_counter() - start
    logger.info("gpu_check: %s done in %.1f s (ok=%s)", name, out["part_seconds"], out.get("ok"))
    return out


def run_check(
    opts: CheckOptions, on_part: Optional[Callable[[dict[str, Any]], None]] = None
) -> dict[str, Any]:
    """Run the selected parts; return the JSON-ready report.

    Args:
        opts: what to run.
        on_part: called with the report so far after each part (e.g. to save it, so a run
            killed by a timeout still leaves the parts it finished).
    """
    device = resolve_check_device(opts.device)
    if device.type != "cuda" and not opts.tiny:
        logger.info("no CUDA device: running with tiny shapes (--tiny)")
        opts = dataclasses.replace(opts, tiny=True)
    opts = opts.resolved()
    unknown = set(opts.parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    start = time.perf_counter()
    size = opts.matmul_size if device.type == "cuda" else min(opts.matmul_size, 1024)
    peak = bench.measure_matmul_peak(device, torch.bfloat16, size, opts.peak_seconds)
    result: dict[str, Any] = {
        "tiny": opts.tiny,
        "scale": {k: getattr(opts, k) for k in REAL_SCALE},
        "environment": environment(device),
        "bf16_matmul_peak_flops": peak,
        "matmul_size": size,
    }
    with contextlib.ExitStack() as stack:
        work = (
            Path(opts.work_dir)
            if opts.work_dir
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu_check-")))
        )
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            name: (lambda s=setup: check_setup(s, opts, device, peak))
            for name, setup in setups(opts.tiny).items()
        }
        runs["collectives"] = lambda: check_collectives(device, work / "collectives")
        runs["recipe"] = lambda: run_tiny_recipe(device, work / "recipe", opts.recipe_timeout)
        for name in PARTS:
            if name in opts.parts:
                result[name] = _guarded(name, runs[name])
                if on_part is not None:
                    on_part(result)
    result["ok"] = all(result[p].get("ok") for p in opts.parts)
    result["wall_seconds"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------- encoder precision


def speech_waveform(seconds: float, seed: int = 0) -> tuple[torch.Tensor, str]:
    """~``seconds`` of eSpeak NG speech at 16 kHz (synthetic harmonics if eSpeak is missing).

    Returns:
        ``(S,)`` float32 waveform and where it came from.
    """
    text = (
        "He had been walking along the river for nearly an hour when the rain began, and "
        "the little village on the far bank was already lost in the evening mist."
    )
    try:
        from slamasr.corpora.espeak import EspeakSynthesizer, VoiceSetting

        audio = EspeakSynthesizer(SAMPLE_RATE, seed=seed).synthesize(text, VoiceSetting("en-us"))
        wav, source = torch.from_numpy(audio).float(), "espeak-ng en-us"
    except Exception as e:  # any eSpeak failure: fall back to a synthetic signal
        logger.warning("eSpeak NG unavailable (%s): using a synthetic harmonic signal", e)
        t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = 120 + 30 * torch.sin(2 * math.pi * 0.7 * t)
        phase = 2 * math.pi * torch.cumsum(f0, 0) / SAMPLE_RATE
        wav = sum(torch.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * torch.sin(t * 9))
        wav, source = 0.1 * wav.float(), "synthetic harmonics"
    need = int(seconds * SAMPLE_RATE)
    reps = math.ceil(need / wav.shape[0])
    return wav.repeat(reps)[:need], source


def _layer_outputs(
    model: nn.Module, wav: torch.Tensor, autocast: Optional[torch.dtype]
) -> list[torch.Tensor]:
    """Hidden states after the feature projection and after every layer, then the final
    output, as fp32 ``(T, D)`` tensors; the waveform is normalized and cast to the weights'
    dtype as :class:`SSLSpeechEncoder` does."""
    lengths = torch.tensor([wav.shape[0]])
    x = normalize_waveforms(wav[None].float(), lengths)
    x = x.to(next(model.parameters()).dtype)
    mask = torch.ones_like(lengths[:, None].expand(1, wav.shape[0]))
    ctx = torch.autocast("cpu", dtype=autocast) if autocast else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        out = model(x, attention_mask=mask, output_hidden_states=True)
    states = list(out.hidden_states[:-1]) + [out.last_hidden_state]
    return [s[0].float() for s in states]


def compare_outputs(got: list[torch.Tensor], ref: list[torch.Tensor]) -> list[dict[str, float]]:
    """Relative Frobenius error and mean per-frame cosine similarity, per output."""
    rows = []
    for g, r in zip(got, ref):
        rel = float((g - r).norm() / r.norm())
        cos = float(nn.functional.cosine_similarity(g, r, dim=-1).mean())
        rows.append({"rel_err": rel, "cosine": cos, "nonfinite": int((~torch.isfinite(g)).sum())})
    return rows


PRECISION_VARIANTS = {
    # name: (weights dtype, autocast dtype or None)
    "bf16_weights_bf16_autocast": (torch.bfloat16, torch.bfloat16),  # ours (encoder.dtype auto)
    "fp32_weights_fp16_autocast": (torch.float32, torch.float16),  # the official code
    "fp32_weights_bf16_autocast": (torch.float32, torch.bfloat16),  # encoder.dtype: float32
}


def encoder_precision(seconds: float = 8.0, tiny: bool = False, seed: int = 0) -> dict[str, Any]:
    """HuBERT X-Large (random weights) on ~``seconds`` of speech: each precision variant of
    :data:`PRECISION_VARIANTS` against fp32 weights and input without autocast, per layer.

    Random weights are a weak proxy for the trained model: the trained model's activations
    (outliers, scale growth over layers) decide how much rounding matters.

    Returns:
        JSON-ready report: per variant the per-output rows (index 0 = after the feature
        projection, i = after layer i, last = the final layer-normed output), and a summary.
    """
    import transformers

    torch.manual_seed(seed)
    shape = HUBERT_TINY if tiny else HUBERT_XLARGE
    model = transformers.HubertModel._from_config(
        transformers.HubertConfig(**shape), dtype=torch.float32
    ).eval()
    wav, source = speech_waveform(seconds, seed)
    out: dict[str, Any] = {
        "model": "HuBERT X-Large shapes" if not tiny else "tiny HuBERT",
        "random_weights": True,
        "audio": {"seconds": wav.shape[0] / SAMPLE_RATE, "source": source},
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "variants": {},
    }
    times: dict[str, float] = {}
    with timed(torch.device("cpu"), times, "fp32_reference"):
        ref = _layer_outputs(model, wav, None)
    for name, (weights, autocast) in PRECISION_VARIANTS.items():
        variant = model if weights == torch.float32 else copy.deepcopy(model).to(weights)
        try:
            with timed(torch.device("cpu"), times, name):
                rows = compare_outputs(_layer_outputs(variant, wav, autocast), ref)
        except RuntimeError as e:  # e.g. an autocast dtype this CPU build lacks
            out["variants"][name] = {"error": str(e)}
            continue
        finally:
            if variant is not model:
                del variant
        out["variants"][name] = {
            "final": rows[-1],
            "max_rel_err": max(r["rel_err"] for r in rows),
            "min_cosine": min(r["cosine"] for r in rows),
            "per_output": rows,
        }
    out["seconds"] = times
    return out


def precision_table(report: dict[str, Any], every: int = 8) -> str:
    """Markdown table: relative error / cosine per variant at every ``every``-th output."""
    variants = {k: v for k, v in report["variants"].items() if "per_output" in v}
    if not variants:
        return "no variant ran"
    count = len(next(iter(variants.values()))["per_output"])
    picks = sorted(set(list(range(0, count - 1, every)) + [count - 2, count - 1]))
    head = "| output | " + " | ".join(variants) + " |"
    lines = [head, "|" + "---|" * (len(variants) + 1)]
    for i in picks:
        label = "input of layer 1" if i == 0 else f"after layer {i}"
        label = "final (layer-normed)" if i == count - 1 else label
        cells = [
            f"{v['per_output'][i]['rel_err']:.2e} / {v['per_output'][i]['cosine']:.5f}"
            for v in variants.values()
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "PARTS",
    "CheckOptions",
    "check_collectives",
    "check_setup",
    "encoder_precision",
    "precision_table",
    "run_check",
    "run_tiny_recipe",
]


# --------------------------------------------------------------------------- estimates

WHISPER_SHAPES = {  # encoder halves of openai/whisper-* (d_model, layers, heads, ffn)
    "tiny": (384, 4, 6, 1536),
    "small": (768, 12, 12, 3072),
    "large-v2": (1280, 32, 20, 5120),
}
TINYLLAMA = dict(
    hidden_size=2048,
    intermediate_size=5632,
    num_hidden_layers=22,
    num_attention_heads=32,
    num_key_value_heads=4,
    max_position_embeddings=2048,
    vocab_size=32000,
)


def whisper_shape(name: str) -> dict[str, Any]:
    """WhisperConfig kwargs of the encoder of ``openai/whisper-<name>``."""
    keys = ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim")
    return {**WHISPER_LARGE_V2, **dict(zip(keys, WHISPER_SHAPES[name]))}


# conf -> (encoder kind, encoder shape, LLM shape, paper batch per GPU)
ESTIMATE_CONFS: dict[str, tuple[str, dict[str, Any], dict[str, Any], int]] = {
    "slam_asr.yaml (HuBERT X-Large + Vicuna-7B)": ("hubert", HUBERT_XLARGE, VICUNA_7B, 6),
    "whisper_large_v2-vicuna.yaml": ("whisper", WHISPER_LARGE_V2, VICUNA_7B, 4),
    "whisper_small-vicuna.yaml": ("whisper", whisper_shape("small"), VICUNA_7B, 4),
    "whisper_tiny-vicuna.yaml": ("whisper", whisper_shape("tiny"), VICUNA_7B, 4),
    "hubert_xlarge_ft-tinyllama.yaml": ("hubert", HUBERT_XLARGE, TINYLLAMA, 6),
}


def llm_activation_bytes(llm_shape: dict[str, Any], tokens: int) -> float:
    """Bytes a frozen LLaMA keeps for its input-gradient backward over ``tokens`` (bf16):
    per layer and token about 8 hidden-size tensors (norm in/out, q, k, v, attention out,
    residual, second norm) and 4 FFN-size ones (gate, up, activation, product); attention
    scores are not kept (SDPA's fused kernels)."""
    per_token = 8 * llm_shape["hidden_size"] + 4 * llm_shape["intermediate_size"]
    return 2.0 * per_token * llm_shape["num_hidden_layers"] * tokens


def estimate_conf(
    kind: str,
    enc_shape: dict[str, Any],
    llm_shape: dict[str, Any],
    batch: int,
    seconds: float,
    target_tokens: int,
) -> dict[str, Any]:
    """Parameters, training memory and model FLOPs of one step for ``batch`` utterances of
    ``seconds`` with ``target_tokens`` each, from the shapes alone (meta tensors).

    Memory = bf16 encoder and LLM weights + the fp32 projector with its gradient and two
    AdamW moments + :func:`llm_activation_bytes` + fp32 logits, their softmax and gradient at
    the supervised positions. Not counted: the encoder's transient activations (no grad),
    the allocator's fragmentation and CUDA context (add ~10-20 % and ~0.5 GB).
    """
    cfg = recipe_config("slam_asr.yaml")
    tokenizer = make_char_tokenizer(llm_shape["vocab_size"])
    with torch.device("meta"):
        encoder = build_encoder(kind, enc_shape, torch.bfloat16)
        llm = build_llm(llm_shape, tokenizer, torch.bfloat16, "")
        from slamasr.models.projector import build_projector

        projector = build_projector(
            cfg.model.projector, encoder.output_dim, llm_shape["hidden_size"]
        )
    enc_params = sum(p.numel() for p in encoder.parameters())
    llm_params = sum(p.numel() for p in llm.parameters())
    proj_params = sum(p.numel() for p in projector.parameters())
    speech = int(seconds * encoder.frame_rate_hz) // cfg.model.projector.downsample_rate
    length = 20 + speech + target_tokens + 1  # ~20 template tokens, EOS
    static = 2.0 * (enc_params + llm_params) + 16.0 * proj_params
    activations = llm_activation_bytes(llm_shape, batch * length)
    logits = 12.0 * batch * (target_tokens + 1) * llm_shape["vocab_size"]
    counts = [bench.UtteranceCounts(length, speech, target_tokens + 1)] * batch
    samples = int(seconds * SAMPLE_RATE)
    enc_flops = (
        bench.whisper_encoder_flops(encoder)
        if kind == "whisper"
        else ssl_encoder_flops(encoder, samples)
    )
    flops = bench.training_flops(counts, bench.llm_shape(llm), projector, False, enc_flops)
    return {
        "encoder_params": enc_params,
        "llm_params": llm_params,
        "projector_params": proj_params,
        "llm_tokens_per_utt": length,
        "weights_and_optimizer_bytes": static,
        "activation_bytes": activations + logits,
        "train_bytes": static + activations + logits,
        "flops_per_step": flops,
    }


def estimate_table(report: dict[str, Any]) -> str:
    """Markdown rows of :func:`estimates` (GiB, TFLOP)."""
    lines = [
        "| config | batch/GPU | LLM tokens/utt | weights + optimizer GiB | activations GiB "
        "| training total GiB | TFLOP/step |",
        "|---|---|---|---|---|---|---|",
    ]
    gib = 2.0**30
    for name, r in report.items():
        lines.append(
            f"| {name} | {r['batch']} | {r['llm_tokens_per_utt']} "
            f"| {r['weights_and_optimizer_bytes'] / gib:.1f} | {r['activation_bytes'] / gib:.1f} "
            f"| {r['train_bytes'] / gib:.1f} | {r['flops_per_step'] / 1e12:.0f} |"
        )
    return "\n".join(lines)


def estimates(seconds: float = 30.0, target_tokens: int = 300) -> dict[str, Any]:
    """:func:`estimate_conf` for each of :data:`ESTIMATE_CONFS` at its paper batch."""
    return {
        name: {"batch": batch, **estimate_conf(kind, enc, llm, batch, seconds, target_tokens)}
        for name, (kind, enc, llm, batch) in ESTIMATE_CONFS.items()
    }
