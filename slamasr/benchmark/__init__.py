"""Training and decoding benchmark: slamasr's fast path against a reference-like path.

Both modes run in one process on the same models, cuts and device, so every speed-up is a
ratio of numbers measured side by side (``python -m slamasr.bin.benchmark``;
docs/benchmark.md). The parts:

- :mod:`~slamasr.benchmark.flops`: model FLOPs of a step, matmuls only, and the per-utterance
  sizes they are counted on;
- :mod:`~slamasr.benchmark.peaks`: synchronized timings, memory peaks, the matmul peak that
  MFU divides by;
- :mod:`~slamasr.benchmark.modes`: ``ours`` and ``reference`` (what differs between them);
- :mod:`~slamasr.benchmark.train`: one timed pass per mode through the trainer's own
  ``train_one_step``, and the dev loss through its ``compute_loss``;
- :mod:`~slamasr.benchmark.decode`: timed decoding runs;
- :mod:`~slamasr.benchmark.data`: cuts, loaders, ours' encoder cache;
- :mod:`~slamasr.benchmark.report`: ratios, targets, markdown tables;
- :mod:`~slamasr.benchmark.runner`: :func:`run_benchmark`, the whole run.
"""

from slamasr.benchmark.data import (
    build_cache,
    decode_loader_for,
    encoder_input_data_config,
    first_cuts,
    training_loaders,
)
from slamasr.benchmark.decode import (
    DecodeRun,
    decode_dtype,
    decode_timed,
    hypothesis_mismatches,
    load_decode_projectors,
    ours_decode_source,
    run_decoding_modes,
)
from slamasr.benchmark.flops import (
    LLMShape,
    UtteranceCounts,
    encoder_output_lengths,
    linear_params,
    llm_forward_flops,
    llm_forward_parts,
    llm_shape,
    llm_training_flops,
    projector_training_flops,
    training_flops,
    utterance_counts,
    whisper_encoder_flops,
)
from slamasr.benchmark.modes import (
    MODES,
    ModeSetup,
    ReferenceSlamASR,
    build_modes,
    reference_llm,
    reference_loss,
    untrimmed_encoder,
)
from slamasr.benchmark.options import BenchmarkOptions
from slamasr.benchmark.peaks import (
    DTYPES,
    autocast_context,
    dtype_name,
    gpu_max_allocated_bytes,
    measure_matmul_peak,
    measure_peaks,
    move_batch,
    peak_rss_bytes,
    reset_peak_memory,
    synchronize,
)
from slamasr.benchmark.report import (
    check_targets,
    compute_ratios,
    decoding_table,
    ratio,
    ratios_table,
    render_markdown,
    training_table,
)
from slamasr.benchmark.runner import environment, run_benchmark, run_training_modes
from slamasr.benchmark.train import (
    StepRecord,
    TrainRun,
    bench_train_config,
    dev_loss,
    make_trainer,
    summarize_training,
    train_pass,
)

__all__ = [
    "DTYPES",
    "MODES",
    "BenchmarkOptions",
    "DecodeRun",
    "LLMShape",
    "ModeSetup",
    "ReferenceSlamASR",
    "StepRecord",
    "TrainRun",
    "UtteranceCounts",
    "autocast_context",
    "bench_train_config",
    "build_cache",
    "build_modes",
    "check_targets",
    "compute_ratios",
    "decode_dtype",
    "decode_loader_for",
    "decode_timed",
    "decoding_table",
    "dev_loss",
    "dtype_name",
    "encoder_input_data_config",
    "encoder_output_lengths",
    "environment",
    "first_cuts",
    "gpu_max_allocated_bytes",
    "hypothesis_mismatches",
    "linear_params",
    "llm_forward_flops",
    "llm_forward_parts",
    "llm_shape",
    "llm_training_flops",
    "load_decode_projectors",
    "make_trainer",
    "measure_matmul_peak",
    "measure_peaks",
    "move_batch",
    "ours_decode_source",
    "peak_rss_bytes",
    "projector_training_flops",
    "ratio",
    "ratios_table",
    "reference_llm",
    "reference_loss",
    "render_markdown",
    "reset_peak_memory",
    "run_benchmark",
    "run_decoding_modes",
    "run_training_modes",
    "summarize_training",
    "synchronize",
    "train_pass",
    "training_flops",
    "training_loaders",
    "training_table",
    "untrimmed_encoder",
    "utterance_counts",
    "whisper_encoder_flops",
]
