"""Training and decoding benchmark: slamasr's fast path against a reference-like path.

Both modes run in one process on the same models, cuts and device, so every speed-up is a
ratio of numbers measured side by side (``python -m slamasr.bin.benchmark``).

Modes (Whisper encoders):

- ``ours``: frozen-encoder outputs cached once (``slamasr.encoder_cache``; build time reported
  separately), Whisper output trimmed to the real length, duration bucketing
  (``data.max_duration``), vocabulary logits only at supervised positions
  (``SlamASR.forward``), bf16 autocast (``train.dtype``); batched beam search.
- ``reference``: Whisper output untrimmed (1500 frames -> 300 LLM tokens per utterance), a
  fixed batch of ``data.batch_size`` cuts without bucketing, full-vocabulary logits at every
  position with Hugging Face's usual shifted cross-entropy, encoder recomputed every step,
  LLM in fp32 without autocast; decoding one utterance at a time.

FLOPs (:func:`training_flops`) are *model* FLOPs of the useful work, counted per utterance
on its own (unpadded) length, matmuls only (norms, activations and softmax are ignored):

- a linear layer ``in -> out`` costs ``2*in*out`` per token forward.  The LLM is frozen, so
  its backward computes input gradients only (``dX = dY W^T``: again ``2*in*out``) and no
  weight gradients (``dW = X^T dY`` would be another ``2*in*out``): backward = 1x forward;
- causal attention over ``L`` tokens: ``L(L+1)/2`` query-key pairs, ``2*A`` FLOPs each for
  ``Q K^T`` and ``2*A`` for ``P V`` (``A`` = heads x head_dim).  Its backward needs
  ``dQ, dK`` (from ``dS``) and ``dP, dV`` (from ``dO``), all activation gradients: 2x forward;
- LM head ``d -> V``: ours at supervised positions only (forward + input-gradient
  backward); reference at every position (the dense ``(B, L, V)`` logits and their gradient);
- projector (trainable): forward ``2*in*out`` per layer per frame; backward weight
  gradients for every layer and input gradients for all but the first (its input, the
  encoder frames, needs none);
- Whisper encoder forward (reference mode only; ours reads the cache, whose cost is the
  separately reported build): convs over 3000 input frames, linears and full (non-causal)
  attention over 1500 frames.

MFU = counted FLOPs / step wall time / the matmul peak of the dtype the LLM computes in
(bf16 for ours, fp32 for reference), measured in the same run by :func:`measure_matmul_peak`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import platform
import resource
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from slamasr.models.encoders import WhisperSpeechEncoder
from slamasr.models.slam import IGNORE_INDEX, SlamASR

logger = logging.getLogger(__name__)

MODES = ("ours", "reference")
Batch = dict[str, Any]


# --------------------------------------------------------------------------- device and memory


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are complete (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``VmHWM``; ``getrusage`` as a fallback)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # "VmHWM:  123 kB"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_memory(device: torch.device) -> bool:
    """Reset the peak-RSS mark (Linux ``clear_refs``) and CUDA peak stats.

    Returns:
        True when the RSS mark was reset (else peaks are cumulative over the process).
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def gpu_max_allocated_bytes(device: torch.device) -> Optional[int]:
    """``torch.cuda.max_memory_allocated`` on a GPU, None on CPU."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def measure_matmul_peak(
    device: torch.device, dtype: torch.dtype, size: int = 2048, seconds: float = 1.5
) -> float:
    """Measured matmul throughput (FLOP/s) of ``size x size`` products in ``dtype``.

    Args:
        device: where to multiply.
        dtype: torch.float32 or torch.bfloat16.
        size: matrix side (large enough to reach the device's sustained peak).
        seconds: how long to keep multiplying after two warm-up products.

    Returns:
        ``2 * size**3 * count / elapsed``.
    """
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    for _ in range(2):
        torch.matmul(a, b)
    synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
        if device.type == "cuda" and count % 16:
            continue
        synchronize(device)
    synchronize(device)
    return 2.0 * size**3 * count / (time.perf_counter() - start)


# --------------------------------------------------------------------------- FLOP counting


@dataclass(frozen=True)
class LLMShape:
    """What the FLOP count needs to know about a decoder-only LM.

    Attributes:
        linear_params: sum of ``in*out`` over every linear layer of the decoder blocks.
        num_layers: decoder blocks.
        attn_width: query heads x head dim (``A``).
        hidden: model width ``d``.
        vocab: output vocabulary ``V`` (LM head ``d -> V``).
    """

    linear_params: int
    num_layers: int
    attn_width: int
    hidden: int
    vocab: int


def _linear_params(module: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def llm_shape(llm: nn.Module) -> LLMShape:
    """Read an :class:`LLMShape` from a Hugging Face causal LM (its modules and config)."""
    cfg = llm.config
    head = llm.get_output_embeddings()
    decoder = llm.get_decoder()
    layers = getattr(decoder, "layers", None) or getattr(decoder, "h", None)
    if layers is None:
        raise ValueError(f"cannot find the decoder blocks of {type(llm).__name__}")
    hidden = int(getattr(cfg, "hidden_size", 0) or cfg.n_embd)
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", 0) or hidden // heads)
    linear_params = sum(_linear_params(layer) for layer in layers)
    if linear_params == 0:
        raise ValueError(f"{type(llm).__name__} has no nn.Linear layers to count")
    return LLMShape(
        linear_params=linear_params,
        num_layers=len(layers),
        attn_width=heads * head_dim,
        hidden=hidden,
        vocab=int(head.weight.shape[0]),
    )


def llm_forward_parts(shape: LLMShape, length: int, head_positions: int) -> tuple[float, ...]:
    """Forward FLOPs ``(linear, attention, head)`` of a decoder-only LM on one sequence.

    Args:
        shape: the LLM.
        length: tokens in the sequence ``L``.
        head_positions: positions whose vocabulary logits are computed.
    """
    linear = 2.0 * shape.linear_params * length
    attention = shape.num_layers * 4.0 * shape.attn_width * (length * (length + 1) / 2)
    head = 2.0 * shape.hidden * shape.vocab * head_positions
    return linear, attention, head


def llm_forward_flops(shape: LLMShape, length: int, head_positions: int) -> float:
    """FLOPs of a forward pass alone (dev loss, prefill)."""
    return sum(llm_forward_parts(shape, length, head_positions))


def llm_training_flops(shape: LLMShape, length: int, head_positions: int) -> float:
    """FLOPs of forward + input-gradient backward of a frozen LLM on one sequence.

    Returns:
        ``2*fwd_linear + 3*fwd_attention + 2*fwd_head`` (module docstring): linears and head
        need ``dX`` only (frozen weights), attention needs ``dQ, dK, dP, dV``.
    """
    linear, attention, head = llm_forward_parts(shape, length, head_positions)
    return 2.0 * linear + 3.0 * attention + 2.0 * head


def projector_training_flops(projector: nn.Module, frames: int) -> float:
    """Projector forward + backward FLOPs over ``frames`` downsampled frames.

    Forward ``2*in*out`` per linear; backward ``2*in*out`` (weight grad) for every linear plus
    ``2*in*out`` (input grad) for every linear but the first.
    """
    linears = [m for m in projector.modules() if isinstance(m, nn.Linear)]
    per_frame = 0.0
    for i, lin in enumerate(linears):
        cost = 2.0 * lin.in_features * lin.out_features
        per_frame += cost * (3.0 if i > 0 else 2.0)
    return per_frame * frames


def whisper_encoder_flops(encoder: WhisperSpeechEncoder) -> float:
    """Forward FLOPs of Whisper's encoder on one 30 s input (3000 mel frames -> 1500)."""
    enc = encoder.encoder
    in_frames = encoder.max_frames
    out_frames = in_frames // 2
    conv = 0.0
    for c, frames in ((enc.conv1, in_frames), (enc.conv2, out_frames)):
        conv += 2.0 * c.in_channels * c.kernel_size[0] * c.out_channels * frames
    linear = 2.0 * sum(_linear_params(layer) for layer in enc.layers) * out_frames
    attention = len(enc.layers) * 4.0 * encoder.output_dim * out_frames**2
    return conv + linear + attention


@dataclass
class UtteranceCounts:
    """Sizes of one training utterance as the LLM sees it.

    Attributes:
        length: LLM tokens (template + speech + transcript + EOS).
        speech: projector output frames (speech tokens).
        supervised: tokens with a loss (transcript + EOS).
    """

    length: int
    speech: int
    supervised: int


def training_flops(
    counts: Iterable[UtteranceCounts],
    shape: LLMShape,
    projector: nn.Module,
    full_vocab: bool,
    encoder_flops_per_utt: float,
) -> float:
    """Model FLOPs of one training step over ``counts`` (module docstring).

    Args:
        counts: per-utterance sizes.
        shape: the LLM.
        projector: the projector (its linears are counted).
        full_vocab: logits at every position (reference) or supervised ones (ours).
        encoder_flops_per_utt: encoder forward FLOPs per utterance (0 when cached).
    """
    total = 0.0
    for c in counts:
        head = c.length if full_vocab else c.supervised
        total += llm_training_flops(shape, c.length, head)
        total += projector_training_flops(projector, c.speech)
        total += encoder_flops_per_utt
    return total


# --------------------------------------------------------------------------- per-batch sizes


def encoder_output_lengths(model: SlamASR, batch: Batch) -> torch.Tensor:
    """Encoder frames per utterance ``(B,)`` as ``model.encode`` would return them."""
    if "encoder_frame_lengths" in batch:
        return batch["encoder_frame_lengths"].cpu()
    lengths = batch["input_lengths"].cpu()
    enc = model.encoder
    if isinstance(enc, WhisperSpeechEncoder):
        if enc.pad_to_30s and not enc.trim_output:
            return torch.full_like(lengths, enc.max_frames // 2)
        return (lengths + 1) // 2
    raise ValueError("the benchmark counts Whisper encoders or cached encoder frames only")


def utterance_counts(model: SlamASR, batch: Batch) -> list[UtteranceCounts]:
    """Per-utterance LLM sizes of a training batch (what ``build_inputs`` will build)."""
    rate = model.projector.downsample.rate
    frames = encoder_output_lengths(model, batch)
    out = []
    for i, text in enumerate(batch["texts"]):
        prompt = model.template.prompt_text(False, batch["cut_ids"][i])
        pieces = model.template.pieces(prompt)
        speech = int(frames[i]) // rate
        target = len(model.template.target_ids(text))
        out.append(
            UtteranceCounts(
                len(pieces.prefix) + speech + len(pieces.suffix) + target, speech, target
            )
        )
    return out


# --------------------------------------------------------------------------- the two losses


def reference_loss(model: SlamASR, batch: Batch) -> dict[str, torch.Tensor]:
    """Reference-style loss: full-vocabulary logits at every position, shifted CE.

    Same contract as ``SlamASR.forward`` (loss, num_tokens, num_correct); the logits
    ``(B, L, V)`` are computed for all positions as the reference code does.
    """
    inputs = model.build_inputs(batch, with_targets=True, left_pad=False)
    labels = inputs.pop("labels")  # (B, L)
    logits = model.llm(**inputs, use_cache=False).logits  # (B, L, V)
    shifted = logits[:, :-1].float()  # (B, L-1, V)
    targets = labels[:, 1:]  # (B, L-1)
    loss = nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )
    selected = targets != IGNORE_INDEX
    correct = (shifted.argmax(-1)[selected] == targets[selected]).sum()
    return {"loss": loss, "num_tokens": selected.sum(), "num_correct": correct}


def mode_loss(mode: str, model: SlamASR, batch: Batch) -> dict[str, torch.Tensor]:
    """The loss of ``mode``: ``SlamASR.forward`` (ours) or :func:`reference_loss`."""
    return model(batch) if mode == "ours" else reference_loss(model, batch)


def autocast_context(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for bf16/fp16, nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def move_batch(batch: Batch, device: torch.device) -> Batch:
    """``batch`` with its tensors on ``device``."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


# --------------------------------------------------------------------------- mode setup


@dataclass
class ModeSetup:
    """One mode's model and how it computes.

    Attributes:
        name: ours | reference.
        model: a SlamASR (shares frozen parts with the other mode where dtypes allow).
        compute_dtype: autocast dtype (fp32 = none); also picks the matmul peak for MFU.
        encoder_flops_per_utt: encoder FLOPs counted per training utterance.
    """

    name: str
    model: SlamASR
    compute_dtype: torch.dtype
    encoder_flops_per_utt: float


def untrimmed_encoder(encoder: WhisperSpeechEncoder) -> WhisperSpeechEncoder:
    """A wrapper over the same Whisper weights that pads to 30 s and keeps all 1500 frames."""
    return WhisperSpeechEncoder(encoder.encoder, pad_to_30s=True, trim_output=False, frozen=True)


def reference_llm(model: SlamASR, llm_cfg: Any, device: torch.device) -> nn.Module:
    """The reference's fp32 LLM: ``model.llm`` when already fp32, else loaded again in fp32.

    Loading again (rather than up-casting) keeps the reference's weights exactly fp32.
    """
    if next(model.llm.parameters()).dtype == torch.float32:
        return model.llm
    from slamasr.models.llm import load_llm

    llm, _ = load_llm(dataclasses.replace(llm_cfg, dtype="float32"), device)
    return llm


def build_modes(
    model: SlamASR, seed: int, ours_dtype: torch.dtype, ref_llm: Optional[nn.Module] = None
) -> dict[str, ModeSetup]:
    """Both modes from one built model; both projectors start from the same weights.

    Args:
        model: ``build_model(cfg.model)`` with a Whisper encoder (trimming as configured).
        seed: seeds the projectors' (identical) initialization.
        ours_dtype: autocast dtype of the ours mode (``train.dtype`` resolved).
        ref_llm: fp32 LLM for the reference (default: ``model.llm``, which must be fp32).
    """
    if not isinstance(model.encoder, WhisperSpeechEncoder):
        raise ValueError("the reference-like mode is defined for Whisper encoders only")
    ref_llm = model.llm if ref_llm is None else ref_llm
    if next(ref_llm.parameters()).dtype != torch.float32:
        raise ValueError("the reference-like mode needs an fp32 LLM")
    torch.manual_seed(seed)
    for lin in (m for m in model.projector.modules() if isinstance(m, nn.Linear)):
        lin.reset_parameters()
    projector_ref = copy.deepcopy(model.projector)
    model.encoder.trim_output = True
    ref_encoder = untrimmed_encoder(model.encoder)
    ref = SlamASR(ref_encoder, projector_ref, ref_llm, model.tokenizer, model.template)
    return {
        "ours": ModeSetup("ours", model, ours_dtype, 0.0),
        "reference": ModeSetup(
            "reference", ref, torch.float32, whisper_encoder_flops(model.encoder)
        ),
    }


# --------------------------------------------------------------------------- training


@dataclass
class StepRecord:
    """One measured optimizer step."""

    seconds: float
    audio_seconds: float
    utterances: int
    llm_tokens: int
    padded_tokens: int
    supervised_tokens: int
    flops: float
    loss: float


@dataclass
class TrainRun:
    """Steps of one mode's training pass plus memory peaks."""

    steps: list[StepRecord] = field(default_factory=list)
    warmup_seconds: float = 0.0
    peak_rss_bytes: int = 0
    peak_rss_reset: bool = False
    gpu_max_allocated_bytes: Optional[int] = None


def _padded_tokens(counts: list[UtteranceCounts]) -> int:
    return len(counts) * max(c.length for c in counts)


def _train_step(
    setup: ModeSetup, batch: Batch, optimizer: torch.optim.Optimizer, device: torch.device
) -> float:
    """Forward, backward and AdamW update on ``batch``; returns the loss."""
    batch = move_batch(batch, device)
    with autocast_context(device, setup.compute_dtype):
        out = mode_loss(setup.name, setup.model, batch)
    out["loss"].float().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(out["loss"].detach())


def _record(setup: ModeSetup, batch: Batch, seconds: float, loss: float) -> StepRecord:
    counts = utterance_counts(setup.model, batch)
    flops = training_flops(
        counts,
        llm_shape(setup.model.llm),
        setup.model.projector,
        full_vocab=setup.name == "reference",
        encoder_flops_per_utt=setup.encoder_flops_per_utt,
    )
    return StepRecord(
        seconds=seconds,
        audio_seconds=float(batch["durations"].sum()),
        utterances=len(counts),
        llm_tokens=sum(c.length for c in counts),
        padded_tokens=_padded_tokens(counts),
        supervised_tokens=sum(c.supervised for c in counts),
        flops=flops,
        loss=loss,
    )


def warm_up(setup: ModeSetup, batch: Batch, device: torch.device) -> float:
    """One untimed-for-throughput forward/backward (allocator, kernels); no update.

    Returns:
        Its wall time in seconds.
    """
    start = time.perf_counter()
    batch = move_batch(batch, device)
    with autocast_context(device, setup.compute_dtype):
        out = mode_loss(setup.name, setup.model, batch)
    out["loss"].float().backward()
    setup.model.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - start


def train_pass(
    setup: ModeSetup,
    loader: Iterable[Batch],
    lr: float,
    device: torch.device,
    warmup_batch: Optional[Batch] = None,
) -> TrainRun:
    """Train ``setup.model`` over ``loader`` once, timing every step (data loading included).

    Args:
        setup: the mode.
        loader: training batches (one pass = the audio both modes see).
        lr: constant AdamW learning rate (no warm-up; both modes alike).
        device: compute device.
        warmup_batch: a batch to warm up on before timing (not trained on).

    Returns:
        The measured steps and this mode's memory peaks.
    """
    model = setup.model
    model.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr, weight_decay=0.0)
    run = TrainRun()
    if warmup_batch is not None:
        run.warmup_seconds = warm_up(setup, warmup_batch, device)
    run.peak_rss_reset = reset_peak_memory(device)
    iterator: Iterator[Batch] = iter(loader)
    while True:
        synchronize(device)
        start = time.perf_counter()
        batch = next(iterator, None)
        if batch is None:
            break
        loss = _train_step(setup, batch, optimizer, device)
        synchronize(device)
        run.steps.append(_record(setup, batch, time.perf_counter() - start, loss))
    run.peak_rss_bytes = peak_rss_bytes()
    run.gpu_max_allocated_bytes = gpu_max_allocated_bytes(device)
    return run


def summarize_training(run: TrainRun, peak_flops: float) -> dict[str, Any]:
    """Throughput, tokens/s, s/step, MFU and memory of a :class:`TrainRun`."""
    wall = sum(s.seconds for s in run.steps)
    audio = sum(s.audio_seconds for s in run.steps)
    tokens = sum(s.llm_tokens for s in run.steps)
    padded = sum(s.padded_tokens for s in run.steps)
    flops = sum(s.flops for s in run.steps)
    return {
        "steps": len(run.steps),
        "utterances": sum(s.utterances for s in run.steps),
        "audio_seconds": audio,
        "wall_seconds": wall,
        "warmup_seconds": run.warmup_seconds,
        "seconds_per_step": wall / max(len(run.steps), 1),
        "audio_seconds_per_second": audio / wall if wall else 0.0,
        "llm_tokens": tokens,
        "llm_tokens_per_second": tokens / wall if wall else 0.0,
        "padding_fraction": 1.0 - tokens / padded if padded else 0.0,
        "supervised_tokens": sum(s.supervised_tokens for s in run.steps),
        "flops": flops,
        "achieved_flops_per_second": flops / wall if wall else 0.0,
        "mfu": flops / wall / peak_flops if wall and peak_flops else 0.0,
        "final_train_loss": run.steps[-1].loss if run.steps else float("nan"),
        "peak_rss_bytes": run.peak_rss_bytes,
        "peak_rss_reset": run.peak_rss_reset,
        "gpu_max_allocated_bytes": run.gpu_max_allocated_bytes,
    }


# --------------------------------------------------------------------------- dev loss


@torch.no_grad()
def dev_loss(setup: ModeSetup, loader: Iterable[Batch], device: torch.device) -> dict[str, float]:
    """Token-weighted dev loss and next-token accuracy of a mode on its own path."""
    setup.model.eval()
    loss_sum, tokens, correct = 0.0, 0.0, 0.0
    for batch in loader:
        if not batch["cut_ids"]:
            continue
        with autocast_context(device, setup.compute_dtype):
            out = mode_loss(setup.name, setup.model, move_batch(batch, device))
        n = float(out["num_tokens"])
        loss_sum += float(out["loss"]) * n
        tokens += n
        correct += float(out["num_correct"])
    setup.model.train()
    return {
        "loss": loss_sum / max(tokens, 1.0),
        "acc": correct / max(tokens, 1.0),
        "tokens": tokens,
    }


# --------------------------------------------------------------------------- decoding


@dataclass
class DecodeRun:
    """One decoding configuration over the decode cuts."""

    mode: str
    num_beams: int
    batch_size: int
    wall_seconds: float
    audio_seconds: float
    hyps: dict[str, str]
    search: str = "native"
    joint: str = ""  # joint CTC/LLM search, e.g. "char ctc 0.5"; "" = the LLM alone

    def summary(self, reference_hyps: Optional[dict[str, str]]) -> dict[str, Any]:
        """JSON-ready figures; mismatches are counted against ``reference_hyps`` if given."""
        mismatches = None
        if reference_hyps is not None:
            mismatches = sum(self.hyps.get(k) != v for k, v in reference_hyps.items())
        return {
            "mode": self.mode,
            "num_beams": self.num_beams,
            "batch_size": self.batch_size,
            "search": self.search + (f" + {self.joint}" if self.joint else ""),
            "utterances": len(self.hyps),
            "wall_seconds": self.wall_seconds,
            "audio_seconds": self.audio_seconds,
            "rtf": self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0,
            "mismatches_vs_batch1": mismatches,
        }


def decode_timed(
    setup: ModeSetup,
    loader: Iterable[Batch],
    num_beams: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    search: str = "native",
    joint: Optional[Any] = None,
) -> DecodeRun:
    """Decode every batch of ``loader`` (encoder included) and time it.

    ``search``: native (slamasr's batched beam search) | hf (transformers' generate).
    ``joint``: a ``DecodeConfig`` whose CTC settings (``ctc_weight``, ``ctc_head``, ...) to
    decode with (joint CTC/LLM search); None = the LLM alone.
    """
    from slamasr.decoding import decode_batch
    from slamasr.decoding_config import DecodeConfig

    cfg = DecodeConfig(num_beams=num_beams, search=search)
    label = ""
    if joint is not None:
        cfg = dataclasses.replace(joint, num_beams=num_beams, search=search)
        label = f"{joint.ctc_head} ctc {joint.ctc_weight:g}"
        if joint.lm_rescore_weight > 0:
            label += f" + lm rescore {joint.lm_rescore_weight:g}"
    setup.model.eval()
    hyps: dict[str, str] = {}
    audio = 0.0
    synchronize(device)
    start = time.perf_counter()
    for batch in loader:
        hyps.update(decode_batch(setup.model, batch, cfg, device, dtype))
        audio += float(batch["durations"].sum())
    synchronize(device)
    wall = time.perf_counter() - start
    return DecodeRun(setup.name, num_beams, batch_size, wall, audio, hyps, search, label)


def hypothesis_mismatches(batched: dict[str, str], single: dict[str, str]) -> list[str]:
    """Cut ids whose batched hypothesis differs from (or is missing in) the batch-1 one."""
    return sorted(k for k in single.keys() | batched.keys() if batched.get(k) != single.get(k))


# --------------------------------------------------------------------------- report


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` (NaN when the denominator is 0)."""
    return numerator / denominator if denominator else float("nan")


def amortized_throughput(train: dict[str, Any], cache_seconds: float, epochs: int) -> float:
    """Audio s per wall s when the cache build is spread over ``epochs`` passes."""
    wall = train["wall_seconds"] + cache_seconds / max(epochs, 1)
    return ratio(train["audio_seconds"], wall)


def best_batched(decodes: list[dict[str, Any]], beams: int) -> Optional[dict[str, Any]]:
    """The fastest ours-mode decode with ``batch_size > 1`` at ``beams`` (None if none)."""
    rows = [d for d in decodes if d["num_beams"] == beams and d["batch_size"] > 1]
    return min(rows, key=lambda d: d["rtf"]) if rows else None


def batch1(decodes: list[dict[str, Any]], beams: int) -> Optional[dict[str, Any]]:
    """The ours-mode batch-1 decode at ``beams`` (None if not run)."""
    rows = [d for d in decodes if d["num_beams"] == beams and d["batch_size"] == 1]
    return rows[0] if rows else None


def compute_ratios(result: dict[str, Any], amortize_epochs: int) -> dict[str, Any]:
    """Speed-ups computed from the measured numbers in ``result``."""
    ours, ref = result["train"]["ours"], result["train"]["reference"]
    cache_s = result["encoder_cache"]["build_seconds"]
    out: dict[str, Any] = {
        "train_audio_per_s": ratio(
            ours["audio_seconds_per_second"], ref["audio_seconds_per_second"]
        ),
        "train_audio_per_s_cache_1_epoch": ratio(
            amortized_throughput(ours, cache_s, 1), ref["audio_seconds_per_second"]
        ),
        f"train_audio_per_s_cache_{amortize_epochs}_epochs": ratio(
            amortized_throughput(ours, cache_s, amortize_epochs), ref["audio_seconds_per_second"]
        ),
        "train_llm_tokens_per_s": ratio(
            ours["llm_tokens_per_second"], ref["llm_tokens_per_second"]
        ),
        "dev_loss_ours_minus_reference": result["dev"]["ours"]["loss"]
        - result["dev"]["reference"]["loss"],
    }
    decodes = result["decode"]["ours"]
    for beams in sorted({d["num_beams"] for d in decodes}):
        best, single = best_batched(decodes, beams), batch1(decodes, beams)
        if best and single:
            out[f"decode_beam{beams}_batched_vs_batch1"] = ratio(single["rtf"], best["rtf"])
    joint = result["decode"].get("ours_joint")
    if joint:
        same = [
            d
            for d in decodes
            if d["num_beams"] == joint["num_beams"] and d["batch_size"] == joint["batch_size"]
        ]
        if same:  # > 1: the joint search is that much slower than the LLM alone
            out["decode_joint_rtf_over_llm_only"] = ratio(joint["rtf"], same[0]["rtf"])
    unrescored = result["decode"].get("ours_joint_no_rescore")
    if joint and unrescored:  # > 1: what the LLM rescoring of the n-best costs
        out["decode_joint_rtf_over_no_rescore"] = ratio(joint["rtf"], unrescored["rtf"])
    ref_dec = result["decode"].get("reference")
    best4 = best_batched(decodes, 4)
    if ref_dec and best4:
        out["decode_beam4_batched_vs_reference"] = ratio(ref_dec["rtf"], best4["rtf"])
        incl = best4.get("rtf_incl_cache_build", best4["rtf"])
        out["decode_beam4_batched_incl_cache_vs_reference"] = ratio(ref_dec["rtf"], incl)
    return out


def check_targets(result: dict[str, Any]) -> dict[str, Any]:
    """Issue-6 targets (>=3x training, >=5x beam-4 decoding with identical hyps, MFU >=50%)."""
    ratios, ours = result["ratios"], result["train"]["ours"]
    rows = [d for d in result["decode"]["ours"] if d["num_beams"] == 4 and d["batch_size"] > 1]
    identical = all(d["mismatches_vs_batch1"] == 0 for d in rows) if rows else None
    decode_speed = ratios.get("decode_beam4_batched_vs_batch1", float("nan"))
    dev_diff = ratios["dev_loss_ours_minus_reference"]
    return {
        "train_throughput_ge_3x": ratios["train_audio_per_s"] >= 3.0,
        "dev_loss_equal_or_better": dev_diff <= 0.0,
        "decode_beam4_ge_5x_vs_batch1": decode_speed >= 5.0,
        "decode_hyps_identical": identical,
        "mfu_ge_50pct": ours["mfu"] >= 0.5,
    }


# --------------------------------------------------------------------------- orchestration


@dataclass
class BenchmarkOptions:
    """What to run (the CLI's options).

    Attributes:
        cuts: training cuts with encoder *input* features (e.g. whisper_mel manifests).
        dev_cuts: dev cuts (encoder-input features, like ``cuts``) for the dev-loss
            comparison; "" = the config's ``data.dev_cuts``.
        decode_cuts: cuts to decode; "" = no decoding benchmark.
        steps: reference-mode steps; both modes train on the same ``steps * data.batch_size``
            cuts (same audio), ours in however many bucketed batches they make.
        max_duration: ours' bucketing limit (0 = ``data.max_duration``, or 30 s if that is 0).
        dev_max_cuts: dev cuts used (first N).
        decode_max_cuts: decode cuts used (first N).
        batch_sizes: decoding batch sizes (1 is always added: the identity reference).
        beams: beam sizes to decode with (4 = paper, 1 = greedy).
        lr: constant learning rate of both modes (0 = ``train.lr``).
        device: auto | cpu | cuda.
        threads: torch CPU threads for the whole run (0 = torch's default); on a busy
            machine fewer threads than cores avoid OpenMP barrier stalls.
        work_dir: where the subset manifest and the encoder cache go ("" = a temp dir).
        amortize_epochs: epochs over which the cache build is also reported amortized.
        decode_dtype: ours' decoding autocast dtype: auto | float32 | bfloat16 (auto: bf16
            when the LLM weights are bf16).
        reference_decode: also decode with the reference-like mode (batch 1, beam 4,
            transformers' ``generate``).
        search: ours' beam search: native (prompt once per utterance, per-utterance bounds)
            | hf (transformers' ``generate``, to measure the native search against it).
        decode_input: ours decodes from ``cache`` (encoder outputs computed once, timed and
            reported apart, as the recipe decodes its test sets) or ``features`` (encoder run
            inside the timed decoding).
        decode_checkpoint: a training checkpoint dir whose projector both modes decode with
            ("" = the projectors of the benchmark's own short training).
        joint_decode: also time ours' joint CTC/LLM search with the config's ``decode``
            settings (``ctc_weight`` > 0; the checkpoint must have the CTC head it reads) at
            the largest batch size, against the LLM alone at that size.
        peak_seconds: seconds per dtype of the matmul peak measurement.
        seed: projector initialization seed (same for both modes).
    """

    cuts: str
    dev_cuts: str = ""
    decode_cuts: str = ""
    steps: int = 8
    max_duration: float = 0.0
    dev_max_cuts: int = 16
    decode_max_cuts: int = 16
    batch_sizes: tuple[int, ...] = (1, 4, 8)
    beams: tuple[int, ...] = (4, 1)
    lr: float = 0.0
    device: str = "auto"
    threads: int = 0
    work_dir: str = ""
    amortize_epochs: int = 10
    decode_dtype: str = "auto"
    reference_decode: bool = True
    search: str = "native"
    decode_input: str = "cache"
    decode_checkpoint: str = ""
    joint_decode: bool = False
    peak_seconds: float = 1.5
    seed: int = 42


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def measure_peaks(device: torch.device, seconds: float) -> dict[str, float]:
    """Matmul peak FLOP/s for fp32 and bf16 on ``device``."""
    return {name: measure_matmul_peak(device, dt, seconds=seconds) for name, dt in DTYPES.items()}


def first_cuts(path: str, count: int, data_cfg: Any, train: bool) -> Any:
    """The first ``count`` usable cuts of a manifest, eager (training filter when ``train``)."""
    from lhotse import load_manifest_lazy

    from slamasr.data.filters import filter_cuts_for_training

    cuts = load_manifest_lazy(path)
    if train:
        cuts, _ = filter_cuts_for_training(cuts, data_cfg)
    subset = cuts.subset(first=count).to_eager()
    if len(subset) == 0:
        raise ValueError(f"{path}: no usable cuts")
    cached = subset[0].has_features and subset[0].features.type == "encoder_cache"
    if cached or (not subset[0].has_features and data_cfg.input_kind != "audio"):
        raise ValueError(
            f"{path}: cuts carry no {data_cfg.input_kind} features (raw audio or an encoder "
            f"cache); give the manifest with the encoder's input features"
        )
    return subset


def encoder_input_data_config(cfg: Any, model: SlamASR) -> Any:
    """``cfg.data`` reading the encoder's own inputs, in-process loading (no workers)."""
    return dataclasses.replace(cfg.data, input_kind=model.encoder.input_kind, num_workers=0)


def build_cache(
    cfg: Any, train_path: Path, data_cfg: Any, work_dir: Path, bf16: bool
) -> tuple[Path, float]:
    """Build the frozen-encoder cache of the training cuts; return (manifest, seconds)."""
    from slamasr.encoder_cache import compute_encoder_cache

    enc_cfg = dataclasses.replace(cfg.model.encoder, whisper_trim_output=True)
    start = time.perf_counter()
    path = compute_encoder_cache(train_path, work_dir / "cache", enc_cfg, data_cfg, bf16=bf16)
    return path, time.perf_counter() - start


def training_loaders(
    cfg: Any, opts: BenchmarkOptions, data_cfg: Any, cache_path: Path, train_path: Path, count: int
) -> dict[str, Any]:
    """Ours: cached frames with bucketing; reference: encoder inputs, fixed batch size.

    Ours uses ``count // 4`` duration buckets (at least 2, at most ``data.num_buckets``).
    """
    from lhotse import load_manifest_lazy

    from slamasr.data import build_dataloader

    max_duration = opts.max_duration or cfg.data.max_duration or 30.0
    buckets = max(2, min(data_cfg.num_buckets, count // 4))
    ours_cfg = dataclasses.replace(
        data_cfg, input_kind="encoder_cache", max_duration=max_duration, num_buckets=buckets
    )
    ref_cfg = dataclasses.replace(data_cfg, max_duration=0.0)
    return {
        "ours": build_dataloader(load_manifest_lazy(cache_path), ours_cfg, train=True),
        "reference": build_dataloader(load_manifest_lazy(train_path), ref_cfg, train=True),
    }


def run_training_modes(
    modes: dict[str, ModeSetup],
    loaders: dict[str, Any],
    lr: float,
    device: torch.device,
    peaks: dict[str, float],
) -> dict[str, Any]:
    """Train each mode over its loader once; summaries keyed by mode."""
    out = {}
    for name in MODES:
        setup = modes[name]
        warm = next(iter(loaders[name]))
        logger.info("training pass: %s", name)
        run = train_pass(setup, loaders[name], lr, device, warmup_batch=warm)
        summary = summarize_training(run, peaks[_dtype_name(setup.compute_dtype)])
        summary["compute_dtype"] = _dtype_name(setup.compute_dtype)
        out[name] = summary
    return out


def decode_loader_for(cuts: Any, data_cfg: Any, batch_size: int) -> Any:
    """Decoding loader with a fixed batch size (cuts sorted by duration)."""
    from slamasr.data import build_dataloader

    cfg = dataclasses.replace(data_cfg, max_duration=0.0, batch_size=batch_size)
    return build_dataloader(cuts, cfg, train=False, num_workers=0)


def load_decode_projectors(modes: dict[str, ModeSetup], checkpoint: str) -> None:
    """Load a checkpoint's trainable weights into both modes (identical projectors); a
    mode gets the parts it has (the reference has no character CTC head)."""
    from slamasr.training.checkpoint import load_trainable

    weights = load_trainable(Path(checkpoint))
    for setup in modes.values():
        device = setup.model.device
        wanted = setup.model.trainable_state_dict().keys()
        state = {k: v.to(device) for k, v in weights.items() if k in wanted}
        setup.model.load_trainable_state_dict(state)  # a missing key still raises


def decode_dtype(name: str, model: SlamASR) -> torch.dtype:
    """Ours' decoding autocast dtype; ``auto`` = bf16 when the LLM weights are bf16, else fp32.

    (bf16 weights without autocast run CPU kernels far slower than either choice.)
    """
    if name != "auto":
        return DTYPES[name]
    weights = next(model.llm.parameters()).dtype
    return torch.bfloat16 if weights == torch.bfloat16 else torch.float32


def ours_decode_source(
    cfg: Any, cuts: Any, data_cfg: Any, opts: BenchmarkOptions, work_dir: Path, bf16: bool
) -> tuple[Any, Any, float]:
    """Cuts and data config ours decodes from, and the cache build seconds (0 for features).

    ``decode_input=cache`` encodes the decode cuts once (timed), as the recipe's encoder-cache
    stage does for its test sets (under bf16 autocast when ``bf16``, like the training
    cache); ``features`` runs the encoder inside decoding.
    """
    if opts.decode_input == "features":
        return cuts, data_cfg, 0.0
    from lhotse import load_manifest

    path = work_dir / "decode_cuts.jsonl.gz"
    cuts.to_file(path)
    cache_path, seconds = build_cache(cfg, path, data_cfg, work_dir, bf16)
    cache_cfg = dataclasses.replace(data_cfg, input_kind="encoder_cache")
    return load_manifest(cache_path), cache_cfg, seconds


def run_decoding_modes(
    modes: dict[str, ModeSetup],
    cuts: Any,
    data_cfg: Any,
    opts: BenchmarkOptions,
    device: torch.device,
    ours_source: tuple[Any, Any, float],
    joint: Optional[Any] = None,
) -> dict[str, Any]:
    """Ours at every (beam, batch size); reference-like at batch 1, beam 4 from features;
    with ``joint`` (a ``DecodeConfig`` with ``ctc_weight`` > 0) also ours' joint CTC/LLM
    search at the largest batch size and the first beam size (``ours_joint``), and where
    it rescores its n-best with the LLM (``lm_rescore_weight``), the same search without
    the rescoring (``ours_joint_no_rescore``).

    Args:
        modes: both modes.
        cuts: decode cuts with encoder-input features (the reference decodes these).
        data_cfg: data config for ``cuts``.
        opts: options (beams, batch sizes, dtype, checkpoint).
        device: compute device.
        ours_source: (cuts, data config, cache build seconds) ours decodes from.
        joint: the decode settings of the joint search, or None.
    """
    dtype = decode_dtype(opts.decode_dtype, modes["ours"].model)
    if opts.decode_checkpoint:
        load_decode_projectors(modes, opts.decode_checkpoint)
    ours_cuts, ours_cfg, cache_seconds = ours_source
    sizes = sorted(set(opts.batch_sizes) | {1})
    rows = []
    for beams in opts.beams:
        runs = {}
        for size in sizes:
            logger.info("decoding: ours, beam %d, batch %d", beams, size)
            loader = decode_loader_for(ours_cuts, ours_cfg, size)
            runs[size] = decode_timed(
                modes["ours"], loader, beams, size, device, dtype, opts.search
            )
        rows += [runs[s].summary(runs[1].hyps) for s in sizes]
    joint_rows: dict[str, dict[str, Any]] = {}
    variants = [] if joint is None else [("ours_joint", joint)]
    if joint is not None and joint.lm_rescore_weight > 0:
        variants.append(
            ("ours_joint_no_rescore", dataclasses.replace(joint, lm_rescore_weight=0.0))
        )
    for key, settings in variants:
        beams, size = opts.beams[0], sizes[-1]
        logger.info("decoding: %s, beam %d, batch %d", key, beams, size)
        loader = decode_loader_for(ours_cuts, ours_cfg, size)
        run = decode_timed(modes["ours"], loader, beams, size, device, dtype, "native", settings)
        joint_rows[key] = run.summary(None)
        rows.append(joint_rows[key])
    for row in rows:
        row["rtf_incl_cache_build"] = ratio(
            row["wall_seconds"] + cache_seconds, row["audio_seconds"]
        )
    out: dict[str, Any] = {
        "ours": [r for r in rows if not any(r is j for j in joint_rows.values())],
        "decode_dtype": _dtype_name(dtype),
        "ours_input": opts.decode_input,
        "ours_cache_build_seconds": cache_seconds,
        "projector": opts.decode_checkpoint or "trained in this run",
    }
    out.update(joint_rows)
    if opts.reference_decode:
        logger.info("decoding: reference-like, beam 4, batch 1")
        loader = decode_loader_for(cuts, data_cfg, 1)
        ref = decode_timed(modes["reference"], loader, 4, 1, device, torch.float32, "hf")
        out["reference"] = ref.summary(None)
    return out


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


def run_benchmark(cfg: Any, opts: BenchmarkOptions) -> dict[str, Any]:
    """Run everything; return the JSON-ready result (see docs/benchmark.md for its fields).

    Args:
        cfg: the resolved ExperimentConfig (model, data sampling, train lr/dtype).
        opts: what to run.
    """
    import tempfile

    from slamasr.models import build_model
    from slamasr.utils import resolve_autocast_dtype, resolve_device

    device = resolve_device(0, opts.device)
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    with contextlib.ExitStack() as stack:
        work = opts.work_dir or stack.enter_context(tempfile.TemporaryDirectory())
        work_dir = Path(work)
        work_dir.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {"environment": environment(device)}
        result["matmul_peak_flops"] = measure_peaks(device, opts.peak_seconds)
        model = build_model(cfg.model, device=device)
        ours_dtype = resolve_autocast_dtype(cfg.train.dtype, device)
        ref_llm = reference_llm(model, cfg.model.llm, device)
        modes = build_modes(model, opts.seed, ours_dtype, ref_llm)
        data_cfg = encoder_input_data_config(cfg, model)
        result.update(_train_and_dev(cfg, opts, modes, data_cfg, work_dir, device, result))
        result["decode"] = {"ours": []}
        if opts.decode_cuts:
            cuts = first_cuts(opts.decode_cuts, opts.decode_max_cuts, data_cfg, train=False)
            bf16 = modes["ours"].compute_dtype == torch.bfloat16
            source = ours_decode_source(cfg, cuts, data_cfg, opts, work_dir, bf16)
            joint = cfg.decode if opts.joint_decode and cfg.decode.ctc_weight > 0 else None
            if opts.joint_decode and joint is None:
                raise ValueError(
                    "--joint-decode decodes with the config's decode.ctc_weight, which is 0; "
                    "set it (e.g. --set decode.ctc_weight=0.5) or drop --joint-decode"
                )
            result["decode"] = run_decoding_modes(
                modes, cuts, data_cfg, opts, device, source, joint
            )
    result["ratios"] = compute_ratios(result, opts.amortize_epochs)
    result["targets"] = check_targets(result)
    return result


def _train_and_dev(
    cfg: Any,
    opts: BenchmarkOptions,
    modes: dict[str, ModeSetup],
    data_cfg: Any,
    work_dir: Path,
    device: torch.device,
    result: dict[str, Any],
) -> dict[str, Any]:
    """Cache build, both training passes and both dev losses."""
    count = opts.steps * data_cfg.batch_size
    train_cuts = first_cuts(opts.cuts, count, data_cfg, train=True)
    train_path = work_dir / "train_cuts.jsonl.gz"
    train_cuts.to_file(train_path)
    bf16 = modes["ours"].compute_dtype == torch.bfloat16
    cache_path, cache_s = build_cache(cfg, train_path, data_cfg, work_dir, bf16)
    audio = sum(c.duration for c in train_cuts)
    loaders = training_loaders(cfg, opts, data_cfg, cache_path, train_path, len(train_cuts))
    lr = opts.lr or cfg.train.lr
    train = run_training_modes(modes, loaders, lr, device, result["matmul_peak_flops"])
    dev_path = opts.dev_cuts or cfg.data.dev_cuts
    if not dev_path:
        raise ValueError("no dev cuts: pass --dev-cuts or set data.dev_cuts")
    dev_cuts = first_cuts(dev_path, opts.dev_max_cuts, data_cfg, train=False)
    dev_loader = decode_loader_for(dev_cuts, data_cfg, data_cfg.batch_size)
    dev = {name: dev_loss(modes[name], dev_loader, device) for name in MODES}
    return {
        "setup": {
            "train_cuts": len(train_cuts),
            "train_audio_seconds": audio,
            "dev_cuts": len(dev_cuts),
            "lr": lr,
            "reference_batch_size": data_cfg.batch_size,
            "ours_max_duration": opts.max_duration or cfg.data.max_duration or 30.0,
        },
        "encoder_cache": {"build_seconds": cache_s, "audio_seconds": audio},
        "train": train,
        "dev": dev,
    }


# --------------------------------------------------------------------------- tables


def _mb(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def training_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: one per training mode."""
    peaks = result["matmul_peak_flops"]
    lines = [
        "| mode | steps | utts | audio s | s/step | audio s/s | LLM tok/s | padding "
        "| GFLOP/s | matmul peak GFLOP/s | MFU | peak RSS MB | GPU max MB | dev loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in MODES:
        t, dev = result["train"][name], result["dev"][name]
        peak = peaks[t["compute_dtype"]]
        lines.append(
            f"| {name} ({t['compute_dtype']}) | {t['steps']} | {t['utterances']} "
            f"| {t['audio_seconds']:.1f} | {t['seconds_per_step']:.2f} "
            f"| {t['audio_seconds_per_second']:.2f} | {t['llm_tokens_per_second']:.0f} "
            f"| {100 * t['padding_fraction']:.0f}% | {t['achieved_flops_per_second'] / 1e9:.1f} "
            f"| {peak / 1e9:.1f} | {100 * t['mfu']:.0f}% | {_mb(t['peak_rss_bytes'])} "
            f"| {_mb(t['gpu_max_allocated_bytes'])} | {dev['loss']:.3f} |"
        )
    return lines


def decoding_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: one per decoding run."""
    dec = result["decode"]
    rows = list(dec.get("ours", []))
    for key in ("ours_joint", "ours_joint_no_rescore"):
        if dec.get(key):
            rows.append(dec[key])
    if dec.get("reference"):
        rows.append(dec["reference"])
    if not rows:
        return ["(no decoding run)"]
    lines = [
        "| mode | input | search | beams | batch | utts | audio s | wall s | RTF "
        "| RTF incl. cache build | speed-up vs ours batch 1 | hyps differing from batch 1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in rows:
        single = batch1(dec.get("ours", []), d["num_beams"])
        speed = ratio(single["rtf"], d["rtf"]) if single else float("nan")
        miss = "-" if d["mismatches_vs_batch1"] is None else str(d["mismatches_vs_batch1"])
        ours = d["mode"] == "ours"
        source = dec.get("ours_input", "features") if ours else "features"
        incl = f"{d['rtf_incl_cache_build']:.3f}" if ours and source == "cache" else "-"
        lines.append(
            f"| {d['mode']} | {source} | {d.get('search', 'hf')} | {d['num_beams']} "
            f"| {d['batch_size']} "
            f"| {d['utterances']} | {d['audio_seconds']:.1f} | {d['wall_seconds']:.1f} "
            f"| {d['rtf']:.3f} | {incl} | {speed:.2f}x | {miss} |"
        )
    return lines


def ratios_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: the measured ratios and the issue's targets."""
    lines = ["| ratio (ours / reference unless named) | value |", "|---|---|"]
    for key, value in result["ratios"].items():
        lines.append(f"| {key} | {value:.3f} |")
    lines += ["", "| target | met |", "|---|---|"]
    for key, value in result["targets"].items():
        lines.append(f"| {key} | {'n/a' if value is None else ('yes' if value else 'NO')} |")
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    """The whole result as markdown (used by the CLI and ``tools/benchmark_table.py``)."""
    env, setup = result["environment"], result.get("setup", {})
    cache = result["encoder_cache"]
    head = [
        f"Measured {env['time']} on {env['device']} ({env['device_name']}, "
        f"{env['torch_threads']} threads, torch {env['torch']}, git {env['git_sha'][:12]}).",
        f"Training audio: {setup.get('train_cuts')} cuts, "
        f"{setup.get('train_audio_seconds', 0):.1f} s "
        f"(one pass per mode, lr {setup.get('lr')}); dev loss on {setup.get('dev_cuts')} cuts. "
        f"Encoder cache build (ours, once): {cache['build_seconds']:.1f} s.",
        "",
    ]
    body = training_table(result) + [""] + decoding_table(result) + [""] + ratios_table(result)
    return "\n".join(head + body) + "\n"
