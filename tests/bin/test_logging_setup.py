"""One logging setup for every entry point: ``slamasr.logging_setup.setup_logging``."""

from __future__ import annotations

import ast
import importlib
import logging
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import slamasr.bin
import slamasr.converters.common
import slamasr.training.run
from slamasr.logging_setup import setup_logging

# Handlers or global configuration that only the shared setup may create.
FORBIDDEN = {"basicConfig", "StreamHandler", "FileHandler", "Formatter", "dictConfig", "fileConfig"}
# bin modules that reach setup_logging through the library module that runs them.
THROUGH_LIBRARY = {
    "train": slamasr.training.run,
    "convert_ct2_whisper": slamasr.converters.common,
    "convert_gguf_llm": slamasr.converters.common,
}
LINE_RE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) \[test_logging_setup\.py:\d+\] (.*)$"
)


def bin_modules() -> Iterator[tuple[str, Path]]:
    """(name, file) of every ``slamasr.bin`` entry point, each imported once."""
    for info in pkgutil.iter_modules(slamasr.bin.__path__):
        module = importlib.import_module(f"slamasr.bin.{info.name}")
        yield info.name, Path(module.__file__)


def called_names(path: Path) -> set[str]:
    """Names of every function or method called in a source file (``a.b.c()`` -> ``c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_every_entry_point_uses_the_shared_logging_setup() -> None:
    modules = dict(bin_modules())
    assert len(modules) >= 19 and "decode" in modules and "whisper_baseline" in modules
    for name, path in sorted(modules.items()):
        calls = called_names(path)
        own = calls & FORBIDDEN
        assert not own, f"bin/{name}.py configures logging itself: {own}"
        where = Path(THROUGH_LIBRARY[name].__file__) if name in THROUGH_LIBRARY else path
        assert "setup_logging" in called_names(where), f"{where} does not call setup_logging"


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def _parsed(lines: list[str]) -> list[tuple[str, str]]:
    return [LINE_RE.match(line).groups() for line in lines]


def test_setup_gives_the_project_format_per_rank(
    tmp_path: Path, capsys, restore_root_logger: None
) -> None:
    """Rank 0 prints and logs INFO and up; another rank prints only warnings but logs INFO
    to its file. A second call replaces the first one's handlers (no doubled lines)."""
    setup_logging(tmp_path / "rank0", rank=0, level=logging.INFO)
    logging.debug("not at INFO")
    logging.info("progress")
    assert _parsed(capsys.readouterr().err.splitlines()) == [("INFO", "progress")]
    setup_logging(tmp_path / "rank1", rank=1, level=logging.INFO)
    logging.info("more progress")
    logging.warning("careful")
    assert _parsed(capsys.readouterr().err.splitlines()) == [("WARNING", "careful")]
    rank0 = (tmp_path / "rank0").read_text(encoding="utf-8").splitlines()
    rank1 = (tmp_path / "rank1").read_text(encoding="utf-8").splitlines()
    assert _parsed(rank0) == [("INFO", "progress")]
    assert _parsed(rank1) == [("INFO", "more progress"), ("WARNING", "careful")]
