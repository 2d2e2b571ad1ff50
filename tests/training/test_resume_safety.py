"""A refused or failed training start leaves the experiment as it was (issue 20, items 3/5/7/8/10).

- a ``--resume`` whose checkpoint does not fit the configured model fails in one line and
  leaves every file of the exp dir byte-identical (``config.yaml`` included);
- ``--resume`` with checkpoints but none usable is refused (naming them and the options);
  ``--start-over`` keeps the old run, valid ``best`` included, in ``old-<time>/``;
- ``--overwrite`` moves the old model's decode dirs and ``wer`` into ``old-<time>/``;
- an empty or missing manifest, a full disk during a checkpoint save, a read-only exp dir
  and a model that cannot be loaded each give one line on stderr and exit 1;
- a checkpoint save that fails publishes nothing: the previous checkpoint stays the newest.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import torch
from lhotse import CutSet

from slamasr import checkpoints
from slamasr.bin import train as train_bin
from slamasr.config import save_config
from slamasr.distributed import DistInfo
from slamasr.models import build_model
from slamasr.models.hub import ModelLoadError
from slamasr.training import checkpoint as ckpt
from slamasr.training.config import TrainConfig
from slamasr.training.loop import LoopState
from slamasr.training.run import (
    ExpDirError,
    ResumeError,
    TrainDataError,
    prepare_exp_dir,
    run_training,
    setup_run_logging,
)
from slamasr.utils import set_seed, setup_logging
from tests.data.conftest import make_cut, write_audio
from tests.helpers import tiny_model_config

from .doubles import DoubleLoader, DoubleModel
from .train_double import small_config


@pytest.fixture(autouse=True)
def _detach_run_logging() -> Any:
    """Runs attach console/file handlers to the root logger; detach them after each test."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_slamasr", False)]:
        root.removeHandler(handler)
        handler.close()


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (directories listed as 'dir')."""
    digest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return digest


def run(
    exp: Path,
    cfg: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    start_over: bool = False,
) -> LoopState:
    """Prepare ``exp`` and train the test double (one process)."""
    setup_logging(None)  # as a new process: no log file of an earlier run attached
    prepare_exp_dir(exp, resume, overwrite, True, start_over)
    setup_run_logging(exp, DistInfo())
    set_seed(cfg.seed)
    train, dev = DoubleLoader(40, 4, 1, 0), DoubleLoader(12, 4, 1, 0)
    cpu = torch.device("cpu")
    return run_training(cfg, exp, DoubleModel(), train, dev, cpu, DistInfo(), resume)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


# --------------------------------------------------------------------------- resume policy


def test_resume_with_only_unusable_checkpoints_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """Corrupt step-N and a valid best: refusal names each and both ways out; no file moves."""
    exp = tmp_path / "exp"
    run(exp, small_config(max_steps=6))
    for step in (3, 6):
        truncate(exp / "checkpoints" / f"step-{step}" / checkpoints.WEIGHTS)
    before = tree_digest(exp)
    with pytest.raises(ResumeError) as err:
        run(exp, small_config(max_steps=9), resume=True)
    message = str(err.value)
    assert "\n" not in message
    for words in ("step-3 (", "step-6 (", "best (valid, step 6)", "--start-over", "--overwrite"):
        assert words in message
    assert tree_digest(exp) == before


def test_start_over_keeps_the_old_run_and_its_valid_best_aside(tmp_path: Path, caplog) -> None:
    """--start-over trains from step 0; the old checkpoints (best too) move to old-<time>/."""
    exp = tmp_path / "exp"
    run(exp, small_config(max_steps=6))
    truncate(exp / "checkpoints" / "step-6" / checkpoints.WEIGHTS)
    old = {k: v for k, v in tree_digest(exp).items() if k.startswith(("checkpoints/", "config"))}
    with caplog.at_level(logging.WARNING):
        state = run(exp, small_config(max_steps=3), start_over=True)
    assert state.step == 3
    (kept,) = exp.glob("old-*")
    assert "--start-over" in caplog.text and kept.name in caplog.text
    moved = {k.removeprefix(f"{kept.name}/"): v for k, v in tree_digest(exp).items()}
    assert all(moved.get(k) == v for k, v in old.items())
    assert [s for s, _ in checkpoints.list_step_checkpoints(exp / "checkpoints")] == [3]


def test_resume_in_an_exp_dir_without_checkpoints_starts_at_step_0(tmp_path: Path) -> None:
    """The recipes always pass --resume: a first run must still start."""
    assert run(tmp_path / "exp", small_config(max_steps=3), resume=True).step == 3


def test_fresh_start_over_checkpoints_names_all_three_options(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    run(exp, small_config(max_steps=3))
    with pytest.raises(ExpDirError, match="--resume.*--start-over.*--overwrite"):
        run(exp, small_config(max_steps=3))


def test_overwrite_moves_the_old_models_decode_results_aside(tmp_path: Path, caplog) -> None:
    """decode-*/ and wer of the replaced model go to old-<time>/ (logged); checkpoints go."""
    exp = tmp_path / "exp"
    run(exp, small_config(max_steps=3))
    (exp / "decode-best-avg1-beam4").mkdir()
    (exp / "decode-best-avg1-beam4" / "recogs-test.txt").write_text("utt1:\tref=['A']\n")
    (exp / "wer").write_text("decode-best-avg1-beam4 test 12.50\n")
    results = {k: v for k, v in tree_digest(exp).items() if k.startswith(("decode-", "wer"))}
    with caplog.at_level(logging.WARNING):
        run(exp, small_config(max_steps=3), overwrite=True)
    (kept,) = exp.glob("old-*")
    assert not list(exp.glob("decode-*")) and not (exp / "wer").exists()
    assert {k: tree_digest(kept)[k] for k in results} == results
    assert "--overwrite" in caplog.text and "decode-best-avg1-beam4" in caplog.text
    assert "deleting" in caplog.text


# --------------------------------------------------------------------------- failed saves


def _full_disk_torch_save(obj: Any, path: Any, *args: Any, **kwargs: Any) -> None:
    """What torch.save does on a full disk: a short file, then 'unexpected pos'."""
    Path(path).write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def test_full_disk_during_save_says_so_and_publishes_nothing(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC mid-save: one line 'no space left on device'; step-3 stays the newest valid."""
    exp = tmp_path / "exp"
    run(exp, small_config(max_steps=3))
    monkeypatch.setattr(ckpt.torch, "save", _full_disk_torch_save)
    monkeypatch.setattr(ckpt, "_free_bytes", lambda where: 4096)
    with pytest.raises(ckpt.CheckpointWriteError) as err:
        run(exp, small_config(max_steps=6), resume=True)
    message = str(err.value)
    assert message.startswith("no space left on device") and "\n" not in message
    assert "unexpected pos" not in message and str(exp / "checkpoints") in message
    ckpt_dir = exp / "checkpoints"
    assert not [p for p in ckpt_dir.iterdir() if p.name.startswith(".")]
    assert checkpoints.latest_valid_checkpoint(ckpt_dir) == ckpt_dir / "step-3"
    assert all(checkpoints.verify_checkpoint(p) is None for p in ckpt_dir.iterdir())


