"""The scorer interface: a new scorer is one class + one registry line; scorers are on iff
their weight > 0; old flat ``decode.*`` keys name their new key, and an experiment's recorded
config of before still decodes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
import torch
import yaml

from slamasr.config import ConfigError, load_config
from slamasr.decoding import DecodeConfig, decode_batch, decode_tag
from slamasr.decoding.rescore import build_rescorers
from slamasr.decoding.scorers import SCORERS, Scorer, ScorerConfig, SearchContext, build_scorers
from tests.helpers import make_tiny_batch, make_tiny_model


@dataclass
class ToyConfig(ScorerConfig):
    """``decode.scorers.toy``: ``token`` gets ``weight`` per occurrence."""

    token: int = 0


class ToyScorer(Scorer):
    """Rewards one token and proposes it for every utterance."""

    Config = ToyConfig

    def start(self, ctx: SearchContext) -> None:
        self.batch = ctx.speech.shape[0]

    def proposals(self) -> Optional[list[list[int]]]:
        return [[self.cfg.token]] * self.batch

    def score(self, cands: torch.Tensor) -> list[torch.Tensor]:
        return [self.cfg.weight * (cands == self.cfg.token).float()]

    def advance(self, rows: torch.Tensor, picks: torch.Tensor) -> None:
        pass


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_tiny_model("fbank", tmp_path_factory.mktemp("toy")).eval()


def _decode(*sets: str) -> DecodeConfig:
    cfg = load_config(None, list(sets), validate=False).decode
    cfg.validate()
    return cfg


def test_a_registered_toy_scorer_changes_the_chosen_hypothesis(model, monkeypatch) -> None:
    """One class + one registry entry: configured as decode.scorers.toy, on with weight > 0,
    named in the decode dir; its proposals reach the search and its score picks them."""
    monkeypatch.setitem(SCORERS, "toy", ToyScorer)
    batch = make_tiny_batch("fbank", num=2)
    sets = ["decode.num_beams=2", "decode.min_new_tokens_bound=6"]
    cpu = torch.device("cpu")
    plain = decode_batch(model, batch, _decode(*sets), cpu)
    words = {t: model.tokenizer.decode([t]).strip() for t in range(3, 100)}
    token = next(t for t, w in words.items() if w.isalpha() and w not in "".join(plain.values()))
    toy = _decode(*sets, "decode.scorers.toy.weight=50", f"decode.scorers.toy.token={token}")
    assert decode_tag(toy) == "decode-best-avg1-beam2-toy50"
    assert [type(s) for s in build_scorers(toy.scorers, model)] == [ToyScorer]
    got = decode_batch(model, batch, toy, cpu)
    assert got != plain and all(words[token] in text for text in got.values()), (got, token)
    off = _decode(*sets, "decode.scorers.toy.weight=0")
    assert build_scorers(off.scorers, model) == []
    assert decode_batch(model, batch, off, cpu) == plain


def test_paper_config_builds_no_scorer_or_rescorer(model) -> None:
    cfg = _decode("decode.scorers.ctc.weight=0.3", "decode.rescorers.lm.weight=0.5")
    assert [type(s).__name__ for s in build_scorers(cfg.scorers, model)] == ["CTCScorer"]
    assert len(build_rescorers(cfg.rescorers, model)) == 1
    paper = cfg.paper()
    assert paper.is_paper()
    assert build_scorers(paper.scorers, model) == [] == build_rescorers(paper.rescorers, model)


OLD_DECODE = {
    "num_beams": 4,
    "ctc_weight": 0.5,
    "ctc_pre_beam": 16,
    "ctc_head": "char",
    "ctc_proposals": True,
    "ctc_label_bonus": 2.0,
    "word_prior": "data/lang/word_counts.tsv",
    "word_prior_weight": 0.5,
    "word_prior_oov": -20.0,
    "word_prior_bonus": 0.0,
    "word_prior_max_words": 0,
    "word_prior_corrections": 3,
    "word_prior_sound_alikes": 3,
    "lm_rescore_weight": 0.3,
}


def test_old_flat_keys_name_their_new_key(tmp_path: Path) -> None:
    """In --set or a hand-written config: one error naming the new key."""
    with pytest.raises(ConfigError, match=r"decode.ctc_weight is now decode.scorers.ctc.weight"):
        load_config(None, ["decode.ctc_weight=0.3"], validate=False)
    with pytest.raises(ConfigError, match=r"decode.lm_rescore_weight is now decode.rescorers.lm"):
        load_config(None, ["decode.lm_rescore_weight=0.3"], validate=False, recorded=True)
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"decode": {"word_prior_weight": 0.5}}))
    with pytest.raises(ConfigError, match=r"decode.scorers.word_prior.weight .*conf.yaml"):
        load_config(conf, validate=False)


def test_a_recorded_config_of_before_reads_as_the_new_keys(tmp_path: Path, caplog) -> None:
    """An exp dir's config.yaml written before the scorer sections decodes with the same
    settings and the same decode dir (a notice names the mapping)."""
    recorded = tmp_path / "config.yaml"
    recorded.write_text(yaml.safe_dump({"decode": OLD_DECODE}))
    with caplog.at_level("INFO"):
        cfg = load_config(recorded, validate=False, recorded=True).decode
    assert "ctc_weight -> scorers.ctc.weight" in caplog.text
    ctc, words = cfg.scorers["ctc"], cfg.scorers["word_prior"]
    assert (ctc.weight, ctc.pre_beam, ctc.head, ctc.proposals, ctc.label_bonus) == (
        0.5, 16, "char", True, 2.0
    )  # fmt: skip
    assert (words.path, words.weight, words.corrections, words.sound_alikes) == (
        "data/lang/word_counts.tsv", 0.5, 3, 3
    )  # fmt: skip
    assert cfg.rescorers["lm"].weight == 0.3
    assert decode_tag(cfg) == "decode-best-avg1-beam4-charctc0.5-words0.5-lm0.3"
    cfg.validate()
    again = load_config(recorded, ["decode.scorers.ctc.weight=0.4"], validate=False, recorded=True)
    assert again.decode.scorers["ctc"].weight == 0.4  # --set wins over the recorded value


def test_unknown_scorer_and_key_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown scorer decode.scorers.ctcc; registered: ctc"):
        load_config(None, ["decode.scorers.ctcc.weight=0.3"], validate=False)
    with pytest.raises(ConfigError, match="'decode.scorers.ctc.wieght'"):
        load_config(None, ["decode.scorers.ctc.wieght=0.3"], validate=False)
    assert isinstance(DecodeConfig().scorers["ctc"], SCORERS["ctc"].Config)


def test_search_settings_off_their_default_get_their_own_decode_dir() -> None:
    """Two decodings that differ only in a search setting never share (and so never refuse
    or overwrite) one decode dir."""
    plain = DecodeConfig()
    assert decode_tag(plain) == "decode-best-avg1-beam4"
    tags = {
        decode_tag(dataclasses.replace(plain, repetition_penalty=1.2)),
        decode_tag(dataclasses.replace(plain, length_penalty=0.8)),
        decode_tag(dataclasses.replace(plain, search="hf")),
        decode_tag(plain),
    }
    assert tags == {
        "decode-best-avg1-beam4-rep1.2",
        "decode-best-avg1-beam4-lp0.8",
        "decode-best-avg1-beam4-hf",
        "decode-best-avg1-beam4",
    }


def test_a_scorer_without_score_is_refused_when_built() -> None:
    """``score`` is the one method every scorer must have: a registered class without it
    fails when the decoding builds it, not in the middle of a search."""

    class Incomplete(Scorer):
        pass

    with pytest.raises(TypeError, match="score"):
        Incomplete(ScorerConfig(weight=1.0), model=None)
