"""Tiny LLaMA-style (SentencePiece) and GPT-2-style (byte-level BPE) tokenizers for tests.

``make_llama_sp_tokenizer`` trains a real SentencePiece BPE model (dummy-prefix ``▁``, byte
fallback, BOS ``<s>`` added by default) and loads it the way LLaMA-2 and Vicuna checkpoints
ship (``tokenizer.model`` + ``tokenizer_config.json`` with ``legacy``), as the slow-class name
``LlamaTokenizer`` or the fast ``LlamaTokenizerFast``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SP_CORPUS = (
    "USER: Transcribe speech to text. ASSISTANT: HELLO WORLD THE CAT SAT ON A MAT",
    "USER: Transcribe speech to text. \n ASSISTANT:GOOD MORNING YES NO ONE TWO THREE",
    "Write down what is said in the audio. Please transcribe the recording.",
    "hello world the cat sat on a mat good morning",
)


def make_llama_sp_tokenizer(out_dir: Path, legacy: bool = True, fast: bool = False) -> Any:
    """Train a 400-piece SentencePiece BPE into ``out_dir`` and load it as LLaMA's tokenizer."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer, LlamaTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    model = out_dir / "tokenizer.model"
    if not model.exists():
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(list(SP_CORPUS) * 20),
            model_prefix=str(out_dir / "tokenizer"),
            vocab_size=400,
            model_type="bpe",
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            byte_fallback=True,
            add_dummy_prefix=True,
            normalization_rule_name="identity",
            minloglevel=2,
        )
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "legacy": legacy,
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    cls = LlamaTokenizerFast if fast else LlamaTokenizer
    return cls.from_pretrained(str(out_dir))


def make_gpt2_bpe_tokenizer(out_dir: Path) -> Any:
    """A byte-level BPE (GPT-2/SmolLM2 style: ``Ġ`` marks a leading space, no BOS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(SP_CORPUS) * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    fast.save_pretrained(str(out_dir))
    return fast
