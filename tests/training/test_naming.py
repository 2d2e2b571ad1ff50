"""experiment_name: same settings -> same name; a change -> a different name."""

from __future__ import annotations

from slamasr.config import ExperimentConfig
from slamasr.training import experiment_name


def _cfg(**train) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.model.encoder.path = "openai/whisper-large-v2"
    cfg.model.llm.path = "lmsys/vicuna-7b-v1.5"
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def test_same_settings_same_name_and_readable_parts() -> None:
    name = experiment_name(_cfg())
    assert name == experiment_name(_cfg())
    assert name.startswith("whisper-large-v2_vicuna-7b-v1.5_mlp5_prompt-short_lr0.0001_")


def test_changed_settings_change_name_but_cosmetic_ones_do_not() -> None:
    assert experiment_name(_cfg(lr=5e-4)) != experiment_name(_cfg())
    assert experiment_name(_cfg(warmup_steps=10)) != experiment_name(_cfg())
    assert experiment_name(_cfg(log_interval=7)) == experiment_name(_cfg())


def test_a_setting_left_at_its_default_does_not_enter_the_name(monkeypatch) -> None:
    """Adding an option whose default keeps today's behaviour renames no experiment."""
    import dataclasses

    from slamasr.data.config import DataConfig

    before = experiment_name(_cfg())
    fields = [(f.name, f.type, f) for f in dataclasses.fields(DataConfig)]
    extended = dataclasses.make_dataclass(
        "DataConfig", fields + [("new_option", float, dataclasses.field(default=1.5))]
    )
    cfg = _cfg()
    cfg.data = extended(**dataclasses.asdict(cfg.data))
    assert experiment_name(cfg) == before
    cfg.data.new_option = 2.0
    assert experiment_name(cfg) != before
    cfg.data.new_option, cfg.data.allow_command_sources = 1.5, True  # cosmetic: how data is read
    assert experiment_name(cfg) == before


def test_dev_and_test_sets_do_not_enter_the_name_but_the_training_manifest_does() -> None:
    """data.dev_sets (decoded to choose settings) trains nothing: same experiment."""
    cfg = _cfg()
    cfg.data.dev_sets = {"dev_ood": "data/dev_ood.jsonl.gz"}
    assert experiment_name(cfg) == experiment_name(_cfg())
    cfg.data.train_cuts = "data/train_aug.jsonl.gz"
    assert experiment_name(cfg) != experiment_name(_cfg())
