"""Benchmark functions on tiny random models: FLOP counts, sizes, schema, ratios, identity."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slamasr import benchmark as bm
from slamasr.bin.benchmark import _int_list
from slamasr.training.config import TrainConfig
from tests.helpers import make_tiny_batch, make_tiny_model

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def modes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bm.ModeSetup]:
    model = make_tiny_model("whisper", tmp_path_factory.mktemp("bench"))
    return bm.build_modes(model, seed=0, ours_dtype=torch.bfloat16)


def _vocab(setup: bm.ModeSetup) -> int:
    return setup.model.llm.get_output_embeddings().weight.shape[0]


def test_llm_flops_match_hand_count_for_tiny_llama(modes):
    """2-layer 64-d LLaMA, 4 heads (2 kv) of 16, MLP 128: count by hand."""
    shape = bm.llm_shape(modes["ours"].model.llm)
    per_layer = 64 * 64 + 64 * 32 + 64 * 32 + 64 * 64 + 3 * 64 * 128  # q k v o gate up down
    assert shape.linear_params == 2 * per_layer == 73728
    vocab = _vocab(modes["ours"])
    length, supervised = 10, 3
    fwd_linear = 2 * 73728 * length  # 1,474,560
    fwd_attn = 2 * 4 * 64 * (10 * 11 // 2)  # causal pairs 55: 28,160
    fwd_head = 2 * 64 * vocab * supervised
    expected = 2 * fwd_linear + 3 * fwd_attn + 2 * fwd_head
    assert bm.llm_training_flops(shape, length, supervised) == expected
    assert bm.llm_forward_flops(shape, length, supervised) == fwd_linear + fwd_attn + fwd_head


def test_projector_and_encoder_flops_match_hand_count(modes):
    """Projector 5*32 -> 64 -> 64: fwd both, dW both, dX second only; Whisper 32-d, 2 layers."""
    projector = modes["ours"].model.projector
    per_frame = 2 * (2 * 160 * 64) + 3 * (2 * 64 * 64)
    assert bm.projector_training_flops(projector, 7) == 7 * per_frame
    conv = 2 * 80 * 3 * 32 * 3000 + 2 * 32 * 3 * 32 * 1500
    linear = 2 * 2 * (4 * 32 * 32 + 2 * 32 * 64) * 1500
    attention = 2 * 4 * 32 * 1500**2
    assert bm.whisper_encoder_flops(modes["ours"].model.encoder) == conv + linear + attention


@pytest.mark.parametrize("mode", bm.MODES)
def test_utterance_counts_match_built_inputs(modes, mode):
    """Counted lengths equal what build_inputs builds (reference: 300 speech tokens)."""
    model = modes[mode].model
    batch = make_tiny_batch("whisper", num=3)
    counts = bm.utterance_counts(model, batch)
    with torch.no_grad():
        inputs = model.build_inputs(batch, with_targets=True, left_pad=False)
    assert [c.length for c in counts] == inputs["attention_mask"].sum(1).tolist()
    assert [c.supervised for c in counts] == (inputs["labels"] != -100).sum(1).tolist()
    if mode == "reference":
        assert {c.speech for c in counts} == {300}
    else:
        assert max(c.speech for c in counts) < 300


def test_reference_loss_equals_supervised_head_loss(modes):
    """Full-vocabulary and supervised-only logits give the same loss (fp32)."""
    model = modes["ours"].model
    batch = make_tiny_batch("whisper", num=2)
    with torch.no_grad():
        ours, ref = model(batch), bm.reference_loss(model, batch)
    assert torch.allclose(ours["loss"], ref["loss"], atol=1e-5)
    assert int(ours["ce"][1]) == int(ref["ce"][1])


def test_timed_pass_is_the_trainers_own_step(tmp_path):
    """A benchmark pass leaves the projector exactly where ``loop.train`` takes it on the same
    batches and settings (gradient clipping, weight decay and betas included), and records
    each step's loss: the first is the untrained model's loss on the first batch."""
    from slamasr.distributed import DistInfo
    from slamasr.training.loop import build_trainer, train

    ours = bm.build_modes(make_tiny_model("whisper", tmp_path), 0, torch.float32)["ours"]
    twin = copy.deepcopy(ours.model)
    batches = [make_tiny_batch("whisper", num=2, seed=s) for s in range(3)]
    cfg = TrainConfig(lr=5e-3, grad_clip=0.05, weight_decay=0.1, betas=(0.8, 0.9))
    cfg = bm.bench_train_config(cfg, cfg.lr)
    with torch.no_grad():
        first_loss = float(twin(batches[0])["loss"])
    run = bm.train_pass(ours, bm.make_trainer(ours, batches, cfg, CPU, tmp_path / "bench"))
    assert len(run.steps) == 3 and run.steps[0].loss == pytest.approx(first_loss, rel=1e-6)
    loop_cfg = dataclasses.replace(cfg, max_steps=3, save_interval=1000)
    trainer = build_trainer(
        loop_cfg, tmp_path / "loop", twin, batches, None, CPU, torch.float32, DistInfo()
    )
    train(trainer)
    got, want = ours.model.trainable_state_dict(), twin.trainable_state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


def test_reference_never_freezes_a_trainable_llm_of_ours(tmp_path):
    """Ours' LLM with trainable weights (e.g. LoRA adapters from build_model): the reference
    gets its own copy, so building it does not freeze ours'."""
    model = make_tiny_model("whisper", tmp_path)
    adapter = next(model.llm.parameters())
    adapter.requires_grad_(True)
    modes = bm.build_modes(model, seed=0, ours_dtype=torch.float32)
    assert adapter.requires_grad
    assert any(p is adapter for p in modes["ours"].model.trainable_parameters())
    assert modes["reference"].model.llm is not model.llm


