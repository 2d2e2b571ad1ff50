"""What a benchmark run does: :class:`BenchmarkOptions` (the CLI's options)."""

from __future__ import annotations

from dataclasses import dataclass


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
        lr: constant learning rate of both modes (0 = ``train.lr``); the rest of the step
            (betas, weight decay, gradient clipping) is the config's ``train`` section.
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
            settings (``decode.scorers.ctc.weight`` > 0; the checkpoint must have the CTC head
            it reads) at the largest batch size, against the LLM alone at that size.
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
