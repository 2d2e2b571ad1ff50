"""The batched beam search against a plain, cache-free search written out in the test."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from slamasr.decoding import DecodeConfig
from slamasr.decoding.scorers.ctc import CTCConfig, CTCPrefixScorer, CTCScorer
from slamasr.decoding.search import beam_search
from slamasr.models.ctc_labels import CTCLabels
from slamasr.models.slam import bound_hit_flags, new_token_bounds, pad_sequences
from tests.helpers import ctc_paths

VOCAB, EOS = 12, 3


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def llm(request: pytest.FixtureRequest) -> torch.nn.Module:
    """Tiny random LMs with a 12-token vocabulary, so EOS competes often: Llama (RoPE,
    grouped KV heads) and GPT-2 (learned absolute positions: wrong position ids show)."""
    torch.manual_seed(0)
    if request.param == "llama":
        cfg = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            eos_token_id=EOS,
            attn_implementation="eager",
        )
        model = LlamaForCausalLM(cfg).eval()
    else:
        cfg = GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128, eos_token_id=EOS
        )
        model = GPT2LMHeadModel(cfg).eval()
        with torch.no_grad():  # make positions matter as much as content
            model.transformer.wpe.weight.mul_(20.0)
    with torch.no_grad():  # sharper distributions than the default init: clearer winners
        model.get_output_embeddings().weight.mul_(8.0)
    return model


def prompts(seed: int, lengths: list[int]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 32, generator=gen) for n in lengths]


def naive_search(
    llm: LlamaForCausalLM,
    prompt: torch.Tensor,
    bound: int,
    beams: int,
    length_penalty: float = 1.0,
    repetition_penalty: float = 1.0,
) -> list[int]:
    """One utterance, no cache, no padding: every step reruns the whole sequence."""
    embed = llm.get_input_embeddings()
    running = [(0.0, [])]  # (sum log-prob, tokens)
    finished: list[tuple[float, list[int]]] = []
    for step in range(bound):
        length = step + 1
        cands = []
        for score, toks in running:
            ids = torch.tensor(toks, dtype=torch.long)
            seq = torch.cat([prompt, embed(ids)], dim=0)[None]
            with torch.no_grad():
                logits = llm(inputs_embeds=seq).logits[0, -1].float()
            for tok in set(toks):
                value, pen = logits[tok], repetition_penalty
                logits[tok] = value / pen if value > 0 else value * pen
            logp = torch.log_softmax(logits, dim=-1)
            cands += [(score + float(logp[v]), toks, v) for v in range(VOCAB)]
        cands.sort(key=lambda c: -c[0])  # stable: earlier beam, lower token first on ties
        chosen = []
        for rank, (score, toks, tok) in enumerate(cands[: 2 * beams]):
            if tok == EOS:
                if rank < beams:
                    finished.append((score / length**length_penalty, toks))
                continue
            if len(chosen) < beams:
                chosen.append((score, toks + [tok]))
        finished = sorted(finished, key=lambda f: -f[0])[:beams]
        if length >= bound:
            finished += [(s / length**length_penalty, t) for s, t in chosen]
            break
        if len(finished) >= beams and finished[-1][0] >= chosen[0][0] / length**length_penalty:
            break
        running = chosen
    return max(finished, key=lambda f: f[0])[1] if finished else []


def ctc_scorer(
    logp: torch.Tensor,
    lengths: torch.Tensor,
    beams: int,
    weight: float,
    pre_beam: int = 8,
    extra: list[list[int]] | None = None,
    labels: CTCLabels | None = None,
    **kwargs,
) -> CTCScorer:
    """The CTC scorer started on ``logp`` (``extra``: its proposals per utterance)."""
    scorer = CTCScorer(CTCConfig(weight=weight, pre_beam=pre_beam, **kwargs), model=None)
    scorer.begin(logp, lengths, beams, EOS, labels, best=extra)
    return scorer


def batched(llm, seqs, bounds, beams, **kwargs) -> list[list[int]]:
    labels = [torch.zeros(s.shape[0], dtype=torch.long) for s in seqs]
    inputs = pad_sequences(seqs, labels, left_pad=True)
    return beam_search(
        llm,
        inputs["inputs_embeds"],
        inputs["attention_mask"],
        inputs["position_ids"],
        bounds,
        num_beams=beams,
        eos_id=EOS,
        **kwargs,
    )


@pytest.mark.parametrize("beams", [1, 2, 4])
def test_matches_cache_free_search_per_utterance(llm, beams: int) -> None:
    seqs = prompts(beams, [5, 9, 3, 7, 6, 4])
    bounds = [6, 2, 9, 1, 7, 5]
    got = batched(llm, seqs, bounds, beams)
    want = [naive_search(llm, s, b, beams) for s, b in zip(seqs, bounds)]
    assert got == want
    assert all(len(h) <= b for h, b in zip(got, bounds))
    # some finish on EOS before their bound, some at it: both paths are exercised
    assert any(len(h) < b for h, b in zip(got, bounds)), got
    assert any(len(h) == b for h, b in zip(got, bounds)), got


@pytest.mark.parametrize(("length_penalty", "repetition_penalty"), [(0.5, 1.0), (1.0, 1.6)])
def test_penalties_match_cache_free_search(llm, length_penalty, repetition_penalty) -> None:
    seqs = prompts(7, [4, 8, 6])
    bounds = [8, 8, 5]
    kw = {"length_penalty": length_penalty, "repetition_penalty": repetition_penalty}
    got = batched(llm, seqs, bounds, 3, **kw)
    want = [naive_search(llm, s, b, 3, **kw) for s, b in zip(seqs, bounds)]
    assert got == want


def test_batch_order_and_membership_do_not_matter(llm) -> None:
    seqs = prompts(11, [6, 3, 8, 5, 7])
    bounds = [7, 3, 9, 1, 6]
    together = batched(llm, seqs, bounds, 4)
    alone = [batched(llm, [s], [b], 4)[0] for s, b in zip(seqs, bounds)]
    assert together == alone
    order = [4, 2, 0, 3, 1]
    shuffled = batched(llm, [seqs[i] for i in order], [bounds[i] for i in order], 4)
    assert shuffled == [together[i] for i in order]


@pytest.mark.parametrize("beams", [1, 4])
def test_nbest_lists_the_finished_hypotheses_best_first(llm, beams: int) -> None:
    """With nbest=True each utterance gets its finished hypotheses (score, tokens), best
    first, at most one per beam; the first is what the search returns without it, and each
    score is the length-normalized LLM log-probability of its tokens + EOS (or of its tokens
    alone when it stopped at the bound)."""
    seqs = prompts(7, [5, 8, 4])
    bounds = [6, 8, 3]
    best = batched(llm, seqs, bounds, beams)
    found = batched(llm, seqs, bounds, beams, nbest=True)
    assert [f[0][1] for f in found] == best
    embed = llm.get_input_embeddings()
    for seq, bound, hyps in zip(seqs, bounds, found):
        assert 1 <= len(hyps) <= beams
        assert [s for s, _ in hyps] == sorted((s for s, _ in hyps), reverse=True)
        for score, toks in hyps:
            ended = len(toks) < bound
            ids = torch.tensor(toks, dtype=torch.long)
            with torch.no_grad():
                logits = llm(inputs_embeds=torch.cat([seq, embed(ids)])[None]).logits[0]
            logp = torch.log_softmax(logits[seq.shape[0] - 1 :].float(), dim=-1)
            targets = toks + [EOS] if ended else toks
            total = sum(float(logp[i, t]) for i, t in enumerate(targets))
            assert score == pytest.approx(total / len(targets), abs=1e-4)


def test_greedy_is_argmax_until_eos(llm) -> None:
    (seq,) = prompts(3, [6])
    embed = llm.get_input_embeddings()
    toks: list[int] = []
    for _ in range(10):
        ids = torch.tensor(toks, dtype=torch.long)
        with torch.no_grad():
            logits = llm(inputs_embeds=torch.cat([seq, embed(ids)])[None]).logits[0, -1]
        tok = int(logits.argmax())
        if tok == EOS:
            break
        toks.append(tok)
    assert batched(llm, [seq], [10], 1) == [toks]


def test_rejects_bad_arguments(llm) -> None:
    seqs = prompts(0, [3, 4])
    with pytest.raises(ValueError, match="bounds for a batch"):
        batched(llm, seqs, [3], 2)
    with pytest.raises(ValueError, match=">= 1"):
        batched(llm, seqs, [3, 0], 2)
    assert all(len(h) <= 1 for h in batched(llm, seqs, [1, 1], 2))


def _prefix_probability(logp: torch.Tensor, prefix: list[int], exact: bool) -> float:
    """Sum of p(path) over all CTC paths (class 0 blank, c + 1 token c) whose collapsed
    label sequence starts with ``prefix`` (equals it when ``exact``), by enumeration."""
    steps, classes = logp.shape
    total = 0.0
    for path, out in ctc_paths(steps, classes):
        if (out == prefix) if exact else (out[: len(prefix)] == prefix):
            total += float(logp[range(steps), list(path)].sum().exp())
    return total


def test_ctc_prefix_scores_match_path_enumeration() -> None:
    """Each candidate's score is log p(the CTC output starts with prefix + candidate); EOS
    scores log p(output == prefix); positions past an utterance's length do not count; the
    state carried by ``advance`` gives the same for the next token."""
    torch.manual_seed(0)
    vocab, eos = 4, 3
    logp = torch.log_softmax(torch.randn(2, 4, 1 + vocab), dim=-1)
    lengths = torch.tensor([4, 3])
    scorer = CTCPrefixScorer(logp, lengths, num_beams=1, eos_id=eos)
    cands = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])
    psi, states = scorer.score(cands)
    for b in range(2):
        valid = logp[b, : int(lengths[b])]
        for j, c in enumerate(cands[b].tolist()):
            want = (
                _prefix_probability(valid, [], exact=True)
                if c == eos
                else (_prefix_probability(valid, [c], exact=False))
            )
            assert math.isclose(float(psi[b, j].exp()), want, rel_tol=1e-4), (b, c)
    # both rows take their candidate number 1, token 1
    scorer.advance(states, torch.tensor([0, 1]), torch.tensor([1, 1]))
    psi, _ = scorer.score(cands)
    for b in range(2):
        valid = logp[b, : int(lengths[b])]
        for j, c in enumerate(cands[b].tolist()):
            want = (
                _prefix_probability(valid, [1], exact=True)
                if c == eos
                else (_prefix_probability(valid, [1, c], exact=False))
            )
            assert math.isclose(float(psi[b, j].exp()), want, rel_tol=1e-4, abs_tol=1e-9), (b, c)


def _peaked_ctc(sequences: list[list[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC log-probs that spell each sequence (token, blank, token, ...) with high certainty."""
    logp = torch.full((len(sequences), width, 1 + VOCAB), -9.0)
    logp[..., 0] = 0.0  # blank elsewhere
    for b, seq in enumerate(sequences):
        for i, tok in enumerate(seq):
            logp[b, 2 * i, 0], logp[b, 2 * i, tok + 1] = -9.0, 0.0
    lengths = torch.tensor([2 * len(s) + 1 for s in sequences])
    return torch.log_softmax(logp, dim=-1), lengths


