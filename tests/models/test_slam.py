"""SlamASR: loss/masks, frozen parts, autocast, overfitting, batch-invariant decoding."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from slamasr.decoding.rescore import LMRescoreConfig, LMRescorer, rescore_nbest, text_logp
from slamasr.models import SlamASR, count_parameters
from slamasr.models.llm import DEFAULT_PROMPT_LIBRARY
from tests.helpers import make_tiny_batch, make_tiny_model, select_items


def test_forward_shapes_masks_and_supervised_tokens(tiny_fbank_model: SlamASR) -> None:
    """Loss covers exactly transcript tokens + EOS; padding is right-side with 0.. positions."""
    model = tiny_fbank_model
    batch = make_tiny_batch("fbank", num=3)
    inputs = model.build_inputs(batch, with_targets=True, left_pad=False)
    targets = [model.template.target_ids(t) for t in batch["texts"]]
    assert [int((lab != -100).sum()) for lab in inputs["labels"]] == [len(t) for t in targets]
    assert all(t[-1] == model.tokenizer.eos_token_id for t in targets)
    mask, pos = inputs["attention_mask"], inputs["position_ids"]
    n = int(mask[2].sum())
    assert mask[2, :n].all() and not mask[2, n:].any()
    assert pos[2, :n].tolist() == list(range(n))
    speech = batch["input_lengths"] // 5
    prefix = len(model.template.pieces("Transcribe speech to text.").prefix)
    suffix = len(model.template.pieces("Transcribe speech to text.").suffix)
    assert n == prefix + int(speech[2]) + suffix + len(targets[2])
    out = model(batch)
    (ce_sum, tokens), (correct, same_tokens) = out["ce"], out["correct"]
    assert int(tokens) == int(same_tokens) == sum(len(t) for t in targets)
    assert 0 <= correct <= tokens and out["loss"].dim() == 0
    assert set(out) == {"loss", "ce", "correct"} and model.stat_names() == ["ce", "correct"]
    torch.testing.assert_close(out["loss"], (ce_sum / tokens).float())  # the paper: CE alone


def test_supervised_logits_equal_full_logits(tiny_fbank_model: SlamASR) -> None:
    """The gathered-head loss equals CE over the full logits at the same positions."""
    model = tiny_fbank_model
    batch = make_tiny_batch("fbank", num=2)
    out = model(batch)
    inputs = model.build_inputs(batch, with_targets=True, left_pad=False)
    labels = inputs.pop("labels")
    logits = model.llm(**inputs).logits[:, :-1]  # (B, L-1, V)
    ref = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:])
    torch.testing.assert_close(out["loss"], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoder", ["whisper", "hubert"])
def test_only_projector_gets_gradients(tmp_path: Path, encoder: str) -> None:
    model = make_tiny_model(encoder, tmp_path)
    model.train()
    assert not model.llm.training and not model.encoder.training and model.projector.training
    model(make_tiny_batch(encoder, num=2))["loss"].backward()
    with_grad = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {"projector"}
    assert count_parameters(model, trainable_only=True) == count_parameters(model.projector)
    assert set(model.trainable_state_dict()) == {
        "projector." + k for k in model.projector.state_dict()
    }


def test_bf16_autocast_forward_backward(tiny_fbank_model: SlamASR) -> None:
    model = copy.deepcopy(tiny_fbank_model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(make_tiny_batch("fbank", num=2))
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.projector.net[0].weight.grad is not None


def test_encoder_cache_batch_matches_inputs(tiny_fbank_model: SlamASR) -> None:
    """A batch holding encoder_frames gives the same loss as one holding inputs."""
    batch = make_tiny_batch("fbank", num=2)
    frames, lengths = tiny_fbank_model.encode(batch)
    cached = {k: v for k, v in batch.items() if k not in ("inputs", "input_lengths")}
    cached.update(encoder_frames=frames, encoder_frame_lengths=lengths)
    torch.testing.assert_close(tiny_fbank_model(cached)["loss"], tiny_fbank_model(batch)["loss"])


def _overfit(model: SlamASR, batch: dict, steps: int) -> list[float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.trainable_parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


@pytest.fixture(scope="module")
def overfit(tmp_path_factory: pytest.TempPathFactory) -> tuple[SlamASR, dict, list[float]]:
    """A tiny fbank model trained 60 steps on 4 utterances."""
    model = make_tiny_model("fbank", tmp_path_factory.mktemp("overfit"))
    batch = make_tiny_batch("fbank", num=4, durations=[0.6, 0.45, 0.3, 0.5])
    return model, batch, _overfit(model, batch, steps=60)


def test_loss_decreases_when_overfitting(overfit: tuple) -> None:
    model, batch, losses = overfit
    assert losses[-1] < 0.15 * losses[0], losses[::10]
    correct, tokens = model(batch)["correct"]
    assert correct >= 0.8 * tokens


@pytest.mark.parametrize("num_beams", [4, 1])
def test_decoding_is_batch_invariant(overfit: tuple, num_beams: int) -> None:
    """Each utterance decodes to the same tokens alone and in a (left-padded) batch."""
    model, batch, _ = overfit
    together = model.generate_ids(batch, num_beams=num_beams, min_new_tokens_bound=12)
    for i in range(len(batch["texts"])):
        alone = model.generate_ids(
            select_items(batch, [i]), num_beams=num_beams, min_new_tokens_bound=12
        )
        assert alone[0] == together[i], (i, alone[0], together[i])
    reversed_order = model.generate_ids(
        select_items(batch, [3, 2, 1, 0]), num_beams=num_beams, min_new_tokens_bound=12
    )
    assert reversed_order == together[::-1]
    hyps = model.generate(batch, num_beams=num_beams, min_new_tokens_bound=12)
    assert sum(h == t for h, t in zip(hyps, batch["texts"])) >= 3, (hyps, batch["texts"])


def test_text_logp_is_the_llms_own_text_probability(tiny_fbank_model: SlamASR) -> None:
    """The LLM read as a text LM: BOS, the tokens, EOS; mean log-prob per scored token, the
    same alone and in a padded batch."""
    model = tiny_fbank_model
    tok = model.tokenizer
    hyps = [tok.encode("hello world", add_special_tokens=False), [], [5, 9, 7, 3, 8, 2, 6]]
    got = text_logp(model, hyps)
    eos = tok.eos_token_id if tok.eos_token_id is not None else model.template.eos_id
    bos = tok.bos_token_id if tok.bos_token_id is not None else eos
    for hyp, value in zip(hyps, got):
        ids = torch.tensor([[bos] + hyp + [eos]])
        with torch.no_grad():
            logp = torch.log_softmax(model.llm(input_ids=ids).logits[0, :-1].float(), dim=-1)
        want = logp.gather(1, ids[0, 1:, None]).mean().item()
        assert value == pytest.approx(want, abs=1e-4)
        assert text_logp(model, [hyp]) == pytest.approx([want], abs=1e-4)
    assert text_logp(model, hyps, chunk=2) == pytest.approx(got, abs=1e-4)
    assert text_logp(model, []) == []


def test_rescore_nbest_adds_the_weighted_text_logp(tiny_fbank_model: SlamASR) -> None:
    model = tiny_fbank_model
    hyps = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    search = [-1.0, -1.5, -1.6]
    lm = text_logp(model, hyps)
    nbest = [list(zip(search, hyps)), [], [(-2.0, hyps[2])]]

    def rescored(weight: float) -> list[list[int]]:
        return rescore_nbest(nbest, [LMRescorer(LMRescoreConfig(weight=weight), model)])

    assert rescored(0.0) == [hyps[0], [], hyps[2]]  # the search's order
    for weight in (0.3, 5.0, 1e6):
        total = [s + weight * v for s, v in zip(search, lm)]
        assert rescored(weight)[0] == hyps[total.index(max(total))]
    # a large weight leaves the choice to the LLM's text probability alone
    assert rescored(1e6)[0] == hyps[lm.index(max(lm))]
    assert lm.index(max(lm)) != 0  # the text LM disagrees with the search here


def test_generate_with_lm_rescoring(overfit: tuple) -> None:
    """With a weight of 0+ the rescored search returns the search's best; with a large
    weight the n-best hypothesis the LLM likes most as text; search=hf has no n-best."""
    model, batch, _ = overfit

    def rescorers(weight: float) -> list[LMRescorer]:
        return [LMRescorer(LMRescoreConfig(weight=weight), model)]

    plain = model.generate_ids(batch, num_beams=4, min_new_tokens_bound=12)
    tiny = model.generate_ids(
        batch, num_beams=4, min_new_tokens_bound=12, rescorers=rescorers(1e-9)
    )
    assert tiny == plain
    heavy = model.generate_ids(
        batch, num_beams=4, min_new_tokens_bound=12, rescorers=rescorers(1e6)
    )
    assert len(heavy) == len(plain)
    with pytest.raises(ValueError, match="search=native"):
        model.generate_ids(batch, num_beams=2, search="hf", rescorers=rescorers(0.5))


@pytest.mark.parametrize("num_beams", [4, 1])
def test_absolute_position_llm_decodes_batch_invariantly(tmp_path: Path, num_beams: int) -> None:
    """With learned absolute positions (GPT-2), left padding needs mask-derived position ids;
    a RoPE model would hide an offset, so this guards the position-id contract."""
    model = make_tiny_model("fbank", tmp_path, llm="gpt2")
    batch = make_tiny_batch("fbank", num=3, durations=[0.6, 0.2, 0.4])
    kwargs = {"num_beams": num_beams, "min_new_tokens_bound": 6}
    together = model.generate_ids(batch, **kwargs)
    alone = [model.generate_ids(select_items(batch, [i]), **kwargs)[0] for i in range(3)]
    assert alone == together
    assert model(batch)["loss"].isfinite()


def test_generate_respects_duration_bound(tiny_fbank_model: SlamASR) -> None:
    """An untrained model babbles; every hypothesis stops at its own duration bound."""
    batch = make_tiny_batch("fbank", num=2, durations=[0.5, 2.0])
    ids = tiny_fbank_model.generate_ids(
        batch, num_beams=2, max_new_tokens_per_second=5.0, min_new_tokens_bound=3
    )
    assert len(ids[0]) <= 3 and len(ids[1]) <= 10
    assert len(ids[1]) > 3  # the longer bound is used for the batch (model never says EOS)


def test_chat_template_has_no_hidden_system_prompt(tmp_path: Path) -> None:
    """A SmolLM2-style template's default system prompt never reaches the LLM."""
    model = make_tiny_model("fbank", tmp_path, template="chat")
    template = model.template
    text = template.render_chat("Transcribe speech to text.")
    assert "SmolLM" not in text and text.startswith("<|im_start|>system\n<|im_end|>")
    pieces = template.pieces("Transcribe speech to text.")
    decoded = model.tokenizer.decode(pieces.prefix + pieces.suffix)
    assert "SmolLM" not in decoded and "assistant" in decoded
    start = model.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert pieces.prefix.count(start) == 2 and pieces.suffix.count(start) == 1
    assert model(make_tiny_batch("fbank", num=2))["loss"].isfinite()


