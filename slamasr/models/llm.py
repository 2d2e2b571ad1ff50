"""The frozen LLM, its tokenizer, and the prompt template around the speech embeddings.

Plain template (paper)::

    [BOS] "USER:" <speech> " " <prompt> " ASSISTANT:" " " <transcript> <eos>

Chat template: the tokenizer's own chat template rendered with an explicit system message
(never the template's hidden default) and a user turn ``<speech> <prompt>``, with the
generation prompt appended; the speech embeddings replace a placeholder in that text.

``slam_llm`` template (the official SLAM-LLM code, ``examples/asr_librispeech`` with
``src/slam_llm/datasets/speech_dataset.py``): the speech comes first, then the tokenizer's
BOS and ``"USER: {prompt} \n ASSISTANT:"`` with the transcript appended without a space::

    <speech> [BOS] "USER: Transcribe speech to text. \n ASSISTANT:" <transcript> <eos>

Tokenization (``model.prompt.joint_tokenization``, on by default): the text pieces are
tokenized as the tokenizer tokenizes the joined text, the speech standing where a word would,
so no piece carries a stray whitespace token and the transcript's first word gets its
word-initial form (``▁HELLO``/``ĠHELLO``), as the LLM saw such text in pre-training.  Whitespace
between a piece and the speech or the transcript belongs to the word after it, as SentencePiece
and GPT-2 BPE attach it.  ``joint_tokenization: false`` tokenizes each piece on its own
(``add_special_tokens=False``), what experiments trained before this option used.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from slamasr.models.config import LLMConfig, PromptConfig
from slamasr.models.hub import load_pretrained, resolve_dtype

logger = logging.getLogger(__name__)

DEFAULT_PROMPT_LIBRARY: tuple[str, ...] = (
    "Transcribe speech to text.",
    "Write down what is said in the audio.",
    "Convert the speech into written words.",
    "Please transcribe the recording.",
    "What does the speaker say? Write it out.",
    "Turn this audio into a text transcript.",
    "Give the exact words spoken in this clip.",
    "Listen and transcribe the speech verbatim.",
    "Produce a transcription of the spoken words.",
    "Recognize the speech and output the text.",
)

SPEECH_PLACEHOLDER = "<|slamasr_speech|>"
# the official SLAM-LLM prompt (src/slam_llm/datasets/speech_dataset.py: prompt_template)
SLAM_LLM_TEMPLATE = "USER: {}\n ASSISTANT:"


def load_llm(cfg: LLMConfig, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """Load a frozen causal LM and its tokenizer.

    Args:
        cfg: the ``model.llm`` section.
        device: target device.

    Returns:
        (model in eval mode with requires_grad False, tokenizer).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg.validate()
    kwargs: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.gguf_file:
        kwargs["gguf_file"] = cfg.gguf_file
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, cfg.path, "LLM tokenizer", **kwargs)
    kwargs["dtype"] = resolve_dtype(cfg.dtype, device)
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    model = load_pretrained(AutoModelForCausalLM.from_pretrained, cfg.path, "LLM", **kwargs)
    model.requires_grad_(False)
    model.eval()
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {cfg.path} has no eos_token; SLAM-ASR needs one")
    return model.to(device), tokenizer


