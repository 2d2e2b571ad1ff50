"""DataConfig.validate: the data section's own checks, without touching files."""

import pytest

from slamasr.data.config import DataConfig


def test_defaults_are_valid_and_paper_like() -> None:
    cfg = DataConfig()
    cfg.validate()
    assert (cfg.batch_size, cfg.max_audio_seconds, cfg.n_mels) == (4, 30.0, 80)
    assert not cfg.allow_command_sources  # manifests with command/url sources are refused


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_kind": "mfcc"}, "input_kind"),
        ({"text_norm": "title"}, "text_norm"),
        ({"max_duration": 0.0, "batch_size": 0}, "max_duration"),
        ({"n_mels": 64}, "n_mels"),
        ({"min_encoder_frames": 0}, "min_encoder_frames"),
        ({"max_audio_seconds": 0.05}, "max_audio_seconds"),
        ({"max_chars_per_second": -1.0}, "max_chars_per_second"),
    ],
)
def test_bad_values_are_rejected_with_the_key_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataConfig(**kwargs).validate()