def test_a_failure_that_is_not_a_full_disk_keeps_its_traceback(tmp_path, monkeypatch) -> None:
    """A bug in saving (plenty of space) is not disguised as a user error."""
    monkeypatch.setattr(ckpt.torch, "save", _full_disk_torch_save)
    monkeypatch.setattr(ckpt, "_free_bytes", lambda where: 1 << 40)
    with pytest.raises(RuntimeError, match="unexpected pos"):
        run(tmp_path / "exp", small_config(max_steps=3))


# --------------------------------------------------------------------------- bin/train


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny HuBERT + Llama, a 4-cut audio manifest, an empty one, and a conf file."""
    root = tmp_path_factory.mktemp("resume_safety")
    model_cfg = tiny_model_config("hubert", root / "models")
    cuts = [
        make_cut(write_audio(root / "audio" / f"u{i}.wav", 0.5 + 0.1 * i), "HELLO WORLD")
        for i in range(4)
    ]
    CutSet.from_cuts(cuts).to_file(root / "train.jsonl.gz")
    CutSet.from_cuts([]).to_file(root / "empty.jsonl.gz")
    conf = root / "conf.yaml"
    conf.write_text(
        "model:\n"
        f"  encoder: {{name: hubert, path: {model_cfg.encoder.path}}}\n"
        "  projector: {hidden_dim: 64}\n"
        f"  llm: {{path: {model_cfg.llm.path}, dtype: float32}}\n"
        f"data: {{input_kind: audio, train_cuts: {root / 'train.jsonl.gz'}, num_workers: 0,"
        " num_buckets: 2, max_duration: 2}\n"
        "train: {max_steps: 2, save_interval: 2, device: cpu, dtype: float32,"
        " tensorboard: false, progress_bar: false}\n",
        encoding="utf-8",
    )
    return {"root": root, "conf": conf, "empty": root / "empty.jsonl.gz"}


def trained_exp(exp: Path, conf: Path) -> Path:
    """An exp dir as a finished run leaves it: config.yaml, env.json, step-2 and best."""
    from slamasr.config import load_config

    cfg = load_config(conf)
    exp.mkdir(parents=True)
    save_config(cfg, exp / "config.yaml")
    (exp / "env.json").write_text("{}")
    model = build_model(cfg.model)
    weights = model.trainable_state_dict()
    optim = torch.optim.AdamW(list(model.trainable_parameters())).state_dict()
    for name in ("step-2", "best"):
        ckpt.save_checkpoint(exp / "checkpoints", name, weights, optim, {"step": 2}, {})
    return exp


def train_main(argv: list[str], capsys) -> tuple[int, str]:
    """Run bin/train in-process; return its exit status and its stderr's non-log lines."""
    status = train_bin.main(argv)
    err = capsys.readouterr().err.splitlines()
    return status, "\n".join(line for line in err if line.startswith(("error", "config error")))


