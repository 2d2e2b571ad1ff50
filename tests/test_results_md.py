"""Tests for tools/results_md.py and slamasr/results.py: RESULTS.md sections from exp/*/wer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slamasr.results import (
    PAPER_LINE,
    REFERENCE_LINE,
    decoding_line,
    find_sections,
    git_commit,
    read_training_summary,
)
from slamasr.scoring import WerRecord, update_wer_file, write_recogs

TOOL = Path(__file__).resolve().parent.parent / "tools" / "results_md.py"
LOG_LINE = "2026-12-01 10:00:0{} INFO [report.py:110] "
PAPER = PAPER_LINE.format(beams=4)  # the decoding column of a plain beam-search tag


def _rec(tag: str, test_set: str, wer: float, hits: int | None = 2) -> WerRecord:
    return WerRecord(tag, test_set, wer, 7, 120, 1, 2, 4, 10, 1, 3, hits)


def _fake_exp(root: Path, name: str, trained: bool) -> Path:
    """exp/<name> with a wer file; a trained one also has config.yaml, logs and a plot."""
    exp = root / "exp" / name
    update_wer_file(
        exp / "wer", [_rec("decode-beam4", "test", 5.83), _rec("decode-beam4", "ood", 9.5)]
    )
    update_wer_file(exp / "wer", [_rec("decode-greedy", "test", 6.25, hits=None)])
    if trained:
        cfg = {"model": {"encoder": {"name": "whisper"}, "llm": {"path": "models/tiny-llm"}},
               "train": {"lr": 0.001, "max_steps": 40}, "decode": {"num_beams": 4}}  # fmt: skip
        (exp / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        (exp / "log").mkdir()
        (exp / "log" / "log-train-2026-12-01-09-00-00").write_text(
            LOG_LINE.format(1) + "step 20: loss 2.5000 acc 40.00% lr 0.001 | 3 audio s/s\n"
            + LOG_LINE.format(2) + "validation at step 20: dev loss 2.9000, dev acc 35.00%\n"
        )  # fmt: skip
        (exp / "log" / "log-train-2026-12-01-09-30-00").write_text(  # a resume: later numbers
            LOG_LINE.format(3) + "step 40: loss 1.2345 acc 67.89% ctc 0.2 lr 0.001 | 3 s/s\n"
            + LOG_LINE.format(4) + "validation at step 40: dev loss 1.5000, dev acc 61.00%\n"
            + LOG_LINE.format(5) + "Training done at step 40 (best checkpoint by dev loss: "
            "step 40, dev loss 1.5000, dev acc 0.6100; 0 skipped steps)\n"
        )  # fmt: skip
        (exp / "train-accuracy.png").write_bytes(b"\x89PNG fake curve")
    return exp / "wer"


@pytest.fixture
def recipe(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A recipe dir with one trained experiment and one baseline (no config)."""
    wers = [_fake_exp(tmp_path, "slam-tiny", True), _fake_exp(tmp_path, "baseline", False)]
    return tmp_path, wers


