"""Tiny random models, tokenizers and batches for tests (no downloads).

Usage from any test::

    from tests.helpers import make_tiny_model, make_tiny_batch
    model = make_tiny_model(encoder="whisper", tmp_path=tmp_path)   # SlamASR
    batch = make_tiny_batch("whisper", num=3)                       # contract batch dict
    out = model(batch)

Builders write Hugging Face checkpoints into a directory so the real loading code
(``build_model``) is exercised.  Encoders: whisper|hubert|wavlm|wav2vec2|fbank.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import torch

from slamasr.models import SlamASR, build_model
from slamasr.models.config import (
    EncoderConfig,
    LLMConfig,
    ModelConfig,
    ProjectorConfig,
    PromptConfig,
)

WORDS = (
    "HELLO WORLD THE CAT SAT ON A MAT SPEECH TEXT GOOD MORNING YES NO ONE TWO THREE "
    "FOUR FIVE RED GREEN BLUE DOG RUNS FAST SLOW"
).split()

SMOL_STYLE_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def make_tiny_tokenizer(out_dir: Path, chat_template: Optional[str] = None) -> Any:
    """Train a ~160-token BPE tokenizer (``tokenizers``) and save it to ``out_dir``.

    BOS ``<s>`` is added by default (like LLaMA); EOS ``</s>``; pad ``<pad>``; chat markers
    ``<|im_start|>``/``<|im_end|>`` are special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    corpus = [" ".join(WORDS), "USER: ASSISTANT: Transcribe speech to text.", "system user"]
    corpus += [w.lower() for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz.:,?!")
    trainer = trainers.BpeTrainer(vocab_size=160, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(str(out_dir))
    return fast


def make_tiny_llm(
    out_dir: Path, chat_template: Optional[str] = None, seed: int = 0, kind: str = "llama"
) -> Path:
    """Save a 2-layer 64-d LLM + tiny tokenizer to ``out_dir``; return the dir.

    ``kind``: ``llama`` (RoPE, relative positions) or ``gpt2`` (learned absolute positions,
    which makes wrong position ids visible in outputs).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = make_tiny_tokenizer(out_dir, chat_template)
    if kind == "gpt2":
        return _save_tiny_gpt2(out_dir, tok, seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        initializer_range=0.3,  # logits with real spread, so soft prompts can steer it
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(str(out_dir))
    return out_dir


def _save_tiny_gpt2(out_dir: Path, tok: Any, seed: int) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tok),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        initializer_range=0.3,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(str(out_dir))
    return out_dir


def make_tiny_encoder(name: str, out_dir: Path, seed: int = 0, **config_kwargs: Any) -> Path:
    """Save a tiny random whisper|hubert|wavlm|wav2vec2 checkpoint; return the dir.

    ``config_kwargs`` override config fields (e.g. ``feat_extract_norm="layer"``).
    """
    import transformers

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if name == "whisper":
        kwargs = dict(
            num_mel_bins=80,
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=2,
            decoder_layers=1,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            vocab_size=64,
            max_source_positions=1500,
            max_target_positions=32,
            pad_token_id=1,
            bos_token_id=2,
            eos_token_id=2,
            decoder_start_token_id=3,
            suppress_tokens=[],
            begin_suppress_tokens=[],
        )
        kwargs.update(config_kwargs)
        transformers.WhisperModel(transformers.WhisperConfig(**kwargs)).save_pretrained(out_dir)
        return out_dir
    kwargs = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="group",
        vocab_size=32,
    )
    if name == "wavlm":
        kwargs.update(num_buckets=32, max_bucket_distance=80)
    kwargs.update(config_kwargs)
    kwargs.setdefault("do_stable_layer_norm", kwargs["feat_extract_norm"] == "layer")
    cls = {"hubert": "Hubert", "wavlm": "WavLM", "wav2vec2": "Wav2Vec2"}[name]
    config = getattr(transformers, f"{cls}Config")(**kwargs)
    getattr(transformers, f"{cls}Model")(config).save_pretrained(out_dir)
    return out_dir


def tiny_model_config(
    encoder: str,
    tmp_path: Path,
    template: str = "plain",
    llm: str = "llama",
    **encoder_kwargs: Any,
) -> ModelConfig:
    """A ModelConfig pointing at freshly saved tiny checkpoints under ``tmp_path``."""
    chat = SMOL_STYLE_CHAT_TEMPLATE if template == "chat" else None
    llm_dir = make_tiny_llm(Path(tmp_path) / "llm", chat_template=chat, kind=llm)
    enc_path = ""
    if encoder != "fbank":
        enc_path = str(make_tiny_encoder(encoder, Path(tmp_path) / encoder, **encoder_kwargs))
    return ModelConfig(
        encoder=EncoderConfig(name=encoder, path=enc_path, feature_dim=80),
        projector=ProjectorConfig(hidden_dim=64),
        llm=LLMConfig(path=str(llm_dir), dtype="float32"),
        prompt=PromptConfig(template=template),
    )


def make_tiny_model(
    encoder: str = "whisper",
    tmp_path: Path | str = "",
    template: str = "plain",
    seed: int = 0,
    llm: str = "llama",
    **encoder_kwargs: Any,
) -> SlamASR:
    """Build a tiny SlamASR end to end through ``build_model`` (fp32, CPU).

    Args:
        encoder: whisper|hubert|wavlm|wav2vec2|fbank.
        tmp_path: directory for the checkpoints (pytest's ``tmp_path``).
        template: plain|chat (chat uses a SmolLM2-style template with a hidden default
            system prompt, which the model must not pick up).
        seed: seeds the projector's initialization.
        llm: llama (RoPE) | gpt2 (absolute positions).
        **encoder_kwargs: encoder config overrides (e.g. ``feat_extract_norm="layer"``).

    Returns:
        The model, projector trainable, everything else frozen.
    """
    if not tmp_path:
        raise ValueError("make_tiny_model needs a tmp_path to save the tiny checkpoints in")
    cfg = tiny_model_config(encoder, Path(tmp_path), template, llm, **encoder_kwargs)
    torch.manual_seed(seed)
    return build_model(cfg, device="cpu")


def make_tiny_batch(
    encoder: str = "whisper",
    num: int = 3,
    seed: int = 0,
    durations: Optional[list[float]] = None,
    texts: Optional[list[str]] = None,
) -> dict[str, Any]:
    """A batch dict as the data layer yields it (docs/internals.md), random inputs.

    Args:
        encoder: decides the input kind: whisper -> (B, T, 80) log-mel in Whisper's range;
            fbank -> (B, T, 80); SSL encoders -> (B, S) 16 kHz waveform.
        num: batch size.
        seed: RNG seed.
        durations: seconds per utterance (default 0.5, 0.4, 0.3, ...).
        texts: transcripts (default: short word sequences).
    """
    gen = torch.Generator().manual_seed(seed)
    durations = durations or [max(0.2, 0.5 - 0.1 * i) for i in range(num)]
    if texts is None:
        texts = [
            " ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(2 + i % 3)) for i in range(num)
        ]
    audio = encoder in ("hubert", "wavlm", "wav2vec2")
    rate = 16000 if audio else 100
    lengths = torch.tensor([int(math.floor(d * rate)) for d in durations])
    if audio:
        inputs = 0.1 * torch.randn(num, int(lengths.max()), generator=gen)  # (B, S)
    else:
        inputs = torch.randn(num, int(lengths.max()), 80, generator=gen)  # (B, T, 80)
        if encoder == "whisper":
            inputs = (inputs * 0.3).clamp(-1.0, 1.5)
    valid = torch.arange(inputs.shape[1])[None, :] < lengths[:, None]
    inputs = inputs * (valid if audio else valid[:, :, None])
    return {
        "inputs": inputs,
        "input_lengths": lengths,
        "texts": list(texts),
        "cut_ids": [f"utt-{seed}-{i}" for i in range(num)],
        "durations": torch.tensor(durations, dtype=torch.float32),
        "bad_cut_ids": [],
    }


def select_items(batch: dict[str, Any], index: list[int]) -> dict[str, Any]:
    """Sub-batch of ``batch`` at ``index``, trimmed to its own longest input."""
    lengths = batch["input_lengths"][index]
    inputs = batch["inputs"][index][:, : int(lengths.max())]
    return {
        "inputs": inputs,
        "input_lengths": lengths,
        "texts": [batch["texts"][i] for i in index],
        "cut_ids": [batch["cut_ids"][i] for i in index],
        "durations": batch["durations"][index],
        "bad_cut_ids": [],
    }


def dump_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as JSON (used to add preprocessor configs to tiny checkpoints)."""
    Path(path).write_text(json.dumps(obj), encoding="utf-8")


def ctc_paths(steps: int, classes: int) -> Iterator[tuple[tuple[int, ...], list[int]]]:
    """Every CTC path over ``steps`` positions (class 0 = blank, c + 1 = token c) with the token
    ids it collapses to (repeats merged, blanks removed): brute force for small cases."""
    for path in itertools.product(range(classes), repeat=steps):
        collapsed, prev = [], 0
        for c in path:
            if c != prev and c != 0:
                collapsed.append(c - 1)
            prev = c
        yield path, collapsed
