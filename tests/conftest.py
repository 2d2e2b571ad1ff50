"""Shared pytest fixtures; the builders themselves live in ``tests/helpers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from slamasr.models import SlamASR
from tests.helpers import make_tiny_model


@pytest.fixture(scope="session")
def tiny_fbank_model(tmp_path_factory: pytest.TempPathFactory) -> SlamASR:
    """A tiny fbank SlamASR shared by a session (do not train it in place; copy first)."""
    return make_tiny_model("fbank", tmp_path_factory.mktemp("tiny_fbank"))


@pytest.fixture()
def tiny_model_dir(tmp_path: Path) -> Path:
    """A fresh directory for tiny checkpoints."""
    return tmp_path