def test_joint_ctc_search_follows_a_confident_ctc_head(llm) -> None:
    """With a heavy CTC weight the hypothesis is what the CTC head spells (the LLM only ranks
    the candidates); each utterance gets the same result alone or in a batch; weight 0 is
    the LLM-only search."""
    seqs = prompts(3, [5, 7, 4])
    targets = [[1, 2, 1], [5, 6, 7, 8], [9]]
    logp, lengths = _peaked_ctc(targets, width=9)
    joint = ctc_scorer(logp, lengths, 3, 0.9, pre_beam=VOCAB - 1)
    assert batched(llm, seqs, [8, 8, 8], 3, scorers=[joint]) == targets
    for i in range(3):
        one = ctc_scorer(logp[i : i + 1], lengths[i : i + 1], 3, 0.9, pre_beam=VOCAB - 1)
        assert batched(llm, [seqs[i]], [8], 3, scorers=[one]) == [targets[i]]


def test_ctc_proposals_reach_tokens_outside_the_llm_pre_beam(llm) -> None:
    """With a pre-beam of 1 the LLM proposes one token per beam, so a confident CTC head
    cannot spell its targets; with its targets as ``ctc_extra`` (padded with -1, holding
    duplicates of what the LLM proposes and EOS) it can, and no hypothesis repeats."""
    seqs = prompts(3, [5, 7, 4])
    targets = [[1, 2, 1], [5, 6, 7, 8], [9]]
    logp, lengths = _peaked_ctc(targets, width=9)

    def joint(extra=None) -> list[list[int]]:
        scorer = ctc_scorer(logp, lengths, 3, 0.9, pre_beam=1, extra=extra)
        return batched(llm, seqs, [8, 8, 8], 3, scorers=[scorer])

    assert joint() != targets
    assert joint([[1, 2, -1, EOS], [5, 6, 7, 8], [9, -1, -1, -1]]) == targets
    # every token proposed = every token in the pre-beam, also where the LLM decides (a flat
    # CTC head): a token the LLM proposes too is scored once, so no two beams are the same
    seqs = prompts(4, [5, 7, 4, 6, 3])
    flat = torch.zeros(5, 12, 1 + VOCAB)
    everything = [list(range(VOCAB))] * 5
    for logp in (torch.log_softmax(flat, dim=-1), _peaked_ctc(targets + [[2], [4, 4]], 12)[0]):
        width = torch.full((5,), 12)
        some = ctc_scorer(logp, width, 3, 0.3, pre_beam=2, extra=everything)
        got = batched(llm, seqs, [6] * 5, 3, scorers=[some])
        full = ctc_scorer(logp, width, 3, 0.3, pre_beam=VOCAB - 1)
        assert got == batched(llm, seqs, [6] * 5, 3, scorers=[full])


