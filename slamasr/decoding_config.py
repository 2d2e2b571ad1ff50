"""Decoding configuration (``decode:``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DecodeConfig:
    """The ``decode:`` section.

    Attributes:
        num_beams: beam size (paper 4; 1 = greedy).
        max_duration: seconds of audio per decoding batch (cuts sorted by duration).
        batch_size: used when max_duration is 0.
        max_new_tokens_per_second: bound on generated tokens per second of audio.
        min_new_tokens_bound: the bound is never below this.
        length_penalty, repetition_penalty: scoring of the search.
        search: native (slamasr's batched beam search: prompt run once per utterance, each
            utterance stops at its own bound and leaves the batch) | hf (transformers'
            ``generate``, as reference implementations decode) | ctc (a probe of the projector,
            not SLAM-ASR decoding: best path of its auxiliary CTC head, the LLM is not run;
            needs ``model.projector.ctc_weight`` > 0; num_beams is ignored).
        ctc_weight: 0 = the LLM alone (the paper); w > 0 = joint CTC/LLM beam search with the
            projector's CTC head (not in the paper; ESPnet's hybrid decoding): hypotheses
            score ``(1 - w) * log p_LLM + w * log p_CTC-prefix``; needs
            ``model.projector.ctc_weight`` > 0 and search=native.
        ctc_pre_beam: with ctc_weight > 0, how many of the LLM's best tokens per beam get a
            CTC score (EOS always does).
        ctc_head: which CTC head ``ctc_weight`` and ``search=ctc`` read: token (the
            projector's, ``model.projector.ctc_weight``) | char (the character head on the
            encoder's frames, ``model.char_ctc.weight``; spells words the token head never saw
            in training).
        ctc_proposals: with ctc_weight > 0, also score the tokens of the CTC head's best path
            for every beam (beside the LLM's top ``ctc_pre_beam``): a word the LLM does not
            rank high, but the head hears, can still be chosen.
        ctc_label_bonus: with ctc_weight > 0, added to a hypothesis' score per CTC class it
            spells (per letter with ctc_head=char). Hypotheses of one step hold the same number
            of tokens but not of letters, and a CTC prefix probability only falls as a
            hypothesis commits to more letters, so without it the search favours tokens that
            spell little (a word split into fragments); a bonus around the head's per-letter
            cost removes that bias. 0 = off (ESPnet's scoring).
        checkpoint: which checkpoint to decode: best | last | step-N | epoch-N.
        avg: average the last ``avg`` step checkpoints (icefall's --avg); 1 = no averaging.
    """

    num_beams: int = 4
    max_duration: float = 120.0
    batch_size: int = 8
    max_new_tokens_per_second: float = 8.0
    min_new_tokens_bound: int = 16
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    search: str = "native"
    ctc_weight: float = 0.0
    ctc_pre_beam: int = 8
    ctc_head: str = "token"
    ctc_proposals: bool = True
    ctc_label_bonus: float = 0.0
    checkpoint: str = "best"
    avg: int = 1

    def validate(self) -> None:
        if self.num_beams < 1:
            raise ValueError("decode.num_beams must be >= 1")
        if self.search not in ("native", "hf", "ctc"):
            raise ValueError(f"decode.search={self.search!r}; choose native, hf or ctc")
        if not 0 <= self.ctc_weight < 1:
            raise ValueError(
                f"decode.ctc_weight={self.ctc_weight}; must be in [0, 1) (0 = the LLM alone)"
            )
        if self.ctc_weight > 0 and self.search != "native":
            raise ValueError(
                f"decode.ctc_weight={self.ctc_weight} needs decode.search=native, "
                f"not {self.search!r}"
            )
        if self.ctc_head not in ("token", "char"):
            raise ValueError(f"decode.ctc_head={self.ctc_head!r}; choose token or char")
        if self.ctc_pre_beam < 1:
            raise ValueError(f"decode.ctc_pre_beam={self.ctc_pre_beam}; must be >= 1")
        if self.avg < 1:
            raise ValueError("decode.avg must be >= 1")
