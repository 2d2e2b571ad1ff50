"""The projector's auxiliary CTC loss against the frozen LLM's token embeddings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from slamasr.models import build_model
from slamasr.models.ctc import TokenCTCHead
from tests.decoding.helpers import decode_config, generate_ids
from tests.helpers import ctc_paths, make_tiny_batch, tiny_model_config


def _brute_force_ctc(logp: torch.Tensor, target: list[int]) -> float:
    """-log of the summed probability of every path (classes 0 = blank, 1.. = tokens + 1)
    that collapses to ``target`` (token ids), by enumerating all paths."""
    steps, classes = logp.shape
    total = -math.inf
    for path, collapsed in ctc_paths(steps, classes):
        if collapsed == target:
            path_logp = logp[range(steps), path].sum().detach()
            total = float(torch.logaddexp(torch.tensor(total), path_logp))
    return -total


def test_loss_is_ctc_over_blank_plus_token_classes_per_target_token() -> None:
    """Class 0 is the learned blank, class i+1 is token i; loss per utterance / target length,
    averaged over utterances; checked against an enumeration of all paths."""
    torch.manual_seed(0)
    head = TokenCTCHead(dim=6, init_scale=3.0)
    embedding = torch.randn(4, 6)  # V = 4 tokens
    speech = torch.randn(2, 4, 6)
    lengths = torch.tensor([4, 3])
    targets = [[2, 2], [3]]  # a repeat needs a blank between; the second uses 3 positions
    loss = head.loss(speech, lengths, targets, embedding)
    logp = torch.log_softmax(head.logits(speech, embedding), dim=-1)  # (2, 4, 5)
    expected = [
        _brute_force_ctc(logp[0, :4], targets[0]) / 2,
        _brute_force_ctc(logp[1, :3], targets[1]) / 1,
    ]
    torch.testing.assert_close(loss, torch.tensor(sum(expected) / 2), atol=1e-4, rtol=1e-4)


def test_sampled_classes_hold_every_target_and_score_only_those_tokens() -> None:
    """num_classes=C: the loss is CTC over the blank + C tokens (all targets + random
    others, unique), equal to the brute force over that restricted softmax; C >= V is the
    full vocabulary."""
    torch.manual_seed(0)
    head = TokenCTCHead(dim=6, init_scale=3.0, num_classes=4)
    embedding = torch.randn(50, 6)
    speech = torch.randn(1, 3, 6)
    targets = [[41, 7]]
    torch.manual_seed(5)
    classes = head._sample_classes(torch.tensor(targets[0]), 50)
    assert classes.numel() == 4 and len(set(classes.tolist())) == 4
    assert {41, 7} <= set(classes.tolist())
    torch.manual_seed(5)
    loss = head.loss(speech, torch.tensor([3]), targets, embedding)
    logp = torch.log_softmax(head.logits(speech, embedding, classes), dim=-1)[0]
    local = [classes.tolist().index(t) for t in targets[0]]
    torch.testing.assert_close(
        loss, torch.tensor(_brute_force_ctc(logp, local) / 2), atol=1e-4, rtol=1e-4
    )
    head.num_classes = 50
    full = TokenCTCHead(dim=6, init_scale=3.0)
    full.load_state_dict(head.state_dict())
    torch.testing.assert_close(
        head.loss(speech, torch.tensor([3]), targets, embedding),
        full.loss(speech, torch.tensor([3]), targets, embedding),
    )


def test_logits_are_scaled_cosines_and_ignore_speech_scale() -> None:
    torch.manual_seed(0)
    head = TokenCTCHead(dim=8, init_scale=5.0)
    embedding = torch.randn(10, 8)
    speech = torch.randn(1, 3, 8)
    logits = head.logits(speech, embedding)
    assert logits.shape == (1, 3, 11)
    assert float(logits.abs().max()) <= 5.0 + 1e-5
    torch.testing.assert_close(head.logits(7.0 * speech, embedding), logits)
    unit = torch.nn.functional.normalize(speech, dim=-1)
    cos = unit @ torch.nn.functional.normalize(embedding, dim=-1).T
    torch.testing.assert_close(logits[..., 1:], 5.0 * cos)


def test_too_short_or_empty_targets_give_a_finite_loss() -> None:
    head = TokenCTCHead(dim=4)
    embedding = torch.randn(5, 4)
    speech = torch.randn(2, 2, 4, requires_grad=True)
    loss = head.loss(speech, torch.tensor([2, 2]), [[1, 2, 3], []], embedding)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(speech.grad).all()
    assert float(head.loss(speech, torch.tensor([2, 2]), [[], []], embedding)) == 0.0


def test_head_learns_a_toy_mapping_and_greedy_reads_it_back() -> None:
    """Frames that each carry a token's identity (silence frames around) are mapped through a
    trained linear layer; after training, best-path decoding returns the token sequences."""
    torch.manual_seed(0)
    vocab, dim, feat = 12, 16, 32
    embedding = torch.randn(vocab, dim)
    codes = torch.randn(vocab + 1, feat)  # code 0 = silence
    proj = torch.nn.Linear(feat, dim)
    head = TokenCTCHead(dim)
    opt = torch.optim.Adam([*proj.parameters(), *head.parameters()], lr=0.05)
    gen = torch.Generator().manual_seed(1)

    def sample(n: int) -> tuple[torch.Tensor, list[list[int]]]:
        seqs = [torch.randperm(vocab, generator=gen)[:4].tolist() for _ in range(n)]
        frames = [[0] + [t + 1 for t in seq] + [0] for seq in seqs]
        return codes[torch.tensor(frames)], seqs

    for _ in range(200):
        x, seqs = sample(16)
        loss = head.loss(proj(x), torch.full((16,), 6), seqs, embedding)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, seqs = sample(8)
    assert head.greedy(proj(x), torch.full((8,), 6), embedding) == seqs


def _ctc_model(tmp_path: Path, weight: float):
    cfg = tiny_model_config("fbank", tmp_path)
    cfg.projector.ctc_weight = weight
    torch.manual_seed(0)
    return build_model(cfg, device="cpu")


def test_model_loss_adds_weighted_ctc_and_ctc_only_skips_the_llm(tmp_path: Path) -> None:
    model = _ctc_model(tmp_path, weight=0.5)
    assert "projector.ctc.blank" in model.trainable_state_dict()
    batch = make_tiny_batch("fbank", num=3)
    out = model(batch)
    ce, ctc = (out[name][0] / out[name][1] for name in ("ce", "ctc"))
    torch.testing.assert_close(out["loss"], (ce + 0.5 * ctc).float())
    assert int(out["ctc"][1]) == 3 and int(out["ce"][1]) > 0

    calls = []
    hook = model.llm.register_forward_pre_hook(lambda *a, **k: calls.append(1))
    base = model.llm.get_decoder()
    hook2 = base.register_forward_pre_hook(lambda *a, **k: calls.append(1))
    only = model(batch, llm_loss=False)
    hook.remove()
    hook2.remove()
    assert calls == [] and set(only) == {"loss", "ctc"} == {"loss", *model.stat_names(False)}
    torch.testing.assert_close(only["loss"], ctc.float())
    only["loss"].backward()
    grads = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None}
    assert grads == {"projector"} and model.projector.ctc.blank.grad is not None


def test_ctc_only_without_the_head_is_refused(tiny_fbank_model) -> None:
    with pytest.raises(ValueError, match="ctc_weight"):
        tiny_fbank_model(make_tiny_batch("fbank", num=1), llm_loss=False)


def test_ctc_only_warmup_steps_then_joint_training(tmp_path: Path) -> None:
    """``train.ctc_only_steps``: the first steps log a CTC loss and no LLM accuracy, later
    steps both; the checkpoint holds the CTC head; the frozen LLM is untouched."""
    from slamasr.distributed import DistInfo
    from slamasr.training import checkpoint as ckpt
    from slamasr.training.run import prepare_exp_dir, run_training
    from tests.training.train_double import small_config

    model = _ctc_model(tmp_path / "models", weight=0.5)
    frozen = {n: p.clone() for n, p in model.llm.named_parameters()}
    batches = [make_tiny_batch("fbank", num=2, seed=s) for s in (0, 1)]
    exp = tmp_path / "exp"
    prepare_exp_dir(exp, resume=False, overwrite=False, is_main=True)
    cfg = small_config(max_steps=4, grad_accum=1, ctc_only_steps=2, valid_interval=2)
    state = run_training(cfg, exp, model, batches, batches, torch.device("cpu"), DistInfo())
    assert [("acc" in h, "ctc" in h) for h in state.history] == [
        (False, True),
        (False, True),
        (True, True),
        (True, True),
    ]
    # the validation at the end of the warm-up runs no LLM, so it cannot be "best"
    assert [sorted(v) for v in state.valid_history] == [
        ["ctc", "step"],
        ["acc", "ctc", "loss", "step"],
    ]
    assert state.best_step == 4
    saved = ckpt.load_trainable(exp / "checkpoints" / "step-4")
    assert {"projector.ctc.blank", "projector.ctc.log_scale"} <= set(saved)
    for name, p in model.llm.named_parameters():
        assert torch.equal(p, frozen[name]), name


def test_ctc_probe_decoding_reads_the_head_without_the_llm(tmp_path: Path) -> None:
    """``search="ctc"``: best path of the head per utterance, no LLM forward; a tag of its
    own; refused without the head."""
    from slamasr.decoding import decode_tag

    model = _ctc_model(tmp_path, weight=0.5).eval()
    batch = make_tiny_batch("fbank", num=3)
    calls = []
    hook = model.llm.get_decoder().register_forward_pre_hook(lambda *a, **k: calls.append(1))
    ids = generate_ids(model, batch, "decode.search=ctc")
    hook.remove()
    assert calls == []
    speech, lengths = model.embed_speech(batch)
    embedding = model.llm.get_input_embeddings().weight
    assert ids == model.projector.ctc.greedy(speech, lengths, embedding) and len(ids) == 3
    assert decode_tag(decode_config("decode.search=ctc")) == "decode-best-avg1-ctc-greedy"


def test_ctc_probe_without_the_head_is_refused(tiny_fbank_model) -> None:
    with pytest.raises(ValueError, match="ctc_weight=0"):
        generate_ids(tiny_fbank_model, make_tiny_batch("fbank", num=1), "decode.search=ctc")


def test_joint_ctc_decoding_runs_beside_the_llm_and_is_refused_where_it_cannot(
    tmp_path: Path, tiny_fbank_model
) -> None:
    """``decode.scorers.ctc.weight``: one hypothesis per utterance, its own decode tag; a
    model without the head, ``search=hf`` and a weight outside [0, 1) are refused with the
    key."""
    from slamasr.decoding import decode_tag
    from slamasr.decoding.scorers import build_scorers

    model = _ctc_model(tmp_path, weight=0.5).eval()
    batch = make_tiny_batch("fbank", num=3)
    joint = ["decode.num_beams=2", "decode.scorers.ctc.weight=0.5"]
    ids = generate_ids(model, batch, *joint, "decode.scorers.ctc.pre_beam=4")
    assert len(ids) == 3
    ctc = decode_config("decode.scorers.ctc.weight=0.3")
    assert decode_tag(ctc) == "decode-best-avg1-beam4-ctc0.3"
    assert decode_tag(decode_config("decode.scorers.ctc.weight=0")) == "decode-best-avg1-beam4"
    with pytest.raises(ValueError, match="model.projector.ctc_weight=0"):
        generate_ids(tiny_fbank_model, batch, *joint)
    scorers = build_scorers(ctc.scorers, model)
    with pytest.raises(ValueError, match="search=native"):
        model.generate_ids(batch, num_beams=2, search="hf", scorers=scorers)
    for bad in (
        ["decode.scorers.ctc.weight=1.0"],
        ["decode.scorers.ctc.weight=0.3", "decode.search=hf"],
    ):
        with pytest.raises(ValueError, match="decode.scorers.ctc.weight"):
            decode_config(*bad)
