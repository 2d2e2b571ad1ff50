"""Batched beam search over a frozen decoder-only LLM fed with input embeddings.

Why not ``llm.generate``: Hugging Face's beam search runs the prompt (speech + template,
~100-300 positions) once per beam, and a batch runs until its *longest* token bound, so a
short utterance keeps decoding (and its hypotheses compete past its own bound) while a long
one finishes.  Here:

- the prompt is run once per utterance and its KV cache is repeated over the beams;
- each utterance stops at its own token bound, or when no running beam can beat its
  finished ones, and is then dropped from the batch (cache rows included), so the batch
  shrinks as utterances finish;
- scoring follows the usual rules (sum of log-probabilities; a finished hypothesis scores
  ``sum / length ** length_penalty`` with the EOS counted in the length; an EOS is taken only
  from the top ``num_beams`` candidates; at the bound the running beams are finished as they
  are), so an utterance gets the same hypothesis alone or in any batch, up to float rounding.

``num_beams=1`` is greedy search. That is the paper's decoding. Scorers
(:mod:`slamasr.decoding.scorers`, not in the paper) attach beside it: with any of them on, each
beam's candidates are the LLM's ``pre_beam`` best tokens, the tokens the scorers propose and
EOS, scored ``(1 - sum of llm_share) * log p_LLM + the scorers' terms``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from slamasr.decoding.scorers.base import Scorer
from slamasr.models.ctc import pad_ragged
from slamasr.models.llm import decoder_and_head

DEFAULT_PRE_BEAM = 8

# (embeds (N, L, d), mask (N, L_past + L), positions (N, L), cache) -> logits (N, V) at the
# last position; the cache (a transformers DynamicCache) is extended in place.
StepFn = Callable[..., torch.Tensor]


@dataclass
class _Row:
    """Search state of one utterance."""

    bound: int
    finished: list[tuple[float, list[int]]] = field(default_factory=list)
    done: bool = False

    def add(self, score: float, tokens: list[int], num_beams: int) -> None:
        """Keep the ``num_beams`` best finished hypotheses (earlier ones win ties)."""
        self.finished.append((score, tokens))
        self.finished.sort(key=lambda item: -item[0])
        del self.finished[num_beams:]

    def worst_kept(self, num_beams: int) -> float:
        return self.finished[-1][0] if len(self.finished) >= num_beams else -math.inf

    def best(self) -> list[int]:
        return self.finished[0][1] if self.finished else []


def last_position_logits(llm: nn.Module) -> StepFn:
    """A step function: run ``llm`` with a KV cache and return logits at the last position.

    Uses the decoder + linear head directly when the model is built that way (the vocabulary
    projection then runs on one position per row), else the full forward.
    """
    parts = decoder_and_head(llm)
    target = parts[0] if parts else llm
    # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns)
    params = inspect.signature(target.forward).parameters
    cache_arg = "cache" if "cache" in params else "past_key_values"

    def step(embeds, mask, positions, cache):
        kwargs = {
            "inputs_embeds": embeds,
            "attention_mask": mask,
            "position_ids": positions,
            cache_arg: cache,
            "use_cache": True,
        }
        if parts:
            base, head = parts
            return head(base(**kwargs).last_hidden_state[:, -1])
        return llm(**kwargs).logits[:, -1]

    return step


def _new_cache(llm: nn.Module):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=llm.config)
    except TypeError:  # older transformers: no config argument
        return DynamicCache()


def _penalize(logits: torch.Tensor, history: torch.Tensor, penalty: float) -> torch.Tensor:
    """Repetition penalty on tokens already generated (divide positive, multiply negative)."""
    if penalty == 1.0 or history.shape[1] == 0:
        return logits
    picked = logits.gather(1, history)
    picked = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits.scatter(1, history, picked)


@dataclass
class _Beams:
    """The running rows of a search: ``num_beams`` per active utterance, utterance-major."""

    active: list[int]  # utterance index of each active utterance, in order
    cache: Any
    logits: torch.Tensor  # (n*k, V) at the last position
    mask: torch.Tensor  # (n*k, L)
    next_pos: torch.Tensor  # (n*k,)
    tokens: torch.Tensor  # (n*k, t)
    scores: torch.Tensor  # (n, k) the search's scores
    llm_scores: torch.Tensor  # (n, k) the LLM's own sums (used with scorers)
    t: int = 0


@dataclass
class _Candidates:
    """Scored candidates of one step: ``scores`` ``(n, k * W)``; with scorers ``tokens``
    ``(n*k, W)`` holds each column's token and ``llm`` its LLM sum, without them column
    ``w`` is token ``w`` of the vocabulary."""

    scores: torch.Tensor
    width: int
    tokens: Optional[list[list[int]]] = None
    llm: Optional[torch.Tensor] = None


@dataclass
class _Step:
    """What one step keeps: source row, token, score and candidate column of each new beam,
    and the positions (in the active list) of the utterances that go on."""

    keep: list[int] = field(default_factory=list)
    src: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    flat: list[int] = field(default_factory=list)


@torch.no_grad()
def beam_search(
    llm: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    bounds: list[int],
    num_beams: int,
    eos_id: int,
    length_penalty: float = 1.0,
    repetition_penalty: float = 1.0,
    scorers: Sequence[Scorer] = (),
    nbest: bool = False,
    step_fn: Optional[StepFn] = None,
) -> list[list[int]] | list[list[tuple[float, list[int]]]]:
    """Beam search for a left-padded batch of prompts given as embeddings.

    Args:
        llm: the causal LM (used through ``step_fn``; its input embeddings embed new tokens).
        inputs_embeds: ``(B, L, d)`` left-padded prompts.
        attention_mask: ``(B, L)``, 0 at padding.
        position_ids: ``(B, L)``, counting each row's real positions from 0.
        bounds: per-utterance maximum number of new tokens (EOS included), each >= 1.
        num_beams: beams per utterance (1 = greedy).
        eos_id: the token that ends a hypothesis.
        length_penalty: exponent of the length normalisation of finished hypotheses.
        repetition_penalty: >1 discourages tokens already generated in the beam.
        scorers: partial scorers, already started on this batch (:meth:`Scorer.start`);
            none = the LLM alone (the paper).
        nbest: return every utterance's finished hypotheses, not only the best.
        step_fn: see :func:`last_position_logits` (default).

    Returns:
        The best hypothesis per utterance, token ids without EOS, in batch order; with
        ``nbest``, per utterance up to ``num_beams`` ``(score, token ids)``, best first
        (scores length-normalized as in the search).
    """
    if len(bounds) != inputs_embeds.shape[0]:
        raise ValueError(f"{len(bounds)} bounds for a batch of {inputs_embeds.shape[0]}")
    if num_beams < 1 or min(bounds, default=1) < 1:
        raise ValueError("num_beams and every bound must be >= 1")
    step = step_fn or last_position_logits(llm)
    beams = _start(llm, step, inputs_embeds, attention_mask, position_ids, num_beams)
    extra = _proposals(scorers, inputs_embeds.device)
    pre_beam = max((s.pre_beam for s in scorers), default=0) or DEFAULT_PRE_BEAM
    rows = [_Row(bound=b) for b in bounds]
    embed = llm.get_input_embeddings()
    while beams.active:
        logp = torch.log_softmax(
            _penalize(beams.logits.float(), beams.tokens, repetition_penalty), dim=-1
        )  # (n*k, V)
        if scorers:
            cands = _joint_candidates(logp, beams, scorers, extra, eos_id, pre_beam)
        else:
            cands = _Candidates((beams.scores.view(-1, 1) + logp).view(len(beams.active), -1),
                                logp.shape[1])  # fmt: skip
        chosen = _choose(cands, beams, rows, num_beams, eos_id, length_penalty)
        if not _advance(beams, chosen, cands, scorers, num_beams):
            break
        new_embeds = embed(beams.tokens[:, -1:]).to(inputs_embeds.dtype)  # (n'*k, 1, d)
        beams.logits = step(new_embeds, beams.mask, beams.next_pos[:, None], beams.cache)
        beams.next_pos = beams.next_pos + 1
        beams.t += 1
    if nbest:
        return [list(row.finished) for row in rows]
    return [row.best() for row in rows]


def _start(
    llm: nn.Module,
    step: StepFn,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    k: int,
) -> _Beams:
    """Run each prompt once and repeat its state over the ``k`` beams."""
    batch, device = inputs_embeds.shape[0], inputs_embeds.device
    cache = _new_cache(llm)
    logits = step(inputs_embeds, attention_mask, position_ids, cache)  # (B, V)
    cache.batch_repeat_interleave(k)
    scores = torch.full((batch, k), -math.inf, device=device)
    scores[:, 0] = 0.0  # all beams start equal: only the first may expand
    return _Beams(
        active=list(range(batch)),
        cache=cache,
        logits=logits.repeat_interleave(k, dim=0),  # (B*k, V)
        mask=attention_mask.repeat_interleave(k, dim=0),  # (B*k, L)
        next_pos=(position_ids[:, -1] + 1).repeat_interleave(k, dim=0),  # (B*k,)
        tokens=torch.zeros(batch * k, 0, dtype=torch.long, device=device),
        scores=scores,
        llm_scores=scores.clone(),
    )


def _proposals(scorers: Sequence[Scorer], device: torch.device) -> Optional[torch.Tensor]:
    """``(B, E)`` token ids (-1 = padding) the scorers propose for every beam of each
    utterance (the union, sorted); None when none proposes."""
    found = [p for p in (s.proposals() for s in scorers) if p is not None]
    if not found:
        return None
    merged = [sorted({tok for part in parts for tok in part}) for parts in zip(*found)]
    return pad_ragged(merged, -1)[0].to(device)


def _joint_candidates(
    logp: torch.Tensor,
    beams: _Beams,
    scorers: Sequence[Scorer],
    extra: Optional[torch.Tensor],
    eos_id: int,
    pre_beam: int,
) -> _Candidates:
    """The LLM's ``pre_beam`` best tokens per beam + the proposals + EOS, scored
    ``(1 - sum of llm_share) * LLM sum + each scorer's terms``."""
    pre = logp.clone()
    pre[:, eos_id] = -math.inf
    top = pre.topk(min(pre_beam, pre.shape[1] - 1), dim=1).indices  # (n*k, pre_k)
    eos_col = torch.full_like(top[:, :1], eos_id)
    unusable = None
    if extra is None:
        cand_tok = torch.cat([top, eos_col], 1)  # (n*k, W)
    else:  # padding and tokens already among the LLM's dropped
        ext = extra[beams.active].repeat_interleave(beams.scores.shape[1], dim=0)  # (n*k, E)
        dup = (ext[:, :, None] == top[:, None, :]).any(-1)
        keep = torch.zeros_like(top, dtype=torch.bool)
        unusable = torch.cat([keep, (ext < 0) | (ext == eos_id) | dup, keep[:, :1]], 1)
        cand_tok = torch.cat([top, ext.clamp(min=0), eos_col], 1)
    cand_llm = beams.llm_scores.view(-1, 1) + logp.gather(1, cand_tok)  # (n*k, W)
    if unusable is not None:
        cand_llm = cand_llm.masked_fill(unusable, -math.inf)
    total = (1 - sum(s.llm_share for s in scorers)) * cand_llm
    for scorer in scorers:
        for term in scorer.score(cand_tok):
            total = total + term
    total = torch.where(torch.isneginf(cand_llm), cand_llm, total)
    n = len(beams.active)
    return _Candidates(total.view(n, -1), cand_tok.shape[1], cand_tok.tolist(), cand_llm)


