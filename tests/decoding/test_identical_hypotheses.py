"""Same recogs before and after the decoding redesign (issue 19).

A tiny random model (seed fixed) with the projector's token CTC head and the character CTC
head decodes one batch under every decoding the toolkit offers; the token ids and texts each
yields are compared with ``identical_hypotheses.json``, recorded from the code before the
redesign. Regenerate only on purpose: ``SLAMASR_WRITE_GOLDEN=1 pytest <this file>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from slamasr.config import load_config
from slamasr.decoding import decode_batch
from slamasr.models import build_model
from slamasr.models.config import CharCTCConfig, ProjectorConfig
from tests.helpers import make_tiny_batch, tiny_model_config

GOLDEN = Path(__file__).with_name("identical_hypotheses.json")
WORDS = (
    "mom mum my me mime memo mirror murmur merry mammal my am him rum rim ram army "
    "marry mummy memory mermaid yum"
).split()
COMMON = ["decode.min_new_tokens_bound=12"]
CHAR = [
    "decode.scorers.ctc.weight=0.5",
    "decode.scorers.ctc.head=char",
    "decode.scorers.ctc.pre_beam=4",
]
WORD_PRIOR = ["decode.scorers.word_prior.path={words}", "decode.scorers.word_prior.weight=0.5"]
# name -> decode overrides (``{words}``: the word-count file)
DECODINGS: dict[str, list[str]] = {
    "paper-beam4": [],
    "paper-greedy": ["decode.num_beams=1"],
    "paper-penalties": ["decode.length_penalty=0.5", "decode.repetition_penalty=1.3"],
    "hf-beam4": ["decode.search=hf"],
    "probe-token": ["decode.search=ctc"],
    "probe-char": ["decode.search=ctc", "decode.scorers.ctc.head=char"],
    "token-ctc0.3": ["decode.scorers.ctc.weight=0.3"],
    "token-ctc0.3-no-proposals": [
        "decode.scorers.ctc.weight=0.3",
        "decode.scorers.ctc.proposals=false",
    ],
    "char-no-proposals": CHAR + ["decode.scorers.ctc.proposals=false"],
    "char-proposals-bonus": CHAR + ["decode.scorers.ctc.label_bonus=2.0"],
    "char-words": CHAR + ["decode.scorers.ctc.label_bonus=2.0"] + WORD_PRIOR,
    "char-words-corrections": CHAR
    + ["decode.scorers.ctc.label_bonus=2.0", "decode.scorers.word_prior.corrections=3"]
    + WORD_PRIOR
    + [
        "decode.scorers.word_prior.bonus=1.0",
        "decode.scorers.word_prior.oov=-15",
        "decode.scorers.word_prior.max_words=18",
    ],
    "char-words-corrections-sound-alikes": CHAR
    + ["decode.scorers.ctc.label_bonus=2.0", "decode.scorers.word_prior.corrections=3"]
    + WORD_PRIOR
    + ["decode.scorers.word_prior.sound_alikes=3"],
    "char-words-corrections-sound-alikes-lm": CHAR
    + ["decode.scorers.ctc.label_bonus=2.0", "decode.scorers.word_prior.corrections=3"]
    + WORD_PRIOR
    + ["decode.scorers.word_prior.sound_alikes=3", "decode.rescorers.lm.weight=0.3"],
    "paper-lm": ["decode.rescorers.lm.weight=0.3"],
    "token-ctc0.3-lm-greedy": [
        "decode.scorers.ctc.weight=0.3",
        "decode.rescorers.lm.weight=2.0",
        "decode.num_beams=1",
    ],
}


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``{decoding: {"ids": [...], "texts": [...]}}`` of one batch of three utterances."""
    tmp = tmp_path_factory.mktemp("identical")
    cfg = tiny_model_config("fbank", tmp)
    cfg.projector = ProjectorConfig(hidden_dim=64, ctc_weight=0.5)
    cfg.char_ctc = CharCTCConfig(weight=0.3, hidden_dim=32, context=1)
    torch.manual_seed(0)
    model = build_model(cfg, device="cpu").eval()
    words = tmp / "words.tsv"
    words.write_text("".join(f"{w}\t{100 - i}\n" for i, w in enumerate(WORDS)), encoding="utf-8")
    batch = make_tiny_batch("fbank", num=3, durations=[0.6, 0.5, 0.4])
    seen: list[list[list[int]]] = []
    decode_ids = model.tokenizer.batch_decode

    def spy(ids: Any, **kwargs: Any) -> list[str]:
        seen.append([list(map(int, row)) for row in ids])
        return decode_ids(ids, **kwargs)

    model.tokenizer.batch_decode = spy
    out = {}
    for name, overrides in DECODINGS.items():
        sets = [o.format(words=words) for o in COMMON + overrides]
        dcfg = load_config(None, sets, validate=False).decode
        dcfg.validate()
        seen.clear()
        hyps = decode_batch(model, batch, dcfg, torch.device("cpu"))
        texts = [hyps[c] for c in batch["cut_ids"]]
        out[name] = {"ids": seen[-1], "texts": texts}  # generate() decodes its ids last
    return out


def test_every_decoding_gives_the_recorded_hypotheses(decoded: dict[str, Any]) -> None:
    """Token ids and texts of every decoding equal those recorded before the redesign."""
    if os.environ.get("SLAMASR_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(decoded, indent=1) + "\n", encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert set(golden) == set(DECODINGS)
    for name in DECODINGS:
        assert decoded[name] == golden[name], name


def test_the_recorded_decodings_differ(decoded: dict[str, Any]) -> None:
    """The golden file is no degenerate check: the extensions change the hypotheses."""
    distinct = {json.dumps(d["ids"]) for d in decoded.values()}
    assert len(distinct) >= len(DECODINGS) // 2
    for a, b in [
        ("paper-beam4", "paper-greedy"),
        ("paper-beam4", "token-ctc0.3"),
        ("char-no-proposals", "char-proposals-bonus"),
        ("char-proposals-bonus", "char-words"),
        ("char-words", "char-words-corrections-sound-alikes"),
    ]:
        assert decoded[a]["ids"] != decoded[b]["ids"], (a, b)
