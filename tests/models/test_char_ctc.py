"""The character CTC head on the encoder's frames and joint decoding that spells LLM tokens
in its characters (``CTCLabels``)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch

from slamasr.decoding.scorers.ctc import CTCPrefixScorer
from slamasr.models import build_model
from slamasr.models.config import CharCTCConfig, ProjectorConfig
from slamasr.models.ctc import CharCTCHead
from slamasr.models.ctc_labels import CTCLabels
from tests.decoding.helpers import decode_config, generate_ids
from tests.helpers import ctc_paths, make_tiny_batch, make_tiny_tokenizer, tiny_model_config


def _prefix_probability(logp: torch.Tensor, prefix: list[int], exact: bool) -> float:
    """Sum of p(path) over every CTC path whose collapsed class sequence (classes >= 1)
    starts with ``prefix`` (equals it when ``exact``), by enumeration."""
    steps, classes = logp.shape
    total = 0.0
    for path, out in ctc_paths(steps, classes):
        out = [c + 1 for c in out]  # ctc_paths names class c + 1 "token c"
        if (out == prefix) if exact else (out[: len(prefix)] == prefix):
            total += float(logp[range(steps), list(path)].sum().exp())
    return total


def _labels(start: list[list[int]], cont: list[list[int]]) -> CTCLabels:
    def table(rows):
        width = max(len(r) for r in rows)
        t = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            t[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return t, torch.tensor([len(r) for r in rows])

    return CTCLabels(*table(start), *table(cont))


def _check_against_enumeration(psi, logp, lengths, cands, prefixes, spelling, eos) -> None:
    """Each row's scores ``psi`` are the enumerated prefix probabilities of its hypothesis
    ``prefixes[b]`` + each candidate's ``spelling`` (0 for an unspellable one; EOS: exactly
    the hypothesis)."""
    for b, prefix in enumerate(prefixes):
        valid = logp[b, : int(lengths[b])]
        for j, tok in enumerate(cands[b].tolist()):
            got = float(psi[b, j].exp())
            if tok == eos:
                want = _prefix_probability(valid, prefix, exact=True)
            elif not spelling[tok]:
                want = 0.0
            else:
                want = _prefix_probability(valid, prefix + spelling[tok], exact=False)
            assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-9), (b, tok, got, want)


def test_multi_class_tokens_score_the_prefix_probability_of_their_spelling() -> None:
    """A token spelled by several classes (a repeat inside it, a class equal to the one the
    hypothesis ends with, a different spelling at the start) scores log p(CTC output starts
    with the hypothesis' classes + its classes); an unspellable token scores -inf; EOS the
    probability of exactly the hypothesis; padded positions do not count; ``advance`` carries
    the spelled state to the next token."""
    torch.manual_seed(0)
    # classes: 0 blank, 1..3 "characters"; tokens 0..4, token 4 = EOS
    start = [[1], [2, 2], [3, 1], [], [1]]
    cont = [[3, 1], [2, 2], [3], [], [1]]
    labels = _labels(start, cont)
    eos = 4
    logp = torch.log_softmax(torch.randn(2, 5, 4), dim=-1)
    lengths = torch.tensor([5, 4])
    scorer = CTCPrefixScorer(logp, lengths, num_beams=1, eos_id=eos, labels=labels)
    cands = torch.tensor([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]])
    psi, states = scorer.score(cands)
    _check_against_enumeration(psi, logp, lengths, cands, [[], []], start, eos)
    assert scorer.spelled_lengths().tolist() == [[1, 2, 2, 0, 0]] * 2  # EOS spells nothing
    # row 0 takes token 2 (classes 3 1), row 1 takes token 1 (classes 2 2)
    scorer.advance(states, torch.tensor([0, 1]), torch.tensor([2, 1]))
    psi, _ = scorer.score(cands)
    _check_against_enumeration(psi, logp, lengths, cands, [start[2], start[1]], cont, eos)
    assert scorer.spelled_lengths().tolist() == [[4, 4, 3, 2, 2], [4, 4, 3, 2, 2]]


def test_single_class_labels_equal_the_token_head_scoring() -> None:
    """Labels that spell token c as class c + 1 give exactly the token head's scores."""
    torch.manual_seed(1)
    logp = torch.log_softmax(torch.randn(1, 6, 5), dim=-1)
    lengths = torch.tensor([6])
    rows = [[c + 1] for c in range(4)]
    plain = CTCPrefixScorer(logp, lengths, num_beams=1, eos_id=3)
    spelled = CTCPrefixScorer(logp, lengths, num_beams=1, eos_id=3, labels=_labels(rows, rows))
    cands = torch.tensor([[0, 1, 2, 3]])
    for _ in range(2):
        (a, sa), (b, sb) = plain.score(cands), spelled.score(cands)
        torch.testing.assert_close(a, b)
        plain.advance(sa, torch.tensor([0]), torch.tensor([1]))
        spelled.advance(sb, torch.tensor([0]), torch.tensor([1]))


def test_head_encodes_folds_case_and_refuses_foreign_characters() -> None:
    head = CharCTCHead(8, alphabet=" 'abc")
    assert head.encode("Ab c'") == [3, 4, 1, 5, 2]
    assert head.encode("abd") is None and head.encode("a1") is None
    mixed = CharCTCHead(8, alphabet=" aA")
    assert mixed.encode("aA") == [2, 3] and mixed.encode("AA") == [3, 3]
    with pytest.raises(ValueError, match="repeats"):
        CharCTCHead(8, alphabet=" aa")


def test_tokens_spell_with_and_without_their_word_boundary(tmp_path: Path) -> None:
    """A sentencepiece-style tokenizer (its single-token decode drops the boundary space):
    a word-initial token spells " word" inside a hypothesis and "word" at its start;
    special tokens, punctuation and digits are unspellable."""
    tok = make_tiny_tokenizer(tmp_path)
    head = CharCTCHead(8)
    labels = head.spell_tokens(tok, len(tok) + 3)  # ids past the tokenizer: unspellable

    def spelled(table, lens, token):
        return "".join(head.alphabet[c - 1] for c in table[token, : lens[token]].tolist())

    first, rest = tok.tokenize(" red")  # "▁r", "ed"
    word, piece = tok.convert_tokens_to_ids([first, rest])
    assert first == "▁r" and tok.decode([word]) == "r"  # the boundary space is lost alone
    assert spelled(labels.cont, labels.cont_len, word) == " r"
    assert spelled(labels.start, labels.start_len, word) == "r"
    assert spelled(labels.cont, labels.cont_len, piece) == "ed"  # word-internal: no space
    for special in (tok.eos_token_id, tok.bos_token_id, tok.convert_tokens_to_ids(".")):
        assert labels.cont_len[special] == 0 and labels.start_len[special] == 0
    assert labels.cont_len[-3:].tolist() == [0, 0, 0]
    space = tok.convert_tokens_to_ids("▁")  # whitespace only
    assert labels.cont_len[space] == 0 and labels.start_len[space] == 0


def _char_model(
    tmp_path: Path, weight: float = 0.3, ctc_weight: float = 0.5, joint_tokenization: bool = True
):
    cfg = tiny_model_config("fbank", tmp_path)
    cfg.prompt.joint_tokenization = joint_tokenization
    cfg.projector = ProjectorConfig(hidden_dim=64, ctc_weight=ctc_weight)
    cfg.char_ctc = CharCTCConfig(weight=weight, hidden_dim=32, context=1)
    torch.manual_seed(0)
    return build_model(cfg, device="cpu")


def test_model_adds_the_weighted_char_loss_and_trains_the_head(tmp_path: Path, caplog) -> None:
    """loss = ce + 0.5 ctc + 0.3 char_ctc; without the LLM ctc + char_ctc; the head's weights
    get gradients and are saved with the trainable state; a transcript with a character
    outside the alphabet is left out of the character loss, with a warning naming it."""
    model = _char_model(tmp_path)
    assert any(k.startswith("char_ctc.net.") for k in model.trainable_state_dict())
    batch = make_tiny_batch("fbank", num=3, texts=["red dog", "cat sat", "one 2 three"])
    with caplog.at_level(logging.WARNING):
        out = model(batch)
    assert int(out["char_ctc"][1]) == 2
    assert "one 2 three" in caplog.text and "model.char_ctc.alphabet" in caplog.text
    ce, ctc, char = (out[name][0] / out[name][1] for name in ("ce", "ctc", "char_ctc"))
    torch.testing.assert_close(out["loss"], (ce + 0.5 * ctc + 0.3 * char).float())
    only = model(batch, llm_loss=False)
    torch.testing.assert_close(only["loss"], (ctc + char).float())
    only["loss"].backward()
    assert model.char_ctc.net[0].weight.grad is not None
    head = model.char_ctc
    frames, lengths = model.encode(batch)
    want, skipped = head.loss(frames[:2], lengths[:2], batch["texts"][:2])
    assert skipped == 0
    torch.testing.assert_close(char, want.double())


def test_char_joint_decoding_and_probe_run_with_their_own_tags(tmp_path: Path) -> None:
    """``ctc_head=char``: joint decoding gives one hypothesis per utterance and the probe the
    head's best path; tags of their own; refused on a model without the head."""
    from slamasr.decoding import decode_tag

    model = _char_model(tmp_path).eval()
    batch = make_tiny_batch("fbank", num=3)
    char = ["decode.scorers.ctc.weight=0.5", "decode.scorers.ctc.head=char"]
    ids = generate_ids(model, batch, "decode.num_beams=2", "decode.scorers.ctc.pre_beam=4", *char)
    assert len(ids) == 3
    probe = generate_ids(model, batch, "decode.search=ctc", "decode.scorers.ctc.head=char")
    texts = model.char_ctc.greedy(*model.encode(batch))
    assert probe == [model.tokenizer.encode(t, add_special_tokens=False) for t in texts]
    assert decode_tag(decode_config(*char)) == "decode-best-avg1-beam4-charctc0.5"
    probe_cfg = decode_config("decode.search=ctc", "decode.scorers.ctc.head=char")
    assert decode_tag(probe_cfg) == "decode-best-avg1-charctc-greedy"
    plain = _char_model(tmp_path / "plain", weight=0.0)
    with pytest.raises(ValueError, match="model.char_ctc.weight=0"):
        generate_ids(plain, batch, "decode.num_beams=2", *char)


def test_joint_search_spells_what_a_confident_char_head_hears(tmp_path: Path) -> None:
    """With a heavy CTC weight the hypothesis is a token sequence that spells the characters
    the head is sure of, though the random LLM prefers other tokens."""
    model = _char_model(tmp_path).eval()
    batch = make_tiny_batch("fbank", num=2, durations=[0.6, 0.5])
    head = model.char_ctc
    frames, lengths = model.encode(batch)
    texts = ["red dog", "blue cat"]
    peaked = torch.full((2, frames.shape[1], 1 + len(head.alphabet)), -12.0)
    peaked[..., 0] = 0.0
    for b, text in enumerate(texts):
        for i, c in enumerate(head.encode(text)):
            peaked[b, 2 * i, 0], peaked[b, 2 * i, c] = -12.0, 0.0
    model.char_ctc.logits = lambda frames: peaked  # a head that hears exactly ``texts``
    vocab = model.llm.get_input_embeddings().weight.shape[0]
    ids = generate_ids(
        model,
        batch,
        "decode.num_beams=3",
        "decode.scorers.ctc.weight=0.9",
        f"decode.scorers.ctc.pre_beam={vocab - 1}",
        "decode.scorers.ctc.head=char",
    )
    got = [model.tokenizer.decode(i, skip_special_tokens=True).strip().lower() for i in ids]
    assert got == texts


def test_label_bonus_favours_hypotheses_that_spell_more(tmp_path: Path) -> None:
    """A uniform character head makes every extra letter cost log(1/C): without a bonus the
    search prefers short spellings, with a per-letter bonus above that cost long ones."""
    model = _char_model(tmp_path).eval()
    batch = make_tiny_batch("fbank", num=3, durations=[0.6, 0.5, 0.4])
    classes = 1 + len(model.char_ctc.alphabet)
    model.char_ctc.logits = lambda frames: torch.zeros(*frames.shape[:2], classes)
    char = ["decode.num_beams=3", "decode.scorers.ctc.weight=0.5", "decode.scorers.ctc.head=char"]

    def letters(bonus: float) -> int:
        ids = generate_ids(model, batch, *char, f"decode.scorers.ctc.label_bonus={bonus}")
        return sum(len(model.tokenizer.decode(i, skip_special_tokens=True)) for i in ids)

    assert letters(2 * math.log(classes)) > letters(0.0)