def _tool(recipe_dir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(TOOL), "--results", str(recipe_dir / "RESULTS.md"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=recipe_dir)


def _write(recipe: tuple[Path, list[Path]], *args: str) -> subprocess.CompletedProcess:
    root, wers = recipe
    return _tool(root, "--command", "./run.sh --stage 5", *args, *map(str, wers))


def test_section_holds_command_commit_configs_training_and_every_wer_column(recipe) -> None:
    proc = _write(recipe, "--date", "2026-12-01", "--wall-time", "26 min 42 s")
    assert proc.returncode == 0, proc.stderr
    text = (recipe[0] / "RESULTS.md").read_text()
    assert text.startswith("# Results\n")
    assert find_sections(text) == [("2026-12-01", "unknown")]  # tmp_path is no git checkout
    assert "Command: `./run.sh --stage 5`" in text and "Wall time: 26 min 42 s" in text
    rows = [line for line in text.splitlines() if line.startswith("| slam-tiny |")]
    cells, OTHER = " | 7 | 120 | 1 | 2 | 4 | 10 | 1 | 3 |", "other (not the paper's decoding)"
    assert rows == [
        f"| slam-tiny | {PAPER} | decode-beam4 | ood | **9.50**{cells} 2 |",
        f"| slam-tiny | {PAPER} | decode-beam4 | test | **5.83**{cells} 2 |",
        f"| slam-tiny | {OTHER} | decode-greedy | test | **6.25**{cells} - |",
    ]
    assert sum(line.startswith("| baseline |") for line in text.splitlines()) == 3
    assert "`model.encoder.name=whisper`" in text and "`train.max_steps=40`" in text
    assert "max_steps: 40" in text.split("<details>")[1]  # the whole config
    assert "No `config.yaml`" in text.split("### baseline")[1]
    assert "last training log: step 40: loss 1.2345, accuracy 67.89%" in text
    assert "last validation: step 40: loss 1.5000, accuracy 61.00%" in text
    assert "training: 40 steps; best checkpoint (by dev loss): step 40" in text
    assert not (recipe[0] / "results").exists()  # no --with-plot: no PNG enters the tree


def test_same_date_and_commit_is_refused_unless_replace(recipe) -> None:
    assert _write(recipe, "--date", "2026-12-01").returncode == 0
    md = recipe[0] / "RESULTS.md"
    before = md.read_text()
    proc = _write(recipe, "--date", "2026-12-01", "--wall-time", "1 s")
    assert proc.returncode == 1 and "--replace" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert md.read_text() == before

    kept = _write(recipe, "--date", "2026-12-01", "--wall-time", "1 s", "--keep-existing")
    assert kept.returncode == 0 and "kept" in kept.stderr and md.read_text() == before

    assert _write(recipe, "--date", "2026-12-01", "--wall-time", "1 s", "--replace").returncode == 0
    text = md.read_text()
    assert find_sections(text) == [("2026-12-01", "unknown")] and "Wall time: 1 s" in text
    assert text.count(f"| slam-tiny | {PAPER} | decode-beam4 | test |") == 1


def test_new_sections_go_above_older_ones_and_the_history_stays_last(recipe) -> None:
    md = recipe[0] / "RESULTS.md"
    md.write_text("# Results\n\nintro\n\n## History (hand-written)\n\nold numbers\n")
    assert _write(recipe, "--date", "2026-11-30").returncode == 0
    assert _write(recipe, "--date", "2026-12-01").returncode == 0
    text = md.read_text()
    assert find_sections(text) == [("2026-12-01", "unknown"), ("2026-11-30", "unknown")]
    assert text.index("intro") < text.index("## 2026-12-01") < text.index("## 2026-11-30")
    assert text.rstrip().endswith("## History (hand-written)\n\nold numbers")


def test_with_plot_copies_the_training_curve_and_links_it(recipe) -> None:
    assert _write(recipe, "--date", "2026-12-01", "--with-plot").returncode == 0
    png = recipe[0] / "results" / "2026-12-01-slam-tiny.png"
    assert png.read_bytes() == b"\x89PNG fake curve"
    assert (
        "![training accuracy of slam-tiny](results/2026-12-01-slam-tiny.png)"
        in (recipe[0] / "RESULTS.md").read_text()
    )
    assert sorted(p.name for p in png.parent.iterdir()) == [png.name]  # baseline has no plot


def test_missing_or_malformed_wer_file_is_one_line_and_writes_nothing(recipe) -> None:
    root, wers = recipe
    proc = _tool(root, "--command", "x", str(root / "exp" / "nope" / "wer"))
    assert proc.returncode == 1 and "no such wer file" in proc.stderr
    assert "Traceback" not in proc.stderr
    with open(wers[1], "a") as f:
        f.write("decode-x\ttest\tnot-a-number\n")
    proc = _tool(root, "--command", "x", *map(str, wers))
    assert proc.returncode == 1 and f"{wers[1]}:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (root / "RESULTS.md").exists()


def test_commit_is_marked_dirty_by_tracked_changes_but_not_by_results_md(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    git("init", "-q")
    recipe = tmp_path / "egs" / "r"
    recipe.mkdir(parents=True)
    (recipe / "RESULTS.md").write_text("# Results\n")
    (recipe / "run.sh").write_text("echo\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    sha = git("rev-parse", "--short", "HEAD")
    (recipe / "untracked.txt").write_text("exp output\n")
    assert git_commit(recipe / "RESULTS.md") == sha
    (recipe / "RESULTS.md").write_text("# Results\n\n## a section\n")
    assert git_commit(recipe / "RESULTS.md") == sha
    (recipe / "run.sh").write_text("echo changed\n")
    assert git_commit(recipe / "RESULTS.md") == sha + "+dirty"


def test_training_summary_reads_rank_0_logs_only(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    (log / "log-train-2026-12-01-09-00-00-0").write_text(
        LOG_LINE.format(1) + "step 5: loss 3.0000 acc 10.00% lr 0.001 | 1 s/s\n"
    )
    (log / "log-train-2026-12-01-09-00-00-1").write_text(
        LOG_LINE.format(1) + "step 5: loss 9.0000 acc 99.00% lr 0.001 | 1 s/s\n"
    )
    assert read_training_summary(tmp_path) == {"train": "step 5: loss 3.0000, accuracy 10.00%"}
    assert read_training_summary(tmp_path / "absent") == {}


ESPEAK = Path(__file__).resolve().parent.parent / "egs" / "espeak_en" / "slam_asr"


def _decoded(exp: Path, decode: str) -> None:
    """A decode dir with one scored-able recogs file (no models needed)."""
    d = exp / decode
    d.mkdir(parents=True)
    write_recogs(d / "recogs-test.txt", [("c1", ["a", "cat"], ["a", "hat"]), ("c2", ["b"], ["b"])])


def test_cpu_recipe_stage_5_writes_results_md_and_the_smoke_run_its_own(tmp_path: Path) -> None:
    recipe = tmp_path / "slam_asr"
    recipe.mkdir()
    shutil.copy(ESPEAK / "run.sh", recipe / "run.sh")
    shutil.copytree(ESPEAK / "conf", recipe / "conf")
    (recipe / "path.sh").symlink_to(ESPEAK / "path.sh")
    for exp in (
        "exp/smoke",
        "exp/smoke-whisper-own-decoder",
        "exp/x",
        "exp/whisper-tiny.en-own-decoder",
    ):
        _decoded(recipe / exp, "decode-beam4")
        if "own-decoder" not in exp:  # trained by slamasr: its plain beam search is the paper's
            (recipe / exp / "config.yaml").write_text("model: {}\n", encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = ["bash", "run.sh", "--stage", "5", "--stop-stage", "5", *args]
        return subprocess.run(cmd, cwd=recipe, capture_output=True, text=True, timeout=300)

    proc = run("--smoke", "true")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    smoke_md = (recipe / "exp" / "smoke" / "RESULTS.md").read_text()
    assert not (recipe / "RESULTS.md").exists()  # CI never edits the recipe's file
    assert "Command: `./run.sh --stage 5 --stop-stage 5 --smoke true`" in smoke_md
    assert f"| smoke | {PAPER} | decode-beam4 | test | **33.33** | 1 | 3 |" in smoke_md
    assert f"| smoke-whisper-own-decoder | {REFERENCE_LINE} | decode-beam4 | test |" in smoke_md
    assert "Wall time: " in smoke_md and "(stages 5-5)" in smoke_md

    assert run("--smoke", "true").returncode == 0  # run again: the section is kept
    assert (recipe / "exp" / "smoke" / "RESULTS.md").read_text() == smoke_md

    proc = run("--exp-dir", "exp/x")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = (recipe / "RESULTS.md").read_text()
    assert f"| x | {PAPER} | decode-beam4 | test |" in text
    assert f"| whisper-tiny.en-own-decoder | {REFERENCE_LINE} |" in text


HYBRID_TAG = "decode-best-avg1-beam4-charctc0.5-words0.5-lm0.3"


def test_decoding_column_names_the_paper_line_the_hybrid_and_the_reference() -> None:
    trained = {"model": {"llm": {"path": "models/tiny-llm"}}}
    assert decoding_line("decode-best-avg1-beam4", trained) == PAPER
    assert decoding_line("decode-step-300-avg2-beam1", trained) == PAPER_LINE.format(beams=1)
    assert decoding_line(HYBRID_TAG, trained) == (
        "hybrid: char CTC 0.5 + word prior 0.5 + LLM rescoring 0.3 (not in the paper)"
    )
    assert decoding_line("decode-last-avg1-beam4-ctc0.3", trained).startswith("hybrid: token CTC")
    assert (
        decoding_line("decode-best-avg1-ctc-greedy", trained) == "other (not the paper's decoding)"
    )
    assert decoding_line("decode-beam4", None) == REFERENCE_LINE  # no config.yaml: a baseline


def test_a_lora_model_is_never_the_paper_line() -> None:
    lora = {"model": {"llm": {"path": "m", "lora": {"rank": 8, "alpha": 16}}}}
    line = decoding_line("decode-best-avg1-beam4", lora)
    assert "paper" in line and "not in the paper" in line and "LoRA" in line
    assert "LoRA" in decoding_line(HYBRID_TAG, {"model": {"llm": {"use_peft": True}}})
    switched_off = {"model": {"llm": {"path": "m", "lora": {"rank": 0, "alpha": 16}}}}
    assert decoding_line("decode-best-avg1-beam4", switched_off) == PAPER


def test_section_shows_both_lines_of_one_checkpoint_beside_the_reference(recipe) -> None:
    root, wers = recipe
    update_wer_file(wers[0], [_rec(HYBRID_TAG, "test", 4.1)])
    proc = _write(recipe, "--date", "2026-12-02")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(" | ")[:4] for line in (root / "RESULTS.md").read_text().splitlines()]
    assert ["| slam-tiny", PAPER, "decode-beam4", "test"] in rows
    hybrid = "hybrid: char CTC 0.5 + word prior 0.5 + LLM rescoring 0.3 (not in the paper)"
    assert ["| slam-tiny", hybrid, HYBRID_TAG, "test"] in rows
    assert ["| baseline", REFERENCE_LINE, "decode-beam4", "test"] in rows


def test_training_summary_sums_wall_time_over_resumed_runs(tmp_path: Path) -> None:
    """Levers are compared at equal training wall time: first to last stamp of each log,
    summed over the logs of a resumed run (not the gap between them)."""
    log = tmp_path / "log"
    log.mkdir()
    (log / "log-train-2026-12-01-09-00-00").write_text(
        "2026-12-01 09:00:00,100 INFO [run.py:1] start\n"
        "2026-12-01 09:10:30,900 INFO [report.py:1] step 100: loss 2.0000 acc 50.00% lr 1\n"
    )
    (log / "log-train-2026-12-01-11-00-00").write_text(
        "2026-12-01 11:00:00,000 INFO [run.py:1] resumed\n"
        "2026-12-01 11:01:15,000 INFO [report.py:1] step 200: loss 1.0000 acc 60.00% lr 1\n"
    )
    summary = read_training_summary(tmp_path)
    assert summary["wall"] == "11 min 45 s, 2 runs"
    assert summary["train"] == "step 200: loss 1.0000, accuracy 60.00%"