def _choose(
    cands: _Candidates,
    beams: _Beams,
    rows: list[_Row],
    k: int,
    eos_id: int,
    length_penalty: float,
) -> _Step:
    """Per utterance: finish the hypotheses whose EOS ranks among the top ``k``, keep the
    ``k`` best live candidates, and stop the utterance at its bound or when no running beam
    can beat its finished ones."""
    top_scores, top_idx = cands.scores.topk(min(2 * k, cands.scores.shape[1]), dim=1)
    token_lists = beams.tokens.tolist()
    length = beams.t + 1  # tokens per hypothesis after this step, EOS included
    out = _Step()
    for pos, (scores, flats) in enumerate(zip(top_scores.tolist(), top_idx.tolist())):
        row = rows[beams.active[pos]]
        chosen: list[tuple[float, int, int, int]] = []  # score, beam, token, flat index
        for rank, (score, flat) in enumerate(zip(scores, flats)):
            if score == -math.inf:
                break
            beam, tok = divmod(flat, cands.width)
            if cands.tokens is not None:
                tok = cands.tokens[pos * k + beam][tok]
            if tok == eos_id:
                if rank < k:
                    row.add(score / length**length_penalty, token_lists[pos * k + beam], k)
                continue
            chosen.append((score, beam, tok, flat))
            if len(chosen) == k:
                break
        if _row_done(row, chosen, token_lists[pos * k : pos * k + k], length, length_penalty, k):
            continue
        while len(chosen) < k:  # fewer live candidates than beams (tiny vocabularies)
            chosen.append((-math.inf,) + chosen[0][1:])
        out.keep.append(pos)
        for score, beam, tok, flat in chosen:
            out.src.append(pos * k + beam)
            out.tokens.append(tok)
            out.scores.append(score)
            out.flat.append(pos * k * cands.width + flat)
    return out