def test_linear_params_is_public_for_gpu_check(modes):
    """gpu_check counts HuBERT's linears with the FLOP module's ``linear_params``."""
    from slamasr.benchmark.flops import linear_params

    assert linear_params(modes["ours"].model.llm.get_decoder().layers[0]) == 73728 // 2


@pytest.fixture(scope="module")
def result(modes, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A result dict assembled from real (tiny) training, dev and decoding runs."""
    peaks = {"float32": 1e9, "bfloat16": 2e9}
    batches = [make_tiny_batch("whisper", num=2, seed=s) for s in range(2)]
    train_cfg = bm.bench_train_config(TrainConfig(), 1e-3)
    train, trainers = {}, {}
    for name in bm.MODES:
        exp = tmp_path_factory.mktemp(f"exp-{name}")
        trainers[name] = bm.make_trainer(modes[name], batches, train_cfg, CPU, exp)
        run = bm.train_pass(modes[name], trainers[name], batches[0])
        summary = bm.summarize_training(run, peaks[bm.dtype_name(modes[name].compute_dtype)])
        train[name] = {**summary, "compute_dtype": bm.dtype_name(modes[name].compute_dtype)}
    assert not any(p.is_file() for p in exp.rglob("*"))  # the trainer wrote nothing
    dev = {n: bm.dev_loss(trainers[n], batches[:1]) for n in bm.MODES}
    decode = bm.decode_timed(
        modes["ours"], batches, 4, 2, torch.device("cpu"), torch.float32
    ).summary(None)
    decode["rtf_incl_cache_build"] = (decode["wall_seconds"] + 0.25) / decode["audio_seconds"]
    single = {**decode, "batch_size": 1, "mismatches_vs_batch1": 0}
    result = {
        "environment": bm.environment(torch.device("cpu")),
        "matmul_peak_flops": peaks,
        "setup": {"train_cuts": 4, "train_audio_seconds": 1.8, "dev_cuts": 2, "lr": 1e-3},
        "encoder_cache": {"build_seconds": 0.5, "audio_seconds": 1.8},
        "train": train,
        "dev": dev,
        "decode": {
            "ours": [single, {**decode, "mismatches_vs_batch1": 0}],
            "ours_input": "cache",
            "reference": {**decode, "mode": "reference", "wall_seconds": 9.0},
        },
    }
    result["ratios"] = bm.compute_ratios(result, 10)
    result["targets"] = bm.check_targets(result)
    return result


def test_result_schema_and_ratios_from_measured_numbers(result):
    result = json.loads(json.dumps(result))  # JSON-serializable
    ours, ref = result["train"]["ours"], result["train"]["reference"]
    for t in (ours, ref):
        assert t["steps"] == 2 and t["utterances"] == 4
        assert t["wall_seconds"] > 0 and t["flops"] > 0 and t["peak_rss_bytes"] > 0
        assert t["audio_seconds_per_second"] == pytest.approx(
            t["audio_seconds"] / t["wall_seconds"]
        )
        assert t["gpu_max_allocated_bytes"] is None
    assert ours["mfu"] == pytest.approx(ours["flops"] / ours["wall_seconds"] / 2e9)
    assert ref["mfu"] == pytest.approx(ref["flops"] / ref["wall_seconds"] / 1e9)
    assert ref["llm_tokens"] > 4 * 300  # 300 speech tokens per utterance
    ratios = result["ratios"]
    expected = ours["audio_seconds_per_second"] / ref["audio_seconds_per_second"]
    assert ratios["train_audio_per_s"] == pytest.approx(expected)
    with_cache = ours["audio_seconds"] / (ours["wall_seconds"] + 0.5)
    assert ratios["train_audio_per_s_cache_1_epoch"] == pytest.approx(
        with_cache / ref["audio_seconds_per_second"]
    )
    diff = result["dev"]["ours"]["loss"] - result["dev"]["reference"]["loss"]
    assert ratios["dev_loss_ours_minus_reference"] == pytest.approx(diff)
    ref_rtf = result["decode"]["reference"]["rtf"]
    best = result["decode"]["ours"][1]
    assert ratios["decode_beam4_batched_vs_batch1"] == pytest.approx(1.0)  # same run twice
    assert ratios["decode_beam4_batched_vs_reference"] == pytest.approx(ref_rtf / best["rtf"])
    assert ratios["decode_beam4_batched_incl_cache_vs_reference"] == pytest.approx(
        ref_rtf / best["rtf_incl_cache_build"]
    )
    assert set(result["targets"]) == {
        "train_throughput_ge_3x",
        "dev_loss_equal_or_better",
        "decode_beam4_ge_5x_vs_batch1",
        "decode_hyps_identical",
        "mfu_ge_50pct",
    }
    markdown = bm.render_markdown(result)
    assert "| ours (bfloat16) |" in markdown and "| reference (float32) |" in markdown


def test_batched_and_single_hypotheses_are_compared(modes):
    """Beam-4 batch of 3 vs one at a time: identical, and a planted difference is counted."""
    cpu = torch.device("cpu")
    batch = make_tiny_batch("whisper", num=3, durations=[0.6, 0.4, 0.3])
    singles = [
        {k: (v[i : i + 1] if torch.is_tensor(v) else v[i : i + 1]) for k, v in batch.items()}
        for i in range(3)
    ]
    for one in singles:
        one["inputs"] = one["inputs"][:, : int(one["input_lengths"].max())]
        one["bad_cut_ids"] = []
    single = bm.decode_timed(modes["ours"], singles, 4, 1, cpu, torch.float32)
    batched = bm.decode_timed(modes["ours"], [batch], 4, 3, cpu, torch.float32)
    assert batched.summary(single.hyps)["mismatches_vs_batch1"] == 0
    assert bm.hypothesis_mismatches(batched.hyps, single.hyps) == []
    planted = {**batched.hyps, "utt-0-1": batched.hyps["utt-0-1"] + " x"}
    assert bm.hypothesis_mismatches(planted, single.hyps) == ["utt-0-1"]
    assert (
        bm.DecodeRun("ours", 4, 3, 1.0, 2.0, planted).summary(single.hyps)["mismatches_vs_batch1"]
        == 1
    )


def test_memory_and_peak_helpers():
    assert bm.peak_rss_bytes() > 0
    bm.reset_peak_memory(torch.device("cpu"))
    assert bm.peak_rss_bytes() > 0
    assert bm.measure_matmul_peak(torch.device("cpu"), torch.float32, size=64, seconds=0.02) > 0


def test_cli_int_list():
    assert _int_list("1,4,8") == (1, 4, 8)
    with pytest.raises(argparse.ArgumentTypeError):
        _int_list("1,x")


def test_table_tool_renders_json_into_doc(result, tmp_path):
    """tools/benchmark_table.py writes the table between the markers of a markdown file."""
    result_path = tmp_path / "bench.json"
    result_path.write_text(json.dumps(result), encoding="utf-8")
    doc = tmp_path / "bench.md"
    doc.write_text(
        "intro\n<!-- benchmark-table:start -->\nold\n<!-- benchmark-table:end -->\nend\n"
    )
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark_table.py"), str(result_path),
         "--update", str(doc)],
        check=True, cwd=REPO,
    )  # fmt: skip
    text = doc.read_text()
    assert "old" not in text and "| reference (float32) |" in text
    assert text.startswith("intro\n") and text.endswith("end\n")


def test_encoder_cache_manifest_is_refused_as_encoder_input(tmp_path):
    """--cuts must carry the encoder's input features, not cached encoder outputs."""
    from lhotse import CutSet, Features, MonoCut, SupervisionSegment

    from slamasr.data.config import DataConfig

    feats = Features(
        type="encoder_cache", num_frames=50, num_features=384, frame_shift=0.02,
        sampling_rate=16000, start=0.0, duration=1.0, storage_type="numpy_files",
        storage_path=str(tmp_path), storage_key="a.npy",
    )  # fmt: skip
    sup = SupervisionSegment(id="a", recording_id="a", start=0.0, duration=1.0, text="HELLO")
    cut = MonoCut(id="a", start=0.0, duration=1.0, channel=0, features=feats, supervisions=[sup])
    path = tmp_path / "enc.jsonl.gz"
    CutSet.from_cuts([cut]).to_file(path)
    with pytest.raises(ValueError, match="encoder's input features"):
        bm.first_cuts(str(path), 1, DataConfig(input_kind="whisper_mel"), train=False)


def test_joint_decoding_row_and_its_ratio_to_the_llm_alone(tmp_path):
    """``joint``: decode_timed runs the config's joint CTC/LLM search (labelled in the row);
    the ratio is its RTF over the LLM-only run at the same beam and batch size; the table
    shows the row."""
    from slamasr.decoding_config import DecodeConfig
    from slamasr.models import build_model
    from slamasr.models.config import CharCTCConfig
    from tests.helpers import tiny_model_config

    cfg = tiny_model_config("whisper", tmp_path)
    cfg.char_ctc = CharCTCConfig(weight=0.5, hidden_dim=16)
    torch.manual_seed(0)
    ours = bm.build_modes(build_model(cfg), seed=0, ours_dtype=torch.float32)["ours"]
    cpu = torch.device("cpu")
    batches = [make_tiny_batch("whisper", num=2, seed=s) for s in range(2)]
    joint_cfg = DecodeConfig(scorers={"ctc": {"weight": 0.5, "head": "char", "pre_beam": 4}})
    plain = bm.decode_timed(ours, batches, 2, 2, cpu, torch.float32).summary(None)
    joint = bm.decode_timed(ours, batches, 2, 2, cpu, torch.float32, joint=joint_cfg)
    assert joint.joint == "char ctc 0.5" and len(joint.hyps) == 4
    row = joint.summary(None)
    assert row["search"] == "native + char ctc 0.5"
    train = {"audio_seconds_per_second": 1.0, "llm_tokens_per_second": 1.0}
    train.update(audio_seconds=1.0, wall_seconds=1.0)
    result = {
        "train": {"ours": train, "reference": train},
        "encoder_cache": {"build_seconds": 0.0},
        "dev": {"ours": {"loss": 1.0}, "reference": {"loss": 1.0}},
        "decode": {"ours": [plain], "ours_joint": row},
    }
    ratios = bm.compute_ratios(result, 1)
    assert ratios["decode_joint_rtf_over_llm_only"] == pytest.approx(row["rtf"] / plain["rtf"])
    assert "decode_joint_rtf_over_no_rescore" not in ratios
    assert any("native + char ctc 0.5" in line for line in bm.decoding_table(result))
    # with LLM rescoring of the n-best: labelled, and its cost as a ratio to the same search
    rescored_cfg = dataclasses.replace(joint_cfg, rescorers={"lm": {"weight": 0.3}})
    rescored = bm.decode_timed(ours, batches, 2, 2, cpu, torch.float32, joint=rescored_cfg)
    assert rescored.joint == "char ctc 0.5 + lm rescore 0.3" and len(rescored.hyps) == 4
    result["decode"]["ours_joint"] = rescored.summary(None)
    result["decode"]["ours_joint_no_rescore"] = row
    ratios = bm.compute_ratios(result, 1)
    want = result["decode"]["ours_joint"]["rtf"] / row["rtf"]
    assert ratios["decode_joint_rtf_over_no_rescore"] == pytest.approx(want)
    table = bm.decoding_table(result)
    assert any("char ctc 0.5 + lm rescore 0.3" in line for line in table)
    assert sum("native + char ctc 0.5 |" in line for line in table) == 1


def test_decode_checkpoint_with_a_char_head_loads_into_both_modes(tmp_path):
    """The reference mode (the paper's model) has no character CTC head: it takes the
    projector from the checkpoint, ours takes both."""
    from safetensors.torch import save_file

    from slamasr.models import build_model
    from slamasr.models.config import CharCTCConfig
    from slamasr.training.checkpoint import WEIGHTS
    from tests.helpers import tiny_model_config

    cfg = tiny_model_config("whisper", tmp_path)
    cfg.char_ctc = CharCTCConfig(weight=0.5, hidden_dim=16)
    torch.manual_seed(0)
    modes = bm.build_modes(build_model(cfg), seed=0, ours_dtype=torch.float32)
    trained = {k: v + 1.0 for k, v in modes["ours"].model.trainable_state_dict().items()}
    (tmp_path / "ckpt").mkdir()
    save_file(trained, str(tmp_path / "ckpt" / WEIGHTS))
    bm.load_decode_projectors(modes, str(tmp_path / "ckpt"))
    for name, setup in modes.items():
        state = setup.model.trainable_state_dict()
        assert any(k.startswith("char_ctc.") for k in state) == (name == "ours")
        for key, value in state.items():
            torch.testing.assert_close(value, trained[key])
