"""The frozen LLM, its tokenizer, and the prompt template around the speech embeddings.

Plain template (paper)::

    [BOS] "USER: " <speech> " " <prompt> " ASSISTANT: " <transcript> <eos>

Chat template: the tokenizer's own chat template rendered with an explicit system message
(never the template's hidden default) and a user turn ``<speech> <prompt>``, with the
generation prompt appended; the speech embeddings replace a placeholder in that text.

Each text piece (prefix before the speech, suffix after it, transcript) is tokenized on its
own with ``add_special_tokens=False``, identically for training and inference.
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
        add_bos: put BOS first (plain template); None = the tokenizer's default.
    """

    def __init__(self, tokenizer: Any, cfg: PromptConfig, add_bos: Optional[bool] = None) -> None:
        cfg.validate()
        self.tokenizer = tokenizer
        self.cfg = cfg
        if add_bos is None:
            add_bos = cfg.template == "plain" and tokenizer_adds_bos(tokenizer)
        self.add_bos = bool(add_bos) and tokenizer.bos_token_id is not None
        self.library = list(cfg.library) or list(DEFAULT_PROMPT_LIBRARY)
        self._cache: dict[str, TemplatePieces] = {}

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
        """Transcript tokens followed by EOS: what the loss supervises."""
        return self.encode_text(transcript) + [self.eos_id]

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
            else:
                self._cache[prompt] = self._plain_pieces(prompt)
        return self._cache[prompt]

    def _plain_pieces(self, prompt: str) -> TemplatePieces:
        prefix = [self.tokenizer.bos_token_id] if self.add_bos else []
        prefix += self.encode_text(self.cfg.user_prefix)
        middle = self.cfg.separator + prompt if prompt else ""
        suffix = self.encode_text(middle + self.cfg.assistant_prefix)
        return TemplatePieces(prefix, suffix)

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
        text = self.render_chat(prompt)
        if text.count(SPEECH_PLACEHOLDER) != 1:
            raise ValueError(f"the chat template dropped the speech placeholder: {text!r}")
        before, after = text.split(SPEECH_PLACEHOLDER)
        prefix = self.encode_text(before)
        if self.add_bos and (not prefix or prefix[0] != self.tokenizer.bos_token_id):
            prefix = [self.tokenizer.bos_token_id] + prefix
        return TemplatePieces(prefix, self.encode_text(after))
