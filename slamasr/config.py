"""Typed experiment configuration: YAML files + command-line overrides -> dataclasses.

A config file has four sections, each a dataclass owned by the layer that uses it::

    model:   slamasr.models.config.ModelConfig     (encoder, projector, llm, prompt)
    data:    slamasr.data.config.DataConfig        (manifests, features, sampling)
    train:   slamasr.training.config.TrainConfig   (optimizer, schedule, checkpoints)
    decode:  slamasr.decoding.config.DecodeConfig  (beam search, scorers, batching)

Overrides use dotted keys, e.g. ``train.lr=5e-4`` or ``model.encoder.name=hubert``; the
command line wins over the file.  Unknown keys are an error naming the key and listing the
valid ones; values are checked against the field's type.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from slamasr.data.config import DataConfig
from slamasr.decoding.config import DecodeConfig, upgrade_legacy_keys
from slamasr.models.config import ModelConfig
from slamasr.models.hub import is_path_shaped
from slamasr.training.config import TrainConfig


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what to do."""


@dataclass
class ExperimentConfig:
    """Everything one experiment needs; written resolved into the exp dir."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def validate(self, check_paths: bool = True) -> None:
        """Check every section, then whether encoder, LLM and data fit together.

        Reads nothing but the ``config.json`` of local model directories: no weights are
        loaded, so a bad config fails in seconds with one message naming the key and the fix.

        Args:
            check_paths: require path-shaped model paths to exist (false: a recipe reading
                values before its stage 0 has created the model directories).

        Raises:
            ConfigError: the first problem found.
        """
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if hasattr(section, "validate"):
                try:
                    section.validate()
                except ValueError as e:  # ConfigError included
                    raise ConfigError(f"[{f.name}] {e}") from None
        if check_paths:
            check_model_paths(self)
        check_encoder_data_fit(self)
        check_prompt_fits_llm(self)
        check_ctc_warmup(self)
        check_ctc_decoding(self)


# --------------------------------------------------------------------------- cross-checks

# What each encoder reads (besides input_kind=encoder_cache, which fits every encoder).
ENCODER_INPUT_KINDS = {
    "whisper": "whisper_mel",
    "fbank": "fbank",
    "hubert": "audio",
    "wavlm": "audio",
    "wav2vec2": "audio",
}
FBANK_DIM = 80  # slamasr.data.features: Kaldi fbank features are always 80-d
# config.json ``model_type`` values each encoder name accepts
ENCODER_MODEL_TYPES = {
    "whisper": ("whisper",),
    "hubert": ("hubert",),
    "wavlm": ("wavlm",),
    "wav2vec2": ("wav2vec2", "wav2vec2-conformer"),
}


def is_local_path(path: str) -> bool:
    """True when ``path`` can only mean a local directory (``models.hub.is_path_shaped``)."""
    return is_path_shaped(path)


def local_model_dir(key: str, path: str, required: bool = True) -> Optional[Path]:
    """The directory of a model path, None for a hub id; raise if a local path is missing.

    A path-shaped value (``slamasr.models.hub.is_path_shaped``: ``./x``, ``/x``, ``~/x``,
    ``models/x``, ``a/b/c`` ...) never falls back to meaning a hub id.

    Args:
        key: the config key, for the message (``model.llm.path``).
        path: its value.
        required: raise when a path-shaped value is missing (false: return None).

    Raises:
        ConfigError: ``path`` is clearly local but no such directory exists.
    """
    if not path:
        return None
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    if required and is_local_path(path):
        raise ConfigError(
            f"{key}={path!r}: no such directory (relative to the working directory "
            f"{Path.cwd()}). Download the model there first (recipe stage 0 / python -m "
            f"slamasr.bin.fetch_models) or set {key} to an existing directory or a Hugging "
            f"Face id"
        )
    return None


def read_model_config(model_dir: Optional[Path]) -> dict[str, Any]:
    """``config.json`` of a local model directory as a dict ({} when absent or a hub id)."""
    if model_dir is None or not (model_dir / "config.json").is_file():
        return {}
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except ValueError as e:
        raise ConfigError(f"{model_dir / 'config.json'} is not valid JSON: {e}") from None
    return data if isinstance(data, dict) else {}


def check_model_paths(cfg: ExperimentConfig) -> None:
    """Local encoder/LLM directories (and the LLM's GGUF file) must exist."""
    enc = cfg.model.encoder
    if enc.name != "fbank":
        local_model_dir("model.encoder.path", enc.path)
    llm = cfg.model.llm
    llm_dir = local_model_dir("model.llm.path", llm.path)
    if llm_dir is not None and llm.gguf_file and not (llm_dir / llm.gguf_file).is_file():
        raise ConfigError(
            f"model.llm.gguf_file={llm.gguf_file!r} is not in {llm_dir}; set it to the name "
            f"of a .gguf file inside model.llm.path"
        )


def check_encoder_data_fit(cfg: ExperimentConfig) -> None:
    """The data must feed what the encoder reads, with the dimensions it expects."""
    enc, data = cfg.model.encoder, cfg.data
    wanted = ENCODER_INPUT_KINDS[enc.name]
    if data.input_kind not in (wanted, "encoder_cache"):
        raise ConfigError(
            f"data.input_kind={data.input_kind!r} does not fit model.encoder.name={enc.name!r}, "
            f"which reads {wanted}; set data.input_kind={wanted} (or encoder_cache)"
        )
    if enc.name == "fbank" and data.input_kind == "fbank" and enc.feature_dim != FBANK_DIM:
        raise ConfigError(
            f"model.encoder.feature_dim={enc.feature_dim} but fbank features are "
            f"{FBANK_DIM}-d; set model.encoder.feature_dim={FBANK_DIM}"
        )
    if enc.name == "fbank":
        return
    model_cfg = read_model_config(local_model_dir("model.encoder.path", enc.path, False))
    _check_encoder_type(enc.name, enc.path, model_cfg)
    if enc.name == "whisper":
        _check_whisper_window(data.max_audio_seconds, model_cfg)
    n_mels = model_cfg.get("num_mel_bins")
    if enc.name == "whisper" and data.input_kind == "whisper_mel" and n_mels is not None:
        if n_mels != data.n_mels:
            raise ConfigError(
                f"data.n_mels={data.n_mels} but the Whisper encoder at {enc.path} takes "
                f"{n_mels} mel bins; set data.n_mels={n_mels} (and recompute features)"
            )


def has_chat_template(llm_dir: Path) -> bool:
    """Whether a local tokenizer ships a chat template (in its config or a file of its own)."""
    if (llm_dir / "chat_template.jinja").is_file() or (llm_dir / "chat_template.json").is_file():
        return True
    config = llm_dir / "tokenizer_config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    except ValueError:
        return False


def check_ctc_warmup(cfg: ExperimentConfig) -> None:
    """``train.ctc_only_steps`` trains on the projector's CTC loss, which must exist."""
    if cfg.train.ctc_only_steps > 0 and cfg.model.projector.ctc_weight <= 0:
        raise ConfigError(
            f"train.ctc_only_steps={cfg.train.ctc_only_steps} trains on the projector's "
            f"auxiliary CTC loss, but model.projector.ctc_weight=0 (no CTC head); set "
            f"model.projector.ctc_weight > 0 (e.g. 0.5) or train.ctc_only_steps=0"
        )


def check_ctc_decoding(cfg: ExperimentConfig) -> None:
    """The CTC head that decoding reads (``decode.scorers.ctc``, the ``search=ctc`` probe)
    must have been trained."""
    ctc = cfg.decode.scorers["ctc"]
    if not (ctc.weight > 0 or cfg.decode.search == "ctc"):
        return
    if ctc.head == "char" and cfg.model.char_ctc.weight <= 0:
        raise ConfigError(
            "decode.scorers.ctc.head=char reads the character CTC head, but "
            "model.char_ctc.weight=0 (trained without one); set decode.scorers.ctc.head=token"
        )
    if ctc.head == "token" and ctc.weight > 0 and cfg.model.projector.ctc_weight <= 0:
        raise ConfigError(
            f"decode.scorers.ctc.weight={ctc.weight} scores hypotheses with the projector's "
            f"CTC head, but model.projector.ctc_weight=0 (trained without one); set "
            f"decode.scorers.ctc.weight=0"
        )


def check_prompt_fits_llm(cfg: ExperimentConfig) -> None:
    """``model.prompt.template=chat`` needs an LLM whose tokenizer has a chat template."""
    llm = cfg.model.llm
    if cfg.model.prompt.template != "chat" or llm.gguf_file:  # GGUF files carry their own
        return
    llm_dir = local_model_dir("model.llm.path", llm.path, required=False)
    if llm_dir is not None and not has_chat_template(llm_dir):
        raise ConfigError(
            f"model.prompt.template=chat but the tokenizer in {llm_dir} has no chat template; "
            f"set model.prompt.template=plain or use an instruction-tuned (chat) LLM"
        )


def _check_whisper_window(max_audio_seconds: float, model_cfg: dict[str, Any]) -> None:
    """Training cuts must fit Whisper's input window (1500 positions = 30 s by default)."""
    window = model_cfg.get("max_source_positions", 1500) * 2 / 100  # 100 mel frames per s
    if max_audio_seconds > window:
        raise ConfigError(
            f"data.max_audio_seconds={max_audio_seconds} exceeds the Whisper encoder's "
            f"{window:g} s window; set data.max_audio_seconds={window:g} (longer audio: use "
            f"python -m slamasr.bin.transcribe, which cuts it into chunks)"
        )


def _check_encoder_type(name: str, path: str, model_cfg: dict[str, Any]) -> None:
    """A local checkpoint's ``model_type`` must be what ``model.encoder.name`` loads."""
    model_type = model_cfg.get("model_type")
    if model_type is None or model_type in ENCODER_MODEL_TYPES[name]:
        return
    fit = [n for n, types_ in ENCODER_MODEL_TYPES.items() if model_type in types_]
    fix = f"set model.encoder.name={fit[0]}" if fit else "point it at a supported encoder"
    raise ConfigError(
        f"model.encoder.path={path!r} holds a {model_type!r} model, not {name}; {fix}"
    )


# --------------------------------------------------------------------------- conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a CLI string) to type ``tp``; raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null", "~") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} does not fit {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        k_tp, v_tp = typing.get_args(tp) or (Any, Any)
        return {_coerce(k, k_tp, key): _coerce(v, v_tp, f"{key}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if "e" in value.lower() else int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in (data or {}).items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(
                f"unknown config key '{full}'. Valid keys here: {', '.join(sorted(names))}"
            )
        kwargs[key] = _coerce(value, hints[key], full)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain nested dict (YAML-safe)."""
    return dataclasses.asdict(cfg)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a section")
    node[parts[-1]] = value


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """``["train.lr=1e-3", "model.encoder.name=hubert"]`` -> nested dict (values YAML-parsed)."""
    tree: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} must look like section.key=value (e.g. train.lr=1e-4)"
            )
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; a file may ``include:`` another (relative path) as its base."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    base = data.pop("include", None)
    if base:
        data = _merge(load_yaml(path.parent / base), data)
    return data


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    validate: bool = True,
    check_paths: bool = True,
    recorded: bool = False,
) -> ExperimentConfig:
    """Load a YAML config, apply dotted overrides, build and validate the dataclasses.

    Args:
        path: YAML file (or None for all defaults).
        overrides: ``section.key=value`` strings; they win over the file.
        validate: run the sections' checks (no model is loaded).
        check_paths: with ``validate``, require local model directories to exist.
        recorded: ``path`` is an experiment's recorded ``config.yaml``: flat ``decode`` keys
            of before the scorer sections are read as their new keys (a notice is logged);
            elsewhere (and in ``overrides`` always) they are an error naming the new key.

    Returns:
        The resolved ExperimentConfig.
    """
    data = load_yaml(path) if path else {}
    extra = parse_overrides(overrides)
    where = f" (in {path})" if path else ""
    try:
        if isinstance(data.get("decode"), dict):
            data["decode"] = upgrade_legacy_keys(data["decode"], str(path), convert=recorded)
        if isinstance(extra.get("decode"), dict):
            upgrade_legacy_keys(extra["decode"], "--set", convert=False)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    data = _merge(data, extra)
    try:
        cfg = from_dict(ExperimentConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{e}{where}") from None
    if validate:
        try:
            cfg.validate(check_paths=check_paths)
        except ConfigError as e:
            raise ConfigError(f"{e}{where}") from None
    return cfg


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
