"""The one-GPU check (``slamasr.gpu_check``) run on CPU with tiny shapes, and its pieces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from slamasr import distributed as d
from slamasr import gpu_check as g
from slamasr.bin import gpu_check as cli

CPU = torch.device("cpu")


def run_cli(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "check.json"
    code = cli.main(["--device", "cpu", "--out", str(out), *args])
    return code, json.loads(out.read_text())


def assert_pairing_ok(part: dict[str, Any], steps: int, long_utts: int, short_utts: int) -> None:
    assert part["ok"], part
    params = part["parameters"]
    assert set(params) == {"encoder", "projector", "llm"}
    assert part["trainable_parameters"] == sum(params["projector"].values())
    assert part["attention_implementation"]["llm"] == "sdpa"
    train = part["train"]
    assert len(train["step_seconds"]) == steps and train["skipped_steps"] == 0
    assert train["batch_size"] in (4, 6) and train["flops_per_step"] > 0 and train["mfu"] > 0
    assert train["gradients"]["only_projector"] and train["gradients"]["all_finite"]
    assert train["gradients"]["tensors_with_grad"] == train["gradients"]["projector_tensors"]
    assert all(loss is not None and loss > 0 for loss in train["losses"])
    for name, count in (("long", long_utts), ("short", short_utts)):
        dec = part["decode"][name]
        assert dec["utterances"] == count and dec["num_beams"] == 4
        assert 0 <= dec["rows_at_max_new_tokens"] <= count and dec["wall_seconds"] > 0


def assert_collectives_ok(coll: dict[str, Any]) -> None:
    assert coll["ok"] and coll["backend"] == "gloo" and coll["world_size"] == 1, coll
    expected = {
        "all_reduce_sum": "all_reduce",
        "average_gradients": "all_reduce",
        "broadcast_parameters": "broadcast",
        "broadcast_object": "broadcast_object_list",
        "barrier": "barrier",
        "trainer_step": "all_reduce",
    }
    for name, torch_call in expected.items():
        assert coll[name]["ok"] and torch_call in coll[name]["torch_calls"], (name, coll[name])


def test_small_check_on_cpu_trains_only_the_projector_and_decodes(
    tmp_path: Path,
) -> None:
    code, result = run_cli(
        tmp_path,
        *("--parts", "hubert"),
        *("--train-steps", "2", "--long-utts", "1", "--short-utts", "3"),
    )
    assert code == 0 and result["ok"] and result["tiny"]  # no CUDA: tiny implied
    assert "partial" not in result  # the final report replaced the per-part saves
    assert result["bf16_matmul_peak_flops"] > 0
    assert result["scale"]["train_steps"] == 2 and result["scale"]["audio_seconds"] == 4.0
    assert_pairing_ok(result["hubert"], steps=2, long_utts=1, short_utts=3)
    assert "whisper" not in result and "collectives" not in result and "recipe" not in result


@pytest.mark.slow
def test_tiny_check_on_cpu_all_parts_but_the_recipe(tmp_path: Path) -> None:
    code, result = run_cli(tmp_path, "--tiny", "--parts", "hubert", "whisper", "collectives")
    assert code == 0 and result["ok"]
    for name in ("hubert", "whisper"):
        assert_pairing_ok(result[name], steps=3, long_utts=2, short_utts=8)
    assert result["whisper"]["train"]["batch_size"] == 4  # the Whisper conf's paper batch
    assert result["hubert"]["train"]["batch_size"] == 6
    assert_collectives_ok(result["collectives"])


@pytest.mark.slow
def test_tiny_recipe_stages_1_to_5_on_the_check_device(tmp_path: Path) -> None:
    code, result = run_cli(tmp_path, "--parts", "recipe", "--work-dir", str(tmp_path / "w"))
    recipe = result["recipe"]
    assert code == 0 and recipe["ok"], recipe.get("output_tail")
    assert recipe["train_device"] == "cpu" and len(recipe["wer_lines"]) == 2


def test_device_cuda_without_cuda_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert cli.main(["--device", "cuda", "--parts", "collectives"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --device cuda but torch sees no CUDA device; use --device auto or cpu"]


# --------------------------------------------------------------------------- pieces


@pytest.fixture(scope="module")
def tiny_model() -> Any:
    setup = g.setups(tiny=True)["hubert"]
    torch.manual_seed(0)
    return g.build_check_model(setup, g.recipe_config(setup.conf), CPU)


def test_gradient_report_flags_gradients_outside_the_projector_and_non_finite(
    tiny_model: Any,
) -> None:
    model = tiny_model
    model.zero_grad(set_to_none=True)
    for p in model.projector.parameters():
        p.grad = torch.ones_like(p)
    report = g.gradient_report(model)
    assert report["only_projector"] and report["all_finite"]
    llm_name, llm_param = next(iter(model.llm.named_parameters()))
    llm_param.grad = torch.zeros_like(llm_param)
    report = g.gradient_report(model)
    assert not report["only_projector"] and report["outside_projector"] == [f"llm.{llm_name}"]
    llm_param.grad = None
    next(iter(model.projector.parameters())).grad[0] = float("nan")
    assert not g.gradient_report(model)["all_finite"]
    model.zero_grad(set_to_none=True)
    assert not g.gradient_report(model)["only_projector"]  # no gradient at all is not ok


def test_training_batch_has_the_conf_batch_and_about_the_target_tokens(tiny_model: Any) -> None:
    cfg = g.recipe_config("slam_asr.yaml")
    opts = g.CheckOptions(tiny=True, target_tokens=50, audio_seconds=3.0).resolved()
    batch = g.training_batch(tiny_model, cfg, opts)
    assert batch["inputs"].shape == (6, 3 * 16000)
    tokens = [len(tiny_model.template.target_ids(t)) - 1 for t in batch["texts"]]
    assert all(45 <= n <= 50 for n in tokens), tokens


def test_decode_batches_follow_decode_max_duration(tiny_model: Any) -> None:
    cfg = g.recipe_config("slam_asr.yaml").decode  # max_duration 200 s
    batches = g.decode_batches(tiny_model, [30.0] * 6 + [5.0] * 10, cfg, 0)
    assert [len(b["cut_ids"]) for b in batches] == [10, 6]  # 6 x 30 + 4 x 5 = 200 s, then 30 s
    assert all(float(b["durations"].sum()) <= 200 for b in batches)


def test_ssl_encoder_flops_match_a_hand_count(tiny_model: Any) -> None:
    enc = tiny_model.encoder
    cfg = enc.model.config
    samples = 16000
    lengths, convs = samples, 0.0
    for i, (k, s) in enumerate(zip(cfg.conv_kernel, cfg.conv_stride)):
        lengths = (lengths - k) // s + 1
        convs += 2 * (1 if i == 0 else cfg.conv_dim[i - 1]) * k * cfg.conv_dim[i] * lengths
    t, dim = lengths, cfg.hidden_size
    proj = 2 * cfg.conv_dim[-1] * dim * t
    pos = 2 * dim // cfg.num_conv_pos_embedding_groups * cfg.num_conv_pos_embeddings * dim * t
    layer_linears = 4 * dim * dim + 2 * dim * cfg.intermediate_size
    layers = cfg.num_hidden_layers * (2 * layer_linears * t + 4 * dim * t * t)
    assert g.ssl_encoder_flops(enc, samples) == convs + proj + pos + layers


def test_misplaced_tensors_names_host_tensors_on_a_gpu_backend() -> None:
    calls = [
        {"name": "all_reduce", "devices": ["cpu"], "backend": "nccl"},
        {"name": "all_reduce", "devices": ["cuda:0"], "backend": "nccl"},
        {"name": "broadcast", "devices": ["cpu"], "backend": "gloo"},  # a gloo side group
    ]
    assert g.misplaced_tensors(calls, torch.device("cuda", 0)) == [
        "all_reduce of a cpu tensor over nccl"
    ]
    assert g.misplaced_tensors(calls[2:], CPU) == []


def test_a_collective_that_skips_torch_distributed_is_reported(tmp_path: Path) -> None:
    g.init_single_rank_group(CPU, tmp_path / "store")
    try:
        recorder = g.CollectiveRecorder()
        with recorder.active():  # is_distributed() is False on one rank: nothing is sent
            _, report = g._run_recorded(lambda: d.all_reduce_sum(torch.ones(2)), recorder, CPU)
    finally:
        dist.destroy_process_group()
    assert not report["ok"] and report["error"] == "no torch.distributed call was made"


def test_encoder_precision_fp16_autocast_is_closer_to_fp32_than_bf16() -> None:
    report = g.encoder_precision(seconds=1.0, tiny=True)
    variants = report["variants"]
    assert set(variants) == set(g.PRECISION_VARIANTS)
    bf16 = variants["bf16_weights_bf16_autocast"]["final"]
    fp16 = variants["fp32_weights_fp16_autocast"]["final"]
    assert 0 < fp16["rel_err"] < bf16["rel_err"] < 0.1
    assert bf16["cosine"] > 0.99 and fp16["nonfinite"] == 0
    per_output = variants["bf16_weights_bf16_autocast"]["per_output"]
    assert len(per_output) == 3  # input of layer 1, after layer 1, final (2 tiny layers)
    assert "| final (layer-normed) |" in g.precision_table(report)


def test_check_collectives_runs_each_public_collective_on_a_one_rank_group(
    tmp_path: Path,
) -> None:
    seen: list[list[str]] = []
    report = g.run_check(
        g.CheckOptions(device="cpu", parts=("collectives",), work_dir=str(tmp_path)),
        on_part=lambda partial: seen.append(sorted(k for k in partial if k in g.PARTS)),
    )
    assert seen == [["collectives"]]  # saved after the part, before the run ends
    result = report["collectives"]
    assert_collectives_ok(result)
    assert result["trainer_step"]["devices"] == ["cpu"]
    assert not dist.is_initialized()  # the group is left again


def test_estimates_count_the_papers_projector_sizes_and_grow_with_length() -> None:
    long = g.estimates(30.0, 300)
    short = g.estimates(12.3, 76)
    projector = {name: round(r["projector_params"] / 1e6, 2) for name, r in long.items()}
    assert projector["whisper_large_v2-vicuna.yaml"] == 21.50  # paper's tables
    assert projector["whisper_tiny-vicuna.yaml"] == 12.33
    assert projector["hubert_xlarge_ft-tinyllama.yaml"] == 17.31
    hubert = long["slam_asr.yaml (HuBERT X-Large + Vicuna-7B)"]
    assert 0.95e9 < hubert["encoder_params"] < 0.97e9 and 6.7e9 < hubert["llm_params"] < 6.8e9
    assert hubert["llm_tokens_per_utt"] == 20 + 300 + 301
    for name in long:
        assert short[name]["train_bytes"] < long[name]["train_bytes"]
        assert short[name]["flops_per_step"] < long[name]["flops_per_step"]
    assert "| whisper_tiny-vicuna.yaml | 4 | 621 |" in g.estimate_table(long)