def test_failed_resume_leaves_the_exp_dir_byte_identical(setup, tmp_path, capsys) -> None:
    """--resume with another projector width: one line naming the key; config.yaml untouched."""
    exp = trained_exp(tmp_path / "exp", setup["conf"])
    before = tree_digest(exp)
    argv = ["--config", str(setup["conf"]), "--exp-dir", str(exp), "--resume"]
    status, err = train_main(argv + ["model.projector.hidden_dim=32"], capsys)
    assert status == 1 and err.count("\n") == 0
    assert "does not fit" in err and "model.projector.hidden_dim: 64 -> 32" in err
    assert tree_digest(exp) == before


def test_empty_or_missing_train_manifest_is_one_line(setup, tmp_path, capsys) -> None:
    """0 cuts or no file: one line naming the key and the file; no exp dir is created."""
    exp = tmp_path / "exp"
    base = ["--config", str(setup["conf"]), "--exp-dir", str(exp)]
    status, err = train_main(base + [f"data.train_cuts={setup['empty']}"], capsys)
    assert status == 1 and err.count("\n") == 0
    assert f"data.train_cuts={setup['empty']} holds 0 cuts" in err
    status, err = train_main(base + [f"data.dev_cuts={tmp_path / 'no.jsonl.gz'}"], capsys)
    assert status == 1 and "data.dev_cuts=" in err and "no such file" in err
    assert not exp.exists()


def test_a_train_set_the_filter_empties_is_one_line(setup, tmp_path, capsys) -> None:
    """Every cut skipped by the training filter: one line with the filter's counts."""
    argv = ["--config", str(setup["conf"]), "--exp-dir", str(tmp_path / "exp")]
    status, err = train_main(argv + ["data.max_chars_per_second=0.01"], capsys)
    assert status == 1 and err.count("\n") == 0
    assert "no usable training cuts" in err and "too_many_chars_per_second" in err


def test_read_only_exp_dir_is_refused_before_the_model_loads(
    setup, tmp_path, capsys, monkeypatch
) -> None:
    """An exp dir that cannot be written: one line naming it, before any weights are read."""
    from slamasr.training import run as run_mod

    monkeypatch.setattr(run_mod.os, "access", lambda path, mode: False)
    import slamasr.models

    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was built before the exp dir was checked")

    monkeypatch.setattr(slamasr.models, "build_model", no_model)
    exp = tmp_path / "ro" / "exp"
    status, err = train_main(["--config", str(setup["conf"]), "--exp-dir", str(exp)], capsys)
    assert status == 1 and err.count("\n") == 0
    assert f"cannot write to {exp}" in err and "not writable" in err
    assert not exp.exists()