def test_prompt_modes(tiny_fbank_model: SlamASR) -> None:
    """none/long/random prompts; random at inference is fixed per cut id."""
    template = copy.copy(tiny_fbank_model.template)
    template.cfg = copy.deepcopy(template.cfg)
    template.cfg.mode = "none"
    assert template.prompt_text(training=True) == ""
    template.cfg.mode = "long"
    assert template.prompt_text(training=True) == template.cfg.long_text
    template.cfg.mode = "random"
    assert len(set(DEFAULT_PROMPT_LIBRARY)) == 10
    drawn = {template.prompt_text(training=True) for _ in range(200)}
    assert drawn == set(DEFAULT_PROMPT_LIBRARY)
    assert template.prompt_text(False, "cut-7") == template.prompt_text(False, "cut-7")


def test_trainable_state_roundtrip(tiny_fbank_model: SlamASR, tmp_path: Path) -> None:
    other = make_tiny_model("fbank", tmp_path, seed=5)
    other.load_trainable_state_dict(tiny_fbank_model.trainable_state_dict())
    batch = make_tiny_batch("fbank", num=2)
    torch.testing.assert_close(other(batch)["loss"], tiny_fbank_model(batch)["loss"])
    with pytest.raises(KeyError):
        other.load_trainable_state_dict({"projector.bogus": torch.zeros(1)})
