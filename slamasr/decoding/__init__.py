"""Decoding: the paper's beam search (:mod:`~slamasr.decoding.search`), scorers beside it
(:mod:`~slamasr.decoding.scorers`), n-best rescoring (:mod:`~slamasr.decoding.rescore`), the
``decode:`` config (:mod:`~slamasr.decoding.config`), and decoding test sets of an
experiment into recogs files (:mod:`~slamasr.decoding.run`)."""

from slamasr.decoding.config import DecodeConfig
from slamasr.decoding.run import (
    DecodeOutputExistsError,
    DecodeSet,
    RecogResult,
    build_results,
    check_overwrite,
    config_decode_tag,
    decode_batch,
    decode_data_config,
    decode_loader,
    decode_one_by_one,
    decode_tag,
    decode_test_set,
    gather_to_rank0,
    generate_options,
    load_test_set,
    load_trainable_weights,
    log_bound_hits,
    output_paths,
    run_decoding,
    select_cuts,
    write_outputs,
)

__all__ = [
    "DecodeConfig",
    "DecodeOutputExistsError",
    "DecodeSet",
    "RecogResult",
    "build_results",
    "check_overwrite",
    "config_decode_tag",
    "decode_batch",
    "decode_data_config",
    "decode_loader",
    "decode_one_by_one",
    "decode_test_set",
    "decode_tag",
    "gather_to_rank0",
    "generate_options",
    "load_test_set",
    "load_trainable_weights",
    "log_bound_hits",
    "output_paths",
    "run_decoding",
    "select_cuts",
    "write_outputs",
]
