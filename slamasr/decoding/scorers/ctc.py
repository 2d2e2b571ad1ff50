"""Joint CTC/LLM scoring: the prefix probability of each hypothesis under a CTC head.

The hybrid decoding of ESPnet and Watanabe et al. (2017), not in the SLAM-ASR paper. Reads
the projector's token CTC head (``head: token``, ``model.projector.ctc_weight`` > 0) or the
character head on the encoder's frames (``head: char``, ``model.char_ctc.weight`` > 0).
Configured as ``decode.scorers.ctc.*``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from slamasr.decoding.scorers.base import Scorer, ScorerConfig, SearchContext
from slamasr.decoding.spelling import char_best_texts, char_logits, token_spellings
from slamasr.models.ctc import best_path
from slamasr.models.ctc_labels import CTCLabels


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


@dataclass
class CTCConfig(ScorerConfig):
    """``decode.scorers.ctc``.

    Attributes:
        weight: w of ``(1 - w) * log p_LLM + w * log p_CTC-prefix``, in [0, 1); 0 = off.
        head: token (the projector's CTC head) | char (the character head on the encoder's
            frames: spells words the token head never saw in training). ``decode.search=ctc``
            (the probe) reads it too.
        pre_beam: how many of the LLM's best tokens per beam get a CTC score (EOS always does).
        proposals: also score the tokens of the head's best path for every beam: a word the
            LLM does not rank high, but the head hears, can still be chosen.
        label_bonus: added per CTC class a hypothesis spells (per letter with head=char): a
            prefix probability only falls as a hypothesis commits to more letters, so without
            it the search favours tokens that spell little. 0 = off (ESPnet's scoring).
    """

    head: str = "token"
    pre_beam: int = 8
    proposals: bool = True
    label_bonus: float = 0.0

    def tag(self, name: str) -> str:
        return f"{'charctc' if self.head == 'char' else 'ctc'}{self.weight:g}"

    def validate(self, decode: Any) -> None:
        if not 0 <= self.weight < 1:
            raise ValueError(f"weight={self.weight}; must be in [0, 1) (0 = the LLM alone)")
        if self.weight > 0 and decode.search != "native":
            raise ValueError(
                f"weight={self.weight} needs decode.search=native, not {decode.search!r}"
            )
        if self.head not in ("token", "char"):
            raise ValueError(f"head={self.head!r}; choose token or char")
        if self.pre_beam < 1:
            raise ValueError(f"pre_beam={self.pre_beam}; must be >= 1")


class CTCScorer(Scorer):
    """:class:`CTCPrefixScorer` of the configured head as a search scorer (+ its best path
    as proposals, + the label bonus)."""

    Config = CTCConfig

    def __init__(self, cfg: CTCConfig, model: Any) -> None:
        super().__init__(cfg, model)
        self.llm_share = cfg.weight
        self.pre_beam = cfg.pre_beam
        self.prefix: Optional[CTCPrefixScorer] = None
        self.best: Optional[list[list[int]]] = None
        self._states: Optional[torch.Tensor] = None

    def start(self, ctx: SearchContext) -> None:
        model, best = self.model, None
        if self.cfg.head == "char":
            require_char_head(model)
            logits, lengths = char_logits(ctx), ctx.frame_lengths
            labels: Optional[CTCLabels] = token_spellings(model)
            if self.cfg.proposals:  # the head's best path, read from the logits just computed
                tok = model.tokenizer
                best = [tok.encode(t, add_special_tokens=False) for t in char_best_texts(ctx)]
        else:
            if model.projector.ctc is None:
                raise ValueError(
                    f"decode.scorers.ctc.weight={self.cfg.weight} scores with the projector's "
                    f"CTC head, but this model has none (model.projector.ctc_weight=0); set "
                    f"decode.scorers.ctc.weight=0"
                )
            embedding = model.llm.get_input_embeddings().weight
            logits = model.projector.ctc.logits(ctx.speech, embedding)  # (B, N, 1 + V)
            lengths, labels = ctx.speech_lengths, None
            if self.cfg.proposals:
                best = [[c - 1 for c in row] for row in best_path(logits, lengths)]
        logp = torch.log_softmax(logits.float(), dim=-1)
        self.begin(logp, lengths, ctx.num_beams, ctx.eos_id, labels, best)

    def begin(
        self,
        logp: torch.Tensor,
        lengths: torch.Tensor,
        num_beams: int,
        eos_id: int,
        labels: Optional[CTCLabels] = None,
        best: Optional[list[list[int]]] = None,
    ) -> None:
        """Start on CTC log-probabilities ``(B, T, C)`` (what :meth:`start` reads of the
        head); ``best``: token ids to propose per utterance (None = none)."""
        self.prefix = CTCPrefixScorer(logp, lengths, num_beams, eos_id, labels)
        self.best = best

    def proposals(self) -> Optional[list[list[int]]]:
        return self.best

    def score(self, cands: torch.Tensor) -> list[torch.Tensor]:
        psi, self._states = self.prefix.score(cands)
        terms = [self.cfg.weight * psi]
        if self.cfg.label_bonus:
            terms.append(self.cfg.label_bonus * self.prefix.spelled_lengths())
        return terms

    def advance(self, rows: torch.Tensor, picks: torch.Tensor) -> None:
        self.prefix.advance(self._states, rows, picks)


def require_char_head(model: Any) -> None:
    """Raise ValueError where ``model`` has no character CTC head."""
    if model.char_ctc is None:
        raise ValueError(
            "decode.scorers.ctc.head=char reads the character CTC head, but this model has "
            "none (model.char_ctc.weight=0); set decode.scorers.ctc.head=token"
        )
