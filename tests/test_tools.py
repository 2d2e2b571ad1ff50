"""Tests for tools/: collect_results.py and parse_options.sh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slamasr.scoring import WerRecord, update_wer_file

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _rec(tag: str, test_set: str, wer: float) -> WerRecord:
    return WerRecord(tag, test_set, wer, 1, 100, 0, 0, 1, 10, 0, 0)


@pytest.fixture
def two_exps(tmp_path: Path) -> list[Path]:
    a, b = tmp_path / "exp" / "whisper_tiny", tmp_path / "exp" / "hubert_xl"
    update_wer_file(a / "wer", [_rec("beam4", "test-clean", 5.0), _rec("beam4", "test-other", 9.0)])
    update_wer_file(a / "wer", [_rec("beam1", "test-clean", 6.5), _rec("beam1", "test-other", 7.0)])
    update_wer_file(
        b / "wer", [_rec("beam4", "test-clean", 1.94), _rec("beam4", "test-other", 3.81)]
    )
    update_wer_file(b / "wer", [_rec("greedy", "test-clean", 2.5)])
    return [a / "wer", b / "wer"]


def _collect(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(TOOLS / "collect_results.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_collect_results_markdown_table(two_exps: list[Path], tmp_path: Path) -> None:
    out_md = tmp_path / "RESULTS.md"
    proc = _collect(*map(str, two_exps), "--output", str(out_md))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "| experiment | tag | test-clean | test-other |",
        "|---|---|---|---|",
        "| hubert_xl | beam4 | 1.94 | 3.81 |",
        "| hubert_xl | greedy | 2.50 | - |",
        "| whisper_tiny | beam1 | 6.50 | 7.00 |",
        "| whisper_tiny | beam4 | 5.00 | 9.00 |",
    ]
    assert out_md.read_text() == proc.stdout


def test_collect_results_best_keeps_one_tag_per_experiment(two_exps: list[Path]) -> None:
    proc = _collect(*map(str, two_exps), "--best")
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[2:]
    # whisper_tiny: beam1 mean 6.75 beats beam4 mean 7.0; hubert_xl: greedy covers one set only
    assert rows == ["| hubert_xl | beam4 | 1.94 | 3.81 |", "| whisper_tiny | beam1 | 6.50 | 7.00 |"]


def test_collect_results_missing_file_is_an_error(tmp_path: Path) -> None:
    proc = _collect(str(tmp_path / "nope" / "wer"))
    assert proc.returncode != 0 and "no such wer file" in proc.stderr


# --- parse_options.sh -------------------------------------------------------------------------

SCRIPT = """#!/usr/bin/env bash
# Toy recipe for the parse_options tests.
#   --stage N   first stage
set -euo pipefail
stage=0
stop_stage=5
use_gpu=true
exp_dir=exp/default
{extra}
. {parse_options}
echo "stage=$stage stop_stage=$stop_stage use_gpu=$use_gpu exp_dir=$exp_dir rest=$*"
"""


def _run_script(tmp_path: Path, *args: str, extra: str = "") -> subprocess.CompletedProcess:
    script = tmp_path / "run.sh"
    parse_options = TOOLS / "parse_options.sh"
    script.write_text(SCRIPT.format(extra=extra, parse_options=parse_options))
    cmd = ["bash", str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=tmp_path)


def test_parse_options_sets_known_options(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, "--stage", "3", "--stop-stage", "4", "--use-gpu", "false", "x")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stage=3 stop_stage=4 use_gpu=false exp_dir=exp/default rest=x"


def test_parse_options_keeps_values_with_spaces_and_quotes(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, "--exp-dir", "exp/a b'c$(touch pwned)")
    assert proc.returncode == 0, proc.stderr
    assert "exp_dir=exp/a b'c$(touch pwned) rest=" in proc.stdout
    assert not (tmp_path / "pwned").exists()


def test_parse_options_rejects_unknown_option(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, "--stage", "1", "--no-such-thing", "3")
    assert proc.returncode != 0
    assert "unknown option '--no-such-thing'" in proc.stderr
    assert proc.stdout == ""


def test_parse_options_checks_booleans(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, "--use-gpu", "yes")
    assert proc.returncode != 0 and "true or false" in proc.stderr
    assert _run_script(tmp_path, "--use-gpu", "false").returncode == 0


def test_parse_options_rejects_missing_value_and_equals_form(tmp_path: Path) -> None:
    assert "needs a value" in _run_script(tmp_path, "--stage").stderr
    assert "--name value" in _run_script(tmp_path, "--stage=3").stderr


def test_parse_options_help_prints_help_message(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, "--stage", "2", "--help", extra='help_message="Usage: run.sh X"')
    assert (proc.returncode, proc.stdout) == (0, "Usage: run.sh X\n")


def test_parse_options_help_falls_back_to_header_comment(tmp_path: Path) -> None:
    proc = _run_script(tmp_path, "-h")
    assert proc.returncode == 0
    assert proc.stdout == "Toy recipe for the parse_options tests.\n  --stage N   first stage\n"


def test_parse_options_config_file_then_command_line_wins(tmp_path: Path) -> None:
    conf = tmp_path / "my.conf"
    conf.write_text("stage=2\nexp_dir=exp/from_conf\n")
    proc = _run_script(tmp_path, "--stage", "4", "--config", str(conf))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stage=4 stop_stage=5 use_gpu=true exp_dir=exp/from_conf rest="
    missing = _run_script(tmp_path, "--config", str(tmp_path / "none.conf"))
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_parse_options_config_is_an_ordinary_option_when_the_script_defines_it(
    tmp_path: Path,
) -> None:
    # slamasr recipes use --config for the experiment YAML: never source it as shell.
    yaml_file = tmp_path / "exp.yaml"
    yaml_file.write_text("stage: 9\n")
    extra = f"config={tmp_path / 'default.yaml'}\necho config=$config >&2"
    proc = _run_script(tmp_path, "--config", str(yaml_file), "--stage", "1", extra=extra)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("stage=1 ")
    script = (tmp_path / "run.sh").read_text()
    script = script.replace('echo "stage=', 'echo "config=$config stage=')
    (tmp_path / "run.sh").write_text(script)
    proc = subprocess.run(
        ["bash", str(tmp_path / "run.sh"), "--config", str(yaml_file)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"config={yaml_file} stage=0 ")


def test_collect_results_names_a_malformed_line_and_still_prints_the_rest(
    two_exps: list[Path],
) -> None:
    """A damaged wer file: file:line on stderr, the other experiments' table, exit 1."""
    broken = two_exps[1]
    lines = broken.read_text().splitlines()
    lines[2] = "beam4\ttest-other\tnot-a-number"
    broken.write_text("\n".join(lines) + "\n")
    old = two_exps[0].parent.parent / "old" / "wer"  # a wer file of the version before bound_hits
    old.parent.mkdir()
    old.write_text("beam4\ttest-clean\t4.00\t4\t100\t0\t0\t4\t10\t0\t0\n")
    proc = _collect(*map(str, [*two_exps, old]))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"collect_results.py: skipped {broken}:3: expected 12 ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.splitlines() == [
        "| experiment | tag | test-clean | test-other |",
        "|---|---|---|---|",
        "| old | beam4 | 4.00 | - |",
        "| whisper_tiny | beam1 | 6.50 | 7.00 |",
        "| whisper_tiny | beam4 | 5.00 | 9.00 |",
    ]


