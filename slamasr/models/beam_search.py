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
from slamasr.models.word_prior import WordPrior, WordPriorScorer

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
class CTCLabels:
    """How LLM tokens spell in a CTC head's classes, when those are not the tokens themselves.

    A character CTC head (:class:`slamasr.models.ctc.CharCTCHead`) has one class per
    character; an LLM token then extends a hypothesis by several classes (``" the"`` -> space,
    t, h, e). Row ``v`` of ``start`` holds token ``v``'s classes when it begins a hypothesis
    (a leading space dropped), row ``v`` of ``cont`` when it continues one; ``*_len`` give the
    number of valid entries. Length 0 = the token cannot be spelled (a character outside the
    head's alphabet, whitespace only): such candidates get probability 0.

    Args:
        start: ``(V, M)`` class ids (>= 1; 0 is the blank), padded with 0.
        start_len: ``(V,)``.
        cont: ``(V, M)``.
        cont_len: ``(V,)``.
    """

    start: torch.Tensor
    start_len: torch.Tensor
    cont: torch.Tensor
    cont_len: torch.Tensor

    def to(self, device: torch.device) -> CTCLabels:
        return CTCLabels(
            *(t.to(device) for t in (self.start, self.start_len, self.cont, self.cont_len))
        )


class CTCPrefixScorer:
    """CTC prefix scores of every beam's hypothesis, for joint CTC/LLM beam search.

    The hybrid decoding of ESPnet and Watanabe et al. (2017): a hypothesis ``g`` is scored by
    the probability that the CTC head's output *starts with* ``g`` (its prefix probability),
    kept per beam as forward variables over the speech positions and extended one token at a
    time. Candidates are scored only for the tokens the LLM ranks highest (plus EOS, whose
    score is the probability of the whole of ``g``), as ESPnet's pre-beam does.

    A token is one CTC class (the projector's token head: class ``c + 1`` = token ``c``), or
    with ``labels`` a sequence of classes (a character head): the forward variables are then
    carried through each of the token's classes in the same pass over the positions, so a
    step costs one loop over the positions whatever the tokens' lengths.

    Args:
        logp: ``(B, T, C)`` log-probabilities per position, class 0 = blank
            (:meth:`slamasr.models.ctc.TokenCTCHead.logits`: ``C = 1 + V``).
        lengths: valid positions per utterance ``(B,)``; later positions count as blank.
        num_beams: beams per utterance (rows are utterance-major, as in :func:`beam_search`).
        eos_id: the LLM's end token.
        labels: token -> classes (:class:`CTCLabels`); None = class ``token + 1``.
    """

    def __init__(
        self,
        logp: torch.Tensor,
        lengths: torch.Tensor,
        num_beams: int,
        eos_id: int,
        labels: Optional[CTCLabels] = None,
    ) -> None:
        batch, width, _ = logp.shape
        x = logp.float().transpose(0, 1).clone()  # (T, B, C)
        pad = torch.arange(width, device=logp.device)[:, None] >= lengths.to(logp.device)[None]
        x[pad] = -math.inf
        x[..., 0][pad] = 0.0  # past the end: blank with probability 1
        self.x = x
        self.eos_id = eos_id
        self.labels = labels
        self.utt = torch.arange(batch, device=logp.device).repeat_interleave(num_beams)  # (N,)
        blank = x[:, self.utt, 0]  # (T, N)
        self.r = torch.stack([torch.full_like(blank, -math.inf), blank.cumsum(0)], dim=-1)
        self.last = torch.full((batch * num_beams,), -1, dtype=torch.long, device=logp.device)
        self.prefix_len = 0
        self.spelled = torch.zeros(batch * num_beams, dtype=torch.long, device=logp.device)
        self._cand_last: Optional[torch.Tensor] = None
        self._cand_count: Optional[torch.Tensor] = None

    def _classes(self, cands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class sequences ``(N, K, M)`` and their lengths ``(N, K)`` of the candidates."""
        if self.labels is None:
            return cands[..., None] + 1, torch.ones_like(cands)
        if self.prefix_len == 0:
            table, table_len = self.labels.start, self.labels.start_len
        else:
            table, table_len = self.labels.cont, self.labels.cont_len
        count = table_len[cands]
        width = max(int(count.max()), 1) if count.numel() else 1
        return table[cands][..., :width], count

    def score(self, cands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix log-probabilities ``(N, K)`` of each row's hypothesis + each candidate
        token ``(N, K)``, and the forward variables ``(T, N, K, 2)`` that go with them."""
        classes, count = self._classes(cands)  # (N, K, M), (N, K)
        feasible = (count > 0) & (cands != self.eos_id)
        final = (count - 1).clamp(min=0)  # index of each candidate's last class
        xs = self.x[:, self.utt[:, None, None], classes]  # (T, N, K, M)
        xb = self.x[:, self.utt, 0][:, :, None, None]  # (T, N, 1, 1)
        r_prev = self.r  # (T, N, 2): [non-blank end, blank end]
        total = torch.logaddexp(r_prev[..., 0], r_prev[..., 1])  # (T, N)
        # phi[t]: the hypothesis is complete by position t and the first new class may follow;
        # a class equal to the one before needs a blank in between
        same = (classes[..., 0] == self.last[:, None])[None]  # (1, N, K)
        phi = torch.where(same, r_prev[..., 1][:, :, None], total[:, :, None])  # (T, N, K)
        repeat = torch.zeros_like(classes, dtype=torch.bool)
        repeat[..., 1:] = classes[..., 1:] == classes[..., :-1]
        neg = torch.tensor(-math.inf, device=xs.device)
        width, rows, k, m = xs.shape
        gather = final[..., None]  # (N, K, 1)
        rn = torch.full((rows, k, m), -math.inf, device=xs.device)
        rb = torch.full_like(rn, -math.inf)
        out = torch.full((width, rows, k, 2), -math.inf, device=xs.device)
        psi = torch.full((rows, k), -math.inf, device=xs.device)
        start = torch.full((rows, k), 0.0 if self.prefix_len == 0 else -math.inf, device=xs.device)
        for t in range(width):
            first = start if t == 0 else phi[t - 1]  # (N, K): entering the first new class
            later = torch.logaddexp(rb[..., :-1], torch.where(repeat[..., 1:], neg, rn[..., :-1]))
            enter = torch.cat([first[..., None], later], dim=-1)  # (N, K, M)
            rn, rb = (
                torch.logaddexp(rn, enter) + xs[t],
                torch.logaddexp(rb, rn) + xb[t],
            )
            psi = torch.logaddexp(psi, (enter + xs[t]).gather(-1, gather).squeeze(-1))
            out[t, ..., 0] = rn.gather(-1, gather).squeeze(-1)
            out[t, ..., 1] = rb.gather(-1, gather).squeeze(-1)
        psi = torch.where(feasible, psi, neg)
        psi = torch.where(cands == self.eos_id, total[-1][:, None], psi)
        self._cand_last = classes.gather(-1, gather).squeeze(-1)  # (N, K)
        self._cand_count = torch.where(cands == self.eos_id, 0, count)
        return psi, out

    def spelled_lengths(self) -> torch.Tensor:
        """Classes spelled by each candidate hypothesis of the last :meth:`score` ``(N, K)``
        (EOS adds none)."""
        return self.spelled[:, None] + self._cand_count

    def advance(self, states: torch.Tensor, rows: torch.Tensor, picks: torch.Tensor) -> None:
        """Each new beam extends row ``rows`` by its candidate number ``picks`` of the last
        :meth:`score`; ``states`` are the forward variables it returned."""
        self.r = states[:, rows, picks]  # (T, N', 2)
        self.utt = self.utt[rows]
        self.last = self._cand_last[rows, picks]
        self.spelled = self.spelled[rows] + self._cand_count[rows, picks]
        self.prefix_len += 1


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
    ctc_logp: Optional[torch.Tensor] = None,
    ctc_lengths: Optional[torch.Tensor] = None,
    ctc_weight: float = 0.0,
    ctc_pre_beam: int = 8,
    ctc_labels: Optional[CTCLabels] = None,
    ctc_extra: Optional[torch.Tensor] = None,
    ctc_label_bonus: float = 0.0,
    word_prior: Optional[WordPrior] = None,
    word_texts: Optional[list[Optional[str]]] = None,
    word_prior_weight: float = 0.0,
    nbest: bool = False,
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
        step_fn: see :func:`last_position_logits` (default).
        ctc_logp: ``(B, T, 1 + V)`` CTC log-probabilities (class 0 = blank) for joint
            CTC/LLM scoring (:class:`CTCPrefixScorer`); None = the LLM alone.
        ctc_lengths: valid CTC positions per utterance ``(B,)``.
        ctc_weight: lambda of ``(1 - lambda) * log p_LLM + lambda * log p_CTC-prefix``.
        ctc_pre_beam: with CTC, the candidates per beam: the LLM's top tokens (+ EOS).
        ctc_labels: how tokens spell in the CTC classes (a character head); None = class
            ``token + 1`` (the projector's token head).
        ctc_extra: ``(B, E)`` token ids (-1 = padding) scored for every beam of an
            utterance besides the LLM's top tokens: the CTC head's own reading (e.g. its best
            path, tokenized), so a word the LLM does not rank high can still be chosen.
        ctc_label_bonus: added per CTC class a hypothesis spells
            (:meth:`CTCPrefixScorer.spelled_lengths`): offsets the prefix probability's fall
            with every committed class, which otherwise favours short tokens.
        word_prior: with CTC, a word unigram added with ``word_prior_weight`` to the joint
            score (:class:`slamasr.models.word_prior.WordPrior`: completed words + the
            look-ahead of the word being spelled).
        word_texts: each token's spelling after another token
            (:func:`slamasr.models.word_prior.token_texts`), None = unspellable.
        word_prior_weight: its weight; 0 = off.
        nbest: return every utterance's finished hypotheses, not only the best.

    Returns:
        The best hypothesis per utterance, token ids without EOS, in batch order; with
        ``nbest``, per utterance up to ``num_beams`` ``(score, token ids)``, best first
        (scores length-normalized as in the search).
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
    scorer = None
    if ctc_logp is not None and ctc_weight > 0:
        if ctc_lengths is None or ctc_logp.shape[0] != batch:
            raise ValueError("ctc_logp needs one row per utterance and ctc_lengths")
        scorer = CTCPrefixScorer(ctc_logp, ctc_lengths, k, eos_id, ctc_labels)
        llm_scores = beam_scores.clone()  # (B, k): the LLM's own sums
    words = None
    if word_prior is not None and word_prior_weight > 0:
        if scorer is None or word_texts is None:
            raise ValueError(
                "a word prior needs joint CTC scoring (ctc_logp, ctc_weight > 0) and word_texts"
            )
        words = WordPriorScorer(word_prior, word_texts, eos_id=eos_id, num_rows=batch * k)

    rows = [_Row(bound=b) for b in bounds]
    active = list(range(batch))  # utterance index of each active row, in order
    t = 0
    while active:
        n = len(active)
        logp = torch.log_softmax(
            _penalize(logits.float(), tokens, repetition_penalty), dim=-1
        )  # (n*k, V)
        if scorer is None:
            vocab = logp.shape[1]
            cand = (beam_scores.view(-1, 1) + logp).view(n, k * vocab)
        else:  # the LLM's top tokens + EOS per beam, scored jointly with the CTC prefix
            pre = logp.clone()
            pre[:, eos_id] = -math.inf
            pre_k = min(ctc_pre_beam, pre.shape[1] - 1)
            top = pre.topk(pre_k, dim=1).indices  # (n*k, pre_k)
            eos_col = torch.full_like(top[:, :1], eos_id)
            if ctc_extra is None:
                cand_tok = torch.cat([top, eos_col], 1)  # (n*k, W)
                unusable = None
            else:  # + the CTC's own proposals; padding and tokens already proposed dropped
                extra = ctc_extra[active].repeat_interleave(k, dim=0)  # (n*k, E)
                unusable = (
                    (extra < 0) | (extra == eos_id) | (extra[:, :, None] == top[:, None, :]).any(-1)
                )
                cand_tok = torch.cat([top, extra.clamp(min=0), eos_col], 1)
                keep = torch.zeros_like(top, dtype=torch.bool)
                unusable = torch.cat([keep, unusable, keep[:, :1]], 1)
            vocab = cand_tok.shape[1]
            cand_llm = llm_scores.view(-1, 1) + logp.gather(1, cand_tok)  # (n*k, W)
            if unusable is not None:
                cand_llm = cand_llm.masked_fill(unusable, -math.inf)
            cand_ctc, ctc_states = scorer.score(cand_tok)
            cand = (1 - ctc_weight) * cand_llm + ctc_weight * cand_ctc
            if ctc_label_bonus:
                cand = cand + ctc_label_bonus * scorer.spelled_lengths()
            if words is not None:
                cand = cand + word_prior_weight * words.score(cand_tok)
            cand = torch.where(torch.isneginf(cand_llm), cand_llm, cand).view(n, k * vocab)
            cand_tok_l = cand_tok.tolist()
        top_scores, top_idx = cand.topk(min(2 * k, k * vocab), dim=1)  # (n, 2k)
        top_scores_l, top_idx_l = top_scores.tolist(), top_idx.tolist()
        token_lists = tokens.tolist()
        length = t + 1  # tokens per hypothesis after this step, EOS included

        keep_rows: list[int] = []  # positions (in 0..n-1) of rows that go on
        src_beams: list[int] = []  # flat source beam per kept new beam
        new_tokens: list[int] = []
        new_scores: list[float] = []
        src_flat: list[int] = []  # flat index of each kept candidate in (n*k, vocab)
        for pos, utt in enumerate(active):
            row = rows[utt]
            chosen: list[tuple[float, int, int, int]] = []  # score, beam, token, flat index
            for rank, (score, flat) in enumerate(zip(top_scores_l[pos], top_idx_l[pos])):
                if score == -math.inf:
                    break
                beam, tok = divmod(flat, vocab)
                if scorer is not None:
                    tok = cand_tok_l[pos * k + beam][tok]
                if tok == eos_id:
                    if rank < k:
                        hyp = token_lists[pos * k + beam]
                        row.add(score / length**length_penalty, hyp, k)
                    continue
                chosen.append((score, beam, tok, flat))
                if len(chosen) == k:
                    break
            if length >= row.bound:  # bound reached: running beams end as they are
                for score, beam, tok, _ in chosen:
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
                chosen.append((-math.inf,) + chosen[0][1:])
            keep_rows.append(pos)
            for score, beam, tok, flat in chosen:
                src_beams.append(pos * k + beam)
                new_tokens.append(tok)
                new_scores.append(score)
                src_flat.append(pos * k * vocab + flat)
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
        if scorer is not None:
            picked = torch.tensor(src_flat, dtype=torch.long, device=device)
            llm_scores = cand_llm.view(-1)[picked].view(len(active), k)
            scorer.advance(ctc_states, picked // vocab, picked % vocab)
            if words is not None:
                words.advance([f // vocab for f in src_flat], [f % vocab for f in src_flat])
        new_embeds = embed(new_tok[:, None]).to(inputs_embeds.dtype)  # (n'*k, 1, d)
        logits = step(new_embeds, mask, next_pos[:, None], cache)
        next_pos = next_pos + 1
        t += 1
    if nbest:
        return [list(row.finished) for row in rows]
    return [row.best() for row in rows]