USER_ERRORS = [
    (PermissionError(errno.EACCES, "Permission denied", "/srv/exp/x"), "permission denied"),
    (OSError(errno.EROFS, "Read-only file system", "/srv/exp/x"), "read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device", "/srv/exp/x/log"), "no space left"),
    (ckpt.CheckpointWriteError("no space left on device: 0.0 MiB free on x"), "no space left"),
    (ModelLoadError("cannot load the LLM from local dir m:\nbad config"), "cannot load the LLM"),
    (TrainDataError("data.train_cuts=x holds 0 cuts"), "0 cuts"),
]


@pytest.mark.parametrize("error,words", USER_ERRORS)
def test_user_errors_from_training_are_one_line(
    setup, capsys, monkeypatch, error: Exception, words: str
) -> None:
    """Storage, model-loading and data errors: exit 1, one stderr line, no traceback."""

    def fail(*args: Any, **kwargs: Any) -> Optional[LoopState]:
        raise error

    monkeypatch.setattr(train_bin, "train_from_config", fail)
    status, err = train_main(["--config", str(setup["conf"]), "--exp-dir", "x"], capsys)
    assert status == 1 and err.startswith("error: ") and err.count("\n") == 0 and words in err


def test_an_unexpected_os_error_keeps_its_traceback(setup, monkeypatch) -> None:
    """Only the user's storage errors are turned into a line; other OSErrors propagate."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "Input/output error", "/dev/sda")

    monkeypatch.setattr(train_bin, "train_from_config", fail)
    with pytest.raises(OSError, match="Input/output"):
        train_bin.main(["--config", str(setup["conf"]), "--exp-dir", "x"])


def test_resume_start_over_and_overwrite_exclude_each_other(setup, capsys) -> None:
    argv = ["--config", str(setup["conf"]), "--resume", "--start-over"]
    assert train_bin.main(argv) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_resume_with_changed_settings_keeps_the_old_config(tmp_path: Path, caplog) -> None:
    """Same settings: config.yaml rewritten silently; changed ones: old copy kept, keys logged."""
    from slamasr.config import load_config
    from slamasr.training.run import write_run_info

    exp = tmp_path / "exp"
    exp.mkdir()
    write_run_info(load_config(None, validate=False), exp)
    with caplog.at_level(logging.WARNING):
        write_run_info(load_config(None, validate=False), exp)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not list(exp.glob("log/config-before-*"))
    old = (exp / "config.yaml").read_text()
    with caplog.at_level(logging.WARNING):
        write_run_info(load_config(None, ["train.max_steps=7"], validate=False), exp)
    (kept,) = exp.glob("log/config-before-*.yaml")
    assert kept.read_text() == old and "train.max_steps: 100000 -> 7" in caplog.text


# --------------------------------------------------------------------------- two ranks


def _save_on_two_ranks(rank: int, init_file: str, ckpt_dir: str, results: str) -> None:
    """One gloo rank: rank 0's optimizer write hits a full disk; both must raise, not hang."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        if rank == 0:
            ckpt.torch.save = _full_disk_torch_save
            ckpt._free_bytes = lambda where: 0
        try:
            ckpt.save_checkpoint(Path(ckpt_dir), "step-1", {"w": torch.ones(2)}, {}, {}, {})
            outcome = "saved"
        except ckpt.CheckpointWriteError as e:
            outcome = str(e)
        Path(results, f"rank-{rank}").write_text(outcome)
    finally:
        dist.destroy_process_group()


def test_a_failed_save_on_rank_0_stops_every_rank(tmp_path: Path) -> None:
    """Under DDP the failure is shared (no rank left waiting at a barrier); nothing published."""
    import torch.multiprocessing as mp

    args = (str(tmp_path / "init"), str(tmp_path / "checkpoints"), str(tmp_path))
    context = mp.spawn(_save_on_two_ranks, args=args, nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("a rank still waits after the other's checkpoint write failed")
    for rank in (0, 1):
        assert (tmp_path / f"rank-{rank}").read_text().startswith("no space left on device")
    assert not any((tmp_path / "checkpoints").iterdir())
