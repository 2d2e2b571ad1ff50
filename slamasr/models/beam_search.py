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

``num_beams=1`` is greedy search.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from slamasr.models.llm import decoder_and_head

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
    step_fn: Optional[StepFn] = None,
) -> list[list[int]]:
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
        step_fn: see :func:`last_position_logits` (default).

    Returns:
        The best hypothesis per utterance, token ids without EOS, in batch order.
    """
    batch = inputs_embeds.shape[0]
    if len(bounds) != batch:
        raise ValueError(f"{len(bounds)} bounds for a batch of {batch}")
    if num_beams < 1 or min(bounds, default=1) < 1:
        raise ValueError("num_beams and every bound must be >= 1")
    step = step_fn or last_position_logits(llm)
    embed = llm.get_input_embeddings()
    device = inputs_embeds.device
    k = num_beams

    cache = _new_cache(llm)
    logits = step(inputs_embeds, attention_mask, position_ids, cache)  # (B, V)
    # one prompt pass per utterance; repeat its state over the beams
    cache.batch_repeat_interleave(k)
    logits = logits.repeat_interleave(k, dim=0)  # (B*k, V)
    mask = attention_mask.repeat_interleave(k, dim=0)  # (B*k, L)
    next_pos = (position_ids[:, -1] + 1).repeat_interleave(k, dim=0)  # (B*k,)
    beam_scores = torch.full((batch, k), -math.inf, device=device)
    beam_scores[:, 0] = 0.0  # all beams start equal: only the first may expand
    tokens = torch.zeros(batch * k, 0, dtype=torch.long, device=device)  # (B*k, t)

    rows = [_Row(bound=b) for b in bounds]
    active = list(range(batch))  # utterance index of each active row, in order
    t = 0
    while active:
        n = len(active)
        logp = torch.log_softmax(
            _penalize(logits.float(), tokens, repetition_penalty), dim=-1
        )  # (n*k, V)
        vocab = logp.shape[1]
        cand = (beam_scores.view(-1, 1) + logp).view(n, k * vocab)
        top_scores, top_idx = cand.topk(min(2 * k, k * vocab), dim=1)  # (n, 2k)
        top_scores_l, top_idx_l = top_scores.tolist(), top_idx.tolist()
        token_lists = tokens.tolist()
        length = t + 1  # tokens per hypothesis after this step, EOS included

        keep_rows: list[int] = []  # positions (in 0..n-1) of rows that go on
        src_beams: list[int] = []  # flat source beam per kept new beam
        new_tokens: list[int] = []
        new_scores: list[float] = []
        for pos, utt in enumerate(active):
            row = rows[utt]
            chosen: list[tuple[float, int, int]] = []
            for rank, (score, flat) in enumerate(zip(top_scores_l[pos], top_idx_l[pos])):
                if score == -math.inf:
                    break
                beam, tok = divmod(flat, vocab)
                if tok == eos_id:
                    if rank < k:
                        hyp = token_lists[pos * k + beam]
                        row.add(score / length**length_penalty, hyp, k)
                    continue
                chosen.append((score, beam, tok))
                if len(chosen) == k:
                    break
            if length >= row.bound:  # bound reached: running beams end as they are
                for score, beam, tok in chosen:
                    hyp = token_lists[pos * k + beam] + [tok]
                    row.add(score / length**length_penalty, hyp, k)
                row.done = True
            elif not chosen:
                row.done = True
            elif len(row.finished) >= k:
                best_running = chosen[0][0] / length**length_penalty
                row.done = row.worst_kept(k) >= best_running
            if row.done:
                continue
            while len(chosen) < k:  # fewer live candidates than beams (tiny vocabularies)
                chosen.append((-math.inf, chosen[0][1], chosen[0][2]))
            keep_rows.append(pos)
            for score, beam, tok in chosen:
                src_beams.append(pos * k + beam)
                new_tokens.append(tok)
                new_scores.append(score)
        active = [active[pos] for pos in keep_rows]
        if not active:
            break
        src = torch.tensor(src_beams, dtype=torch.long, device=device)
        new_tok = torch.tensor(new_tokens, dtype=torch.long, device=device)
        if src_beams != list(range(tokens.shape[0])):  # greedy with no row done: no copy
            cache.reorder_cache(src)  # select (and shrink to) the surviving beams
            tokens, mask, next_pos = tokens[src], mask[src], next_pos[src]
        tokens = torch.cat([tokens, new_tok[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones(len(src_beams), 1)], dim=1)
        beam_scores = torch.tensor(new_scores, device=device).view(len(active), k)
        new_embeds = embed(new_tok[:, None]).to(inputs_embeds.dtype)  # (n'*k, 1, d)
        logits = step(new_embeds, mask, next_pos[:, None], cache)
        next_pos = next_pos + 1
        t += 1
    return [row.best() for row in rows]