class _CaseTokenizer:
    """3 tokens per upper-case word, 1 per lower-case word (a LLaMA tokenizer's pattern)."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [0 for w in text.split() for _ in range(3 if w.isupper() else 1)]

    def __len__(self) -> int:
        return 2


def test_token_rate_counts_what_each_bound_cuts(tmp_path: Path, monkeypatch, capsys) -> None:
    """20 words in 4 s (5 words/s): upper-case needs 61 tokens with EOS, over the old bound
    max(16, ceil(8 x 4)) = 32 and within the new one; lower-case needs 21."""
    sys.path.insert(0, str(TOOLS))
    monkeypatch.setattr(sys, "path", sys.path)
    import token_rate

    utts = [token_rate.Utterance(" ".join(["word"] * 20), 4.0)]
    upper = token_rate.measure_case(_CaseTokenizer(), utts, "upper", [5.0])
    assert upper["tokens_per_word"] == 3.0 and upper["longest_tokens"] == 61
    assert upper["measured"]["cut"] == {"old": 1, "new": 0}
    assert upper["measured"]["tokens_per_second"] == 61 / 4
    assert upper["at_words_per_second"]["5"]["cut"] == {"old": 1, "new": 0}
    lower = token_rate.measure_case(_CaseTokenizer(), utts, "lower", [5.0])
    assert lower["measured"]["cut"] == {"old": 0, "new": 0} and lower["tokens_per_word"] == 1.0
    text = tmp_path / "text"
    text.write_text("1089-134686-0000 HE HOPED THERE WOULD BE STEW\nplain line of text\n")
    assert [u.text for u in token_rate.read_text(str(text))] == [
        "HE HOPED THERE WOULD BE STEW",
        "plain line of text",
    ]
    monkeypatch.setattr(token_rate, "load_tokenizer", lambda path: _CaseTokenizer())
    assert token_rate.main(["--tokenizer", "x", "--text", str(text)]) == 0
    out = capsys.readouterr().out
    # 6 words at 2.7 words/s: 2.2 s, old bound 16 < 19 tokens
    assert "| upper | 2.7 (assumed) | 3.00 / 3.00 | 8.1 / 8.1 | 1 / 0 of 2 |" in out
