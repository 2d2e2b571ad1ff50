"""Decoding configuration (``decode:``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

CHECKPOINT_RE = re.compile(r"best|last|step-[0-9]+")
"""The names ``decode.checkpoint`` accepts (those of ``training.checkpoint``)."""


@dataclass
class DecodeConfig:
    """The ``decode:`` section.

    Attributes:
        num_beams: beam size (paper 4; 1 = greedy).
        max_duration: seconds of audio per decoding batch (cuts sorted by duration).
        batch_size: used when max_duration is 0.
        max_new_tokens_per_second: bound on generated tokens (EOS included) per second of
            audio; each utterance may generate
            ``max(min_new_tokens_bound, ceil(duration * max_new_tokens_per_second))`` tokens.
            The defaults never cut a LibriSpeech transcript: upper-case LibriSpeech text
            takes a LLaMA tokenizer ~2.3 tokens per word (3.0 for the 1% densest 20-word
            utterances; ``python tools/token_rate.py``), so 20 tokens/s holds even 6 words/s
            at that density; lower-case text needs about half. A hypothesis that reaches its bound
            without EOS is cut there, logged and counted (``bound_hits`` in ``exp/X/wer``).
        min_new_tokens_bound: the bound is never below this (200: the official SLAM-ASR
            code's fixed ``max_new_tokens``).
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
        word_prior: a ``word<TAB>count`` file (``python -m slamasr.bin.prepare_word_counts``):
            a word unigram for the joint search with ``ctc_head=char``
            (:class:`slamasr.models.word_prior.WordPrior`); relative paths from where decoding
            runs (the recipe directory).
        word_prior_weight: its weight in the joint score (log-probabilities of completed
            words + the look-ahead of the word being spelled); 0 = off. Keeps the search on
            real words where the LLM, fed speech unlike its training data, is a weak language
            model and the character head spells what it hears (``microweve``).
        word_prior_oov: log-probability charged once to a word outside the prior.
        word_prior_bonus: added to the prior per word (a word insertion bonus): a unigram
            alone charges every word about -8, so a run of words spelled as one non-word
            would cost less than the words.
        word_prior_max_words: keep the prior's most frequent words; 0 = all.
        word_prior_corrections: with ``ctc_proposals``, for each word of the character head's
            best path outside the prior's lexicon, the tokens of up to this many lexicon words
            within 2 edits of it are proposed too (``microweve`` -> *microwave*), and of up
            to this many two-word readings of it (``offearly`` -> *off early*) and one-word
            readings of it with a neighbour (``podc ast`` -> *podcast*): the LLM may not rank
            them and the head's best path does not hold them. 0 = off.
        word_prior_sound_alikes: with ``word_prior_corrections``, also propose up to this many
            lexicon words that sound like such a word (the same consonant skeleton,
            :func:`slamasr.models.word_prior.sound_key`; ``alorges`` -> *allergies*), however
            many letters they differ by. 0 = off.
        lm_rescore_weight: rescore each utterance's finished hypotheses (up to ``num_beams``)
            with the frozen LLM read as a text-only language model (no speech: the
            tokenizer's BOS, the hypothesis, EOS): ``search score + w * mean log p_LM`` per
            token, both length-normalized. The LLM fed speech leans on the speech; fed the
            text alone it prefers what English says (*there might be*, not *their might
            be*). 0 = off (the paper). Needs search=native.
        checkpoint: which checkpoint of ``<exp-dir>/checkpoints`` to decode: best | last |
            step-N (a name, never a path).
        avg: average the last ``avg`` step checkpoints (icefall's --avg); 1 = no averaging.
    """

    num_beams: int = 4
    max_duration: float = 120.0
    batch_size: int = 8
    max_new_tokens_per_second: float = 20.0
    min_new_tokens_bound: int = 200
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    search: str = "native"
    ctc_weight: float = 0.0
    ctc_pre_beam: int = 8
    ctc_head: str = "token"
    ctc_proposals: bool = True
    ctc_label_bonus: float = 0.0
    word_prior: str = ""
    word_prior_weight: float = 0.0
    word_prior_oov: float = -20.0
    word_prior_bonus: float = 0.0
    word_prior_max_words: int = 0
    word_prior_corrections: int = 0
    word_prior_sound_alikes: int = 0
    lm_rescore_weight: float = 0.0
    checkpoint: str = "best"
    avg: int = 1

    def validate(self) -> None:
        if self.num_beams < 1:
            raise ValueError("decode.num_beams must be >= 1")
        if not CHECKPOINT_RE.fullmatch(self.checkpoint):
            raise ValueError(
                f"decode.checkpoint={self.checkpoint!r}: use best, last or step-N (the name "
                f"of a checkpoint in <exp-dir>/checkpoints, not a path)"
            )
        if not self.max_new_tokens_per_second > 0:
            raise ValueError(
                f"decode.max_new_tokens_per_second={self.max_new_tokens_per_second}; must be > 0"
            )
        if self.min_new_tokens_bound < 1:
            raise ValueError(
                f"decode.min_new_tokens_bound={self.min_new_tokens_bound}; must be >= 1"
            )
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
        if self.word_prior_weight < 0:
            raise ValueError(f"decode.word_prior_weight={self.word_prior_weight}; must be >= 0")
        if self.word_prior_weight > 0:
            if not self.word_prior:
                raise ValueError(
                    "decode.word_prior_weight > 0 needs decode.word_prior, a word<TAB>count file "
                    "(python -m slamasr.bin.prepare_word_counts)"
                )
            if self.ctc_weight <= 0 or self.ctc_head != "char":
                raise ValueError(
                    "decode.word_prior_weight > 0 scores the character CTC head's spelling: "
                    "set decode.ctc_weight > 0 and decode.ctc_head=char, or word_prior_weight=0"
                )
            if self.word_prior_oov >= 0:
                raise ValueError(
                    f"decode.word_prior_oov={self.word_prior_oov}; a log-probability, must be < 0"
                )
        if self.word_prior_max_words < 0:
            raise ValueError("decode.word_prior_max_words must be >= 0 (0 = all words)")
        if self.word_prior_corrections < 0:
            raise ValueError("decode.word_prior_corrections must be >= 0 (0 = off)")
        if self.word_prior_sound_alikes < 0:
            raise ValueError("decode.word_prior_sound_alikes must be >= 0 (0 = off)")
        if self.lm_rescore_weight < 0:
            raise ValueError(f"decode.lm_rescore_weight={self.lm_rescore_weight}; must be >= 0")
        if self.lm_rescore_weight > 0 and self.search != "native":
            raise ValueError(
                f"decode.lm_rescore_weight > 0 rescores the n-best of decode.search=native, "
                f"not {self.search!r}; set lm_rescore_weight=0 or search=native"
            )
        if self.avg < 1:
            raise ValueError("decode.avg must be >= 1")
