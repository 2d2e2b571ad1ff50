"""N-best rescoring after the search (not in the paper): each utterance's finished
hypotheses get ``search score + sum of weight * rescorer score``; the best is kept.

A rescorer: a class with a nested ``Config`` (``weight`` + its settings) and
``scores(model, hyps) -> list[float]``, registered in :data:`RESCORERS` (config key
``decode.rescorers.<name>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from slamasr.decoding.scorers.base import ScorerConfig


@dataclass
class LMRescoreConfig(ScorerConfig):
    """``decode.rescorers.lm``.

    Attributes:
        weight: rescore each utterance's finished hypotheses (up to ``num_beams``) with the
            frozen LLM read as a text-only language model (no speech: the tokenizer's BOS,
            the hypothesis, EOS): ``search score + w * mean log p_LM`` per token, both
            length-normalized. The LLM fed speech leans on the speech; fed the text alone it
            prefers what English says (*there might be*, not *their might be*). 0 = off.
    """

    def validate(self, decode: Any) -> None:
        super().validate(decode)
        if self.weight > 0 and decode.search != "native":
            raise ValueError(
                f"weight > 0 rescores the n-best of decode.search=native, not "
                f"{decode.search!r}; set decode.rescorers.lm.weight=0 or search=native"
            )


class LMRescorer:
    """The LLM as a text-only language model (:func:`text_logp`)."""

    Config = LMRescoreConfig

    def __init__(self, cfg: LMRescoreConfig, model: Any) -> None:
        self.cfg = cfg
        self.model = model

    def scores(self, hyps: list[list[int]]) -> list[float]:
        return text_logp(self.model, hyps)


RESCORERS: dict[str, type] = {"lm": LMRescorer}


def build_rescorers(configs: dict[str, ScorerConfig], model: Any) -> list[Any]:
    """The rescorers that are on (weight > 0), in :data:`RESCORERS` order."""
    on = [name for name in RESCORERS if configs[name].weight > 0]
    return [RESCORERS[name](configs[name], model) for name in on]


def rescore_nbest(
    nbest: list[list[tuple[float, list[int]]]], rescorers: list[Any]
) -> list[list[int]]:
    """The best hypothesis of each utterance by ``score + sum of weight * rescorer score``
    (``nbest``: ``(score, token ids)`` per finished hypothesis, best first, as
    :func:`~slamasr.decoding.search.beam_search` returns with ``nbest=True``); an utterance
    without hypotheses gets ``[]``."""
    flat = [hyp for found in nbest for _, hyp in found]
    extra = [[r.cfg.weight * s for s in r.scores(flat)] for r in rescorers]
    best: list[list[int]] = []
    i = 0
    for found in nbest:
        total = []
        for score, _ in found:
            for terms in extra:
                score = score + terms[i]
            total.append(score)
            i += 1
        # the first of equals wins: the search's own order
        best.append(found[max(range(len(found)), key=total.__getitem__)][1] if found else [])
    return best


def text_logp(model: Any, hyps: list[list[int]], chunk: int = 32) -> list[float]:
    """Mean log-probability per token of each token sequence under the LLM read as a
    text-only language model: the tokenizer's BOS (its EOS where it has none), the tokens,
    then EOS, which is scored too (so a hypothesis cut short pays for ending there). No
    speech, no prompt. Padded forward passes of ``chunk`` sequences (the vocabulary-wide
    log-probabilities of a chunk are what memory holds)."""
    tok = model.tokenizer
    eos = tok.eos_token_id if tok.eos_token_id is not None else model.template.eos_id
    bos = tok.bos_token_id if tok.bos_token_id is not None else eos
    out: list[float] = []
    for start in range(0, len(hyps), chunk):
        seqs = [[bos] + list(h) + [eos] for h in hyps[start : start + chunk]]
        longest = max(len(q) for q in seqs)
        ids = torch.full((len(seqs), longest), eos, dtype=torch.long, device=model.device)
        mask = torch.zeros_like(ids)
        for i, q in enumerate(seqs):
            ids[i, : len(q)] = torch.tensor(q, dtype=torch.long)
            mask[i, : len(q)] = 1
        logits = model.llm(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, ids[:, 1:, None])[..., 0]
        scored = mask[:, 1:].to(logp.dtype)
        out.extend(((logp * scored).sum(1) / scored.sum(1)).tolist())
    return out