# --------------------------------------------------------------------------- the token bound


def _scripted_step(width: int, scripts: dict[int, list[int]]):
    """A step function that answers with the scripted token of each utterance (the LLM is
    not run; its cache stays empty): ``scripts[padding] = tokens``, then EOS. Utterances are
    told apart by their left padding (distinct prompt lengths), steps by the mask's width."""

    def step(embeds, mask, positions, cache):
        t = mask.shape[1] - width  # tokens generated so far
        logits = torch.zeros(mask.shape[0], VOCAB)
        for row, pad in enumerate((mask == 0).sum(1).tolist()):
            script = scripts[pad]
            logits[row, script[t] if t < len(script) else EOS] = 20.0
        return logits

    return step


@pytest.fixture(scope="module")
def long_llm() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
        eos_token_id=EOS, attn_implementation="eager",
    )  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


def test_default_bound_keeps_fast_speech_and_counts_what_it_cuts(long_llm) -> None:
    """The default bound (decode.*) never cuts LibriSpeech-like speech, even fast, dense
    upper-case: 16 words in 3.2 s and 170 words in 34 s (5 words/s) at 3.15 LLaMA tokens per
    word (denser than the densest 1% of 20-word utterances, 3.0, ``tools/token_rate.py``) need
    51 and 536 tokens, over the old bound ``max(16, ceil(8 x seconds))`` (26, 272). An
    endless hypothesis stops at its bound and is flagged as a bound hit; the finished ones
    are not."""
    needs = {3.2: 51, 34.0: 536, 1.0: 10_000}  # seconds -> tokens (the last: a loop)
    scripts = [[4 + (t * 5 + i) % 8 for t in range(n)] for i, n in enumerate(needs.values())]
    seqs = prompts(5, [4, 5, 6])  # distinct lengths: left padding 2, 1, 0 tells them apart
    cfg = DecodeConfig()
    bounds = new_token_bounds(
        {"durations": torch.tensor(list(needs))},
        cfg.max_new_tokens_per_second,
        cfg.min_new_tokens_bound,
    )
    step = _scripted_step(6, {2: scripts[0], 1: scripts[1], 0: scripts[2]})
    found = batched(long_llm, seqs, bounds, 2, step_fn=step)
    assert found[0] == scripts[0] and found[1] == scripts[1]  # not truncated
    assert found[2] == scripts[2][: bounds[2]] and bounds[2] == cfg.min_new_tokens_bound
    assert bound_hit_flags(found, bounds) == [False, False, True]
    assert bound_hit_flags(found, None) == [False] * 3  # no bound (CTC probe): no hits
