"""Decoding keeps every cut: one recogs result per manifest cut, bad cuts as hyp=[]."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slamasr.decoding import (
    DecodeOutputExistsError,
    DecodeSet,
    build_results,
    check_overwrite,
    decode_tag,
    decode_test_set,
)
from slamasr.decoding_config import DecodeConfig
from slamasr.scoring import read_bad_cuts, read_recogs
from tests.training.doubles import DoubleModel

REFS = {"a": "HELLO WORLD", "b": "GOOD DAY", "c": "BROKEN AUDIO", "d": "ONE", "e": "GONE"}


def _batch(ids: list[str], bad: list[str]) -> dict:
    return {
        "inputs": torch.randn(len(ids), 6, 4),  # (B, T, D)
        "input_lengths": torch.full((len(ids),), 6),
        "texts": [REFS[i] for i in ids],
        "cut_ids": ids,
        "durations": torch.ones(len(ids)),
        "bad_cut_ids": bad,
    }


def test_every_cut_gets_one_result_and_bad_cuts_are_flagged(tmp_path: Path) -> None:
    """Good cuts carry the model's hypothesis; unreadable ones hyp=[] and bad-cuts-<set>."""
    loader = [_batch(["a", "b"], ["c"]), _batch(["d"], []), _batch([], ["e"])]
    test_set = DecodeSet(name="test-x", refs=REFS, loader=loader)
    path = decode_test_set(DoubleModel(), test_set, DecodeConfig(), tmp_path, torch.device("cpu"))
    results = {cut_id: (ref, hyp) for cut_id, ref, hyp in read_recogs(path)}
    assert set(results) == set(REFS)
    assert results["a"] == (["HELLO", "WORLD"], ["HELLO"])
    assert results["c"] == (["BROKEN", "AUDIO"], []) and results["e"] == (["GONE"], [])
    assert read_bad_cuts(tmp_path / "bad-cuts-test-x.txt") == {"c", "e"}


def test_a_lost_cut_fails_loudly() -> None:
    """If decoding returns fewer results than the manifest has cuts, it raises."""
    with pytest.raises(RuntimeError, match="manifest of 5 cuts"):
        build_results(REFS, {"a": "HELLO", "b": "GOOD"}, ["c"], "upper")


def test_existing_recogs_are_not_overwritten_without_flag(tmp_path: Path) -> None:
    (tmp_path / "recogs-test-x.txt").write_text("x")
    with pytest.raises(DecodeOutputExistsError, match="--overwrite"):
        check_overwrite(tmp_path, ["test-x"], overwrite=False)
    check_overwrite(tmp_path, ["test-x"], overwrite=True)
    check_overwrite(tmp_path, ["other"], overwrite=False)


def test_decode_tag_encodes_checkpoint_avg_and_beam() -> None:
    assert decode_tag("best", 1, 4) == "decode-best-avg1-beam4"
    assert decode_tag("step-2000", 5, 1) == "decode-step-2000-avg5-beam1"
    joint = decode_tag("best", 1, 4, "native", 0.5, "char", 0.5)
    assert joint == "decode-best-avg1-beam4-charctc0.5-words0.5"
    assert decode_tag("best", 1, 4, "native", 0.5, "char", 0.5, 0.3) == f"{joint}-lm0.3"
    assert decode_tag("best", 1, 4, lm_rescore_weight=0.3) == "decode-best-avg1-beam4-lm0.3"


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"lm_rescore_weight": -0.1}, "lm_rescore_weight=-0.1; must be >= 0"),
        ({"lm_rescore_weight": 0.3, "search": "hf"}, "search=native, not 'hf'"),
        ({"word_prior_sound_alikes": -1}, "word_prior_sound_alikes must be >= 0"),
    ],
)
def test_decode_config_names_bad_rescoring_settings(settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DecodeConfig(**settings).validate()
