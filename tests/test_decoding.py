"""Decoding keeps every cut: one recogs result per manifest cut, bad cuts as hyp=[]."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Optional
from unittest import mock

import pytest
import torch

from slamasr.bin import decode as decode_bin
from slamasr.bin import score as score_bin
from slamasr.config import load_config
from slamasr.decoding import (
    DecodeOutputExistsError,
    DecodeSet,
    build_results,
    check_overwrite,
    decode_tag,
    decode_test_set,
)
from slamasr.decoding_config import DecodeConfig
from slamasr.scoring import read_bad_cuts, read_recogs, read_wer_file, score_decode_dir
from tests.test_reliability import _test_cuts, make_tiny_exp
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


def _decode_cfg(*sets: str) -> DecodeConfig:
    return load_config(None, list(sets), validate=False).decode


def test_decode_tag_encodes_checkpoint_avg_and_beam() -> None:
    """Tags as before the scorer sections, so existing exp dirs stay comparable."""
    assert decode_tag(_decode_cfg()) == "decode-best-avg1-beam4"
    step = _decode_cfg("decode.checkpoint=step-2000", "decode.avg=5", "decode.num_beams=1")
    assert decode_tag(step) == "decode-step-2000-avg5-beam1"
    char = ["decode.scorers.ctc.weight=0.5", "decode.scorers.ctc.head=char"]
    joint = _decode_cfg(*char, "decode.scorers.word_prior.weight=0.5")
    assert decode_tag(joint) == "decode-best-avg1-beam4-charctc0.5-words0.5"
    lm = _decode_cfg(
        *char, "decode.scorers.word_prior.weight=0.5", "decode.rescorers.lm.weight=0.3"
    )
    assert decode_tag(lm) == "decode-best-avg1-beam4-charctc0.5-words0.5-lm0.3"
    assert decode_tag(lm.paper()) == "decode-best-avg1-beam4"
    assert lm.paper().is_paper() and not lm.is_paper()
    only_lm = _decode_cfg("decode.rescorers.lm.weight=0.3")
    assert decode_tag(only_lm) == "decode-best-avg1-beam4-lm0.3"
    assert decode_tag(_decode_cfg("decode.scorers.ctc.weight=0.3")) == (
        "decode-best-avg1-beam4-ctc0.3"
    )
    assert decode_tag(_decode_cfg("decode.search=ctc")) == "decode-best-avg1-ctc-greedy"


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (["decode.rescorers.lm.weight=-0.1"], "decode.rescorers.lm.weight=-0.1; must be >= 0"),
        (["decode.rescorers.lm.weight=0.3", "decode.search=hf"], "search=native, not 'hf'"),
        (
            ["decode.scorers.word_prior.sound_alikes=-1"],
            "decode.scorers.word_prior.sound_alikes must be >= 0",
        ),
        (["decode.scorers.ctc.weight=1"], r"decode.scorers.ctc.weight=1.0; must be in \[0, 1\)"),
        (["decode.scorers.ctc.weight=0.5", "decode.search=hf"], "needs decode.search=native"),
        (["decode.scorers.ctc.head=chars"], "decode.scorers.ctc.head='chars'; choose token or"),
        (["decode.scorers.ctc.pre_beam=0"], "decode.scorers.ctc.pre_beam=0; must be >= 1"),
        (
            [
                "decode.scorers.ctc.weight=0.5",
                "decode.scorers.ctc.head=char",
                "decode.scorers.ctc.proposals=false",
                "decode.scorers.word_prior.weight=0.5",
                "decode.scorers.word_prior.path=w.tsv",
                "decode.scorers.word_prior.corrections=3",
            ],
            "decode.scorers.word_prior.corrections > 0 adds to the CTC head's proposals",
        ),
    ],
)
def test_decode_config_names_bad_scorer_settings(settings: list[str], match: str) -> None:
    """Each scorer's settings are checked by its own config, named by their full key."""
    with pytest.raises(ValueError, match=match):
        _decode_cfg(*settings).validate()


# --------------------------------------------------------------------------- bound hits