def decoder_and_head(llm: nn.Module) -> Optional[tuple[nn.Module, nn.Module]]:
    """(base model, lm_head) when ``llm`` is a plain decoder + linear head, else None.

    With the pair, callers run the vocabulary projection only where they need logits;
    models with logit soft-capping or scaling (or no separable head) return None and are
    run whole.
    """
    cfg = llm.config
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    try:
        base, head = llm.get_decoder(), llm.get_output_embeddings()
    except (AttributeError, NotImplementedError):  # models without these accessors
        return None
    if base is None or base is llm or not isinstance(head, nn.Linear):
        return None
    return base, head


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """True when the tokenizer puts BOS first by default (what the LM was used with)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == bos


def encode_pieces(tokenizer: Any, parts: list[str]) -> list[list[int]]:
    """Token ids of consecutive text ``parts`` as tokenizing ``"".join(parts)`` assigns them.

    No special tokens are added.  Each part's ids are the joined text's ids past those of
    the text before it.

    Raises:
        ValueError: a tokenizer token spans a boundary between two parts.
    """
    out: list[list[int]] = []
    text, before = "", []
    for part in parts:
        text += part
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
        if ids[: len(before)] != before:
            raise ValueError(
                f"the tokenizer merges text across the boundary before {part!r} in {text!r}; "
                f"change the prompt template's pieces (model.prompt) so a word boundary "
                f"separates them"
            )
        out.append(ids[len(before):])
        before = ids
    return out


def _tail_word(text: str) -> str:
    """The last whitespace-separated word of ``text`` with the whitespace after it."""
    stripped = text.rstrip()
    start = max(stripped.rfind(c) for c in " \t\n") + 1
    return text[start:]


@dataclass
class TemplatePieces:
    """Token ids around the speech embeddings for one prompt text."""

    prefix: list[int]
    suffix: list[int]


class PromptTemplate:
    """Turns (prompt, transcript) into token-id pieces around the speech embeddings.

    Args:
        tokenizer: the LLM's tokenizer.
        cfg: the ``model.prompt`` section.
        add_bos: put BOS first (plain template; after the speech for slam_llm); None = the
            tokenizer's default.
    """

    def __init__(self, tokenizer: Any, cfg: PromptConfig, add_bos: Optional[bool] = None) -> None:
        cfg.validate()
        self.tokenizer = tokenizer
        self.cfg = cfg
        if add_bos is None:
            add_bos = cfg.template != "chat" and tokenizer_adds_bos(tokenizer)
        self.add_bos = bool(add_bos) and tokenizer.bos_token_id is not None
        self.library = list(cfg.library) or list(DEFAULT_PROMPT_LIBRARY)
        self._cache: dict[str, TemplatePieces] = {}
        self._anchor: Optional[tuple[str, str]] = None  # (text before a transcript, its joiner)

    @property
    def eos_id(self) -> int:
        """The token that ends a transcript (``tokenizer.eos_token``)."""
        return int(self.tokenizer.eos_token_id)

    def encode_text(self, text: str) -> list[int]:
        """Token ids of a text piece, no special tokens added."""
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def target_ids(self, transcript: str) -> list[int]:
        """Transcript tokens followed by EOS: what the loss supervises.

        With joint tokenization they are the tokens the transcript gets after the template's
        last word (``ASSISTANT:`` for the plain template), which no prompt changes.
        """
        if not self.cfg.joint_tokenization:
            return self.encode_text(transcript) + [self.eos_id]
        anchor, joiner = self._transcript_anchor()
        _, ids = encode_pieces(self.tokenizer, [anchor, joiner + transcript])
        return ids + [self.eos_id]

    def _transcript_anchor(self) -> tuple[str, str]:
        """(the template's last word before the transcript, text between them)."""
        if self._anchor is None:
            if self.cfg.template == "chat":
                after = self._chat_texts("")[1]
                joiner = "" if after[-1:].isspace() else " "  # e.g. "[/INST]" + " " + answer
                self._anchor = (_tail_word(after), joiner)
            elif self.cfg.template == "slam_llm":
                self._anchor = (_tail_word(self._slam_llm_text("")), "")
            else:
                suffix = self._plain_texts("")[1]
                self._anchor = (_tail_word(suffix), " ")
        return self._anchor

    def prompt_text(self, training: bool, cut_id: str = "") -> str:
        """The prompt for one utterance.

        ``random`` draws from the library with torch's RNG during training (so seeding and
        RNG-state resume cover it); at inference the draw is a stable hash of the cut id, so a
        hypothesis never depends on batch composition.
        """
        mode = self.cfg.mode
        if mode == "none":
            return ""
        if mode == "long":
            return self.cfg.long_text
        if mode == "random":
            if training:
                index = int(torch.randint(len(self.library), (1,)).item())
            else:
                index = zlib.crc32(cut_id.encode("utf-8")) % len(self.library)
            return self.library[index]
        return self.cfg.text

    def pieces(self, prompt: str) -> TemplatePieces:
        """Prefix/suffix token ids around the speech for ``prompt`` (cached)."""
        if prompt not in self._cache:
            if self.cfg.template == "chat":
                self._cache[prompt] = self._chat_pieces(prompt)
            elif self.cfg.template == "slam_llm":
                self._cache[prompt] = self._slam_llm_pieces(prompt)
            else:
                self._cache[prompt] = self._plain_pieces(prompt)
        return self._cache[prompt]

    def _bos(self) -> list[int]:
        return [self.tokenizer.bos_token_id] if self.add_bos else []

    def _plain_texts(self, prompt: str) -> tuple[str, str]:
        """(text before the speech, text after it) of the plain template."""
        middle = self.cfg.separator + prompt if prompt else ""
        return self.cfg.user_prefix, middle + self.cfg.assistant_prefix

    def _plain_pieces(self, prompt: str) -> TemplatePieces:
        before, after = self._plain_texts(prompt)
        if not self.cfg.joint_tokenization:
            return TemplatePieces(self._bos() + self.encode_text(before), self.encode_text(after))
        # the speech stands for a word: the whitespace before it is its own, so "USER: " ends
        # at ":"; the text after it continues the text before (" Transcribe" -> "▁Transcribe")
        before = before.rstrip()
        after = (" " if before else "") + after.strip()
        prefix, suffix = encode_pieces(self.tokenizer, [before, after])
        return TemplatePieces(self._bos() + prefix, suffix)

    def _slam_llm_text(self, prompt: str) -> str:
        """The official SLAM-LLM text after the speech (its prompt carries a trailing space)."""
        return SLAM_LLM_TEMPLATE.format(prompt + " " if prompt else "")

    def _slam_llm_pieces(self, prompt: str) -> TemplatePieces:
        suffix = self._bos() + self.encode_text(self._slam_llm_text(prompt))
        return TemplatePieces([], suffix)

    def _chat_texts(self, prompt: str) -> tuple[str, str]:
        """(text before the speech, text after it) of the rendered chat template."""
        text = self.render_chat(prompt)
        if text.count(SPEECH_PLACEHOLDER) != 1:
            raise ValueError(f"the chat template dropped the speech placeholder: {text!r}")
        before, after = text.split(SPEECH_PLACEHOLDER)
        return before, after

    def render_chat(self, prompt: str) -> str:
        """The chat template's text with the speech placeholder, system message explicit."""
        user = SPEECH_PLACEHOLDER + (self.cfg.separator + prompt if prompt else "")
        messages = [
            {"role": "system", "content": self.cfg.system},
            {"role": "user", "content": user},
        ]
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def _chat_pieces(self, prompt: str) -> TemplatePieces:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "model.prompt.template=chat but the tokenizer has no chat_template; "
                "use template: plain"
            )
        before, after = self._chat_texts(prompt)
        if self.cfg.joint_tokenization:
            # spaces before the speech are the speech's ("[INST] " -> "[INST]"); newlines stay
            prefix, suffix = encode_pieces(self.tokenizer, [before.rstrip(" "), after])
        else:
            prefix, suffix = self.encode_text(before), self.encode_text(after)
        if self.add_bos and (not prefix or prefix[0] != self.tokenizer.bos_token_id):
            prefix = [self.tokenizer.bos_token_id] + prefix
        return TemplatePieces(prefix, suffix)