def _row_done(
    row: _Row,
    chosen: list[tuple[float, int, int, int]],
    hyps: list[list[int]],
    length: int,
    length_penalty: float,
    k: int,
) -> bool:
    """Whether an utterance stops after this step (``hyps``: its beams' tokens): at its
    bound its running beams are finished as they are."""
    if length >= row.bound:
        for score, beam, tok, _ in chosen:
            row.add(score / length**length_penalty, hyps[beam] + [tok], k)
        row.done = True
    elif not chosen:
        row.done = True
    elif len(row.finished) >= k:
        row.done = row.worst_kept(k) >= chosen[0][0] / length**length_penalty
    return row.done


def _advance(
    beams: _Beams, step: _Step, cands: _Candidates, scorers: Sequence[Scorer], k: int
) -> bool:
    """Keep the chosen beams (cache rows included: the batch shrinks as utterances finish)
    and append their tokens; False when no utterance goes on."""
    beams.active = [beams.active[pos] for pos in step.keep]
    if not beams.active:
        return False
    device = beams.tokens.device
    src = torch.tensor(step.src, dtype=torch.long, device=device)
    new_tok = torch.tensor(step.tokens, dtype=torch.long, device=device)
    if step.src != list(range(beams.tokens.shape[0])):  # greedy with no row done: no copy
        beams.cache.reorder_cache(src)  # select (and shrink to) the surviving beams
        beams.tokens, beams.mask = beams.tokens[src], beams.mask[src]
        beams.next_pos = beams.next_pos[src]
    beams.tokens = torch.cat([beams.tokens, new_tok[:, None]], dim=1)
    beams.mask = torch.cat([beams.mask, beams.mask.new_ones(len(step.src), 1)], dim=1)
    beams.scores = torch.tensor(step.scores, device=device).view(len(beams.active), k)
    if scorers:
        picked = torch.tensor(step.flat, dtype=torch.long, device=device)
        beams.llm_scores = cands.llm.view(-1)[picked].view(len(beams.active), k)
        for scorer in scorers:
            scorer.advance(picked // cands.width, picked % cands.width)
    return True