class _BoundDouble(DoubleModel):
    """Reports a bound hit for every cut whose id starts with ``long``."""

    def generate(self, batch: dict, bound_hits: Optional[list] = None, **kwargs) -> list[str]:
        if bound_hits is not None:
            bound_hits.extend(c.startswith("long") for c in batch["cut_ids"])
        return super().generate(batch, **kwargs)


def test_bound_hits_reach_the_log_the_info_file_errs_and_wer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hypothesis cut at the token bound is logged, listed in decode-info-<set>.json, and
    counted by scoring beside the loops (errs BOUND HITS, the wer file's last column)."""
    refs = {"a": "HELLO WORLD", "long-b": "GOOD DAY", "c": "ONE"}
    loader = [{**_batch(["a", "b"], []), "cut_ids": ["a", "long-b"]}, _batch(["d"], [])]
    loader[1]["cut_ids"] = ["c"]
    exp = tmp_path / "exp"
    out = exp / "decode-best-avg1-beam4"
    test_set = DecodeSet("test-x", refs, loader, manifest="/data/cuts_test-x.jsonl.gz")
    with caplog.at_level(logging.INFO):
        decode_test_set(_BoundDouble(), test_set, DecodeConfig(), out, torch.device("cpu"))
    assert "test-x: 1 hypotheses hit the new-token bound max(200, ceil(20 x seconds))" in (
        caplog.text
    )
    info = json.loads((out / "decode-info-test-x.json").read_text())
    assert info["bound_hits"] == ["long-b"] and info["cut_ids"] == ["a", "c", "long-b"]
    assert info["manifest"] == "/data/cuts_test-x.jsonl.gz"
    (record,) = score_decode_dir(exp, out)
    assert record.bound_hits == 1 and record.utterances == 3
    assert read_wer_file(exp / "wer")[0].bound_hits == 1
    errs = (out / "errs-test-x.txt").read_text()
    assert "BOUND HITS: 1 (hypotheses cut at the new-token bound)\nlong-b\n" in errs


# --------------------------------------------------------------------------- through bin/


@pytest.fixture(scope="module")
def decoded_exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HuBERT + Llama experiment whose 4-cut test set (2 unreadable) was decoded
    through ``bin/decode`` with a bound of 3 tokens (the random LLM babbles into it)."""
    root = tmp_path_factory.mktemp("decoded")
    exp = make_tiny_exp(root, "hubert")
    manifest = _test_cuts(root / "audio")
    assert decode_bin.main(["--exp-dir", str(exp), "--test-sets", f"test-x={manifest}"]) == 0
    return exp


def _copy_exp(exp: Path, tmp_path: Path) -> tuple[Path, Path]:
    copy = tmp_path / "exp"
    shutil.copytree(exp, copy)
    return copy, copy / "decode-best-avg1-beam1"


def test_decode_records_manifest_and_bound_hits_for_scoring(decoded_exp: Path, tmp_path) -> None:
    exp, out = _copy_exp(decoded_exp, tmp_path)
    info = json.loads((out / "decode-info-test-x.json").read_text())
    assert info["manifest"].endswith("cuts.jsonl.gz") and Path(info["manifest"]).is_absolute()
    assert info["cut_ids"] == ["gone", "good-1", "good-2", "junk"]
    assert set(info["bound_hits"]) <= {"good-1", "good-2"} and info["bound_hits"]
    (record,) = score_decode_dir(exp, out)
    assert record.bound_hits == len(info["bound_hits"]) and record.bad_cuts == 2


def _recogs_blocks(path: Path) -> list[str]:
    lines = path.read_text().splitlines(keepends=True)
    return ["".join(lines[i : i + 2]) for i in range(0, len(lines), 2)]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda blocks: blocks[1:], "recogs-test-x.txt: 3 cuts, but "),
        (
            lambda blocks: blocks + ["zz:\tref=['A']\nzz:\thyp=['A']\n"],
            "has 4: 1 cuts not in it (zz ...)",
        ),
    ],
    ids=["a-cut-missing", "a-cut-added"],
)
def test_score_refuses_recogs_whose_cuts_differ_from_the_test_set(
    decoded_exp: Path, tmp_path: Path, capsys: pytest.CaptureFixture, edit, message: str
) -> None:
    """7 or 9 results for an 8-cut set: one line naming the file, the wer file untouched."""
    exp, out = _copy_exp(decoded_exp, tmp_path)
    recogs = out / "recogs-test-x.txt"
    recogs.write_text("".join(edit(_recogs_blocks(recogs))))
    argv = ["--exp-dir", str(exp), "--decode-dir", str(out)]
    assert score_bin.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "cuts.jsonl.gz" in err and "--overwrite" in err
    assert not (exp / "wer").exists() and not (out / "errs-test-x.txt").exists()


@pytest.mark.parametrize("checkpoint", ["latest", "../../../x", "/abs/best"])
def test_decode_rejects_a_bad_checkpoint_name_before_loading_models(
    decoded_exp: Path, tmp_path: Path, capsys: pytest.CaptureFixture, checkpoint: str
) -> None:
    exp, _ = _copy_exp(decoded_exp, tmp_path)
    before = sorted(p.relative_to(exp) for p in exp.rglob("*") if "log" not in p.parts)
    with mock.patch("slamasr.models.build_model", side_effect=AssertionError("models loaded")):
        code = decode_bin.main(["--exp-dir", str(exp), "--checkpoint", checkpoint])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert f"decode.checkpoint={checkpoint!r}: use best, last or step-N" in err
    assert sorted(p.relative_to(exp) for p in exp.rglob("*") if "log" not in p.parts) == before


def test_decode_without_an_exp_dir_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "exp" / "nope"
    assert decode_bin.main(["--exp-dir", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no experiment dir {missing}") and err.count("\n") == 1
    assert not (tmp_path / "exp").exists()


def test_paper_flag_turns_every_scorer_off(tmp_path: Path, capsys) -> None:
    """``--paper``: scorers and rescorers off before validation, the paper's decode dir; an
    old flat key in --set names its new key."""
    from slamasr.bin.decode import main

    exp = make_tiny_exp(tmp_path, "fbank")
    joint = ["--set", "decode.scorers.ctc.weight=0.5", "--set", "decode.rescorers.lm.weight=0.3"]
    assert main(["--exp-dir", str(exp), "--print-out-dir", *joint]) == 1
    assert "model.projector.ctc_weight=0" in capsys.readouterr().err  # no CTC head trained
    assert main(["--exp-dir", str(exp), "--print-out-dir", "--paper", *joint]) == 0
    assert capsys.readouterr().out.strip() == str(exp / "decode-best-avg1-beam1")
    assert main(["--exp-dir", str(exp), "--print-out-dir", "--set", "decode.ctc_weight=0"]) == 1
    err = capsys.readouterr().err
    assert "decode.ctc_weight is now decode.scorers.ctc.weight" in err and "Traceback" not in err


def test_test_sets_by_name_come_from_dev_and_test_sets() -> None:
    """``--test-sets dev_ood test x=y.jsonl.gz``: bare names from data.dev_sets / data.test_sets
    (settings are chosen on dev sets without retyping their paths); an unknown bare name or a
    name given twice is an error that lists the known sets."""
    from slamasr.bin.decode import parse_test_sets
    from slamasr.config import ConfigError, ExperimentConfig

    cfg = ExperimentConfig()
    cfg.data.dev_sets = {"dev_ood": "d.jsonl.gz"}
    cfg.data.test_sets = {"test": "t.jsonl.gz"}
    got = parse_test_sets(["dev_ood", "test", "x=y.jsonl.gz"], cfg)
    assert got == {"dev_ood": "d.jsonl.gz", "test": "t.jsonl.gz", "x": "y.jsonl.gz"}
    with pytest.raises(ConfigError, match=r"'dev_oov'.*\(dev_ood, test\)"):
        parse_test_sets(["dev_oov"], cfg)
    with pytest.raises(ConfigError, match="twice"):
        parse_test_sets(["test", "test=z.jsonl.gz"], cfg)
    with pytest.raises(ConfigError, match="name=cuts"):
        parse_test_sets(["dev_ood"])  # no config: paths only
