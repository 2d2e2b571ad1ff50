"""Ratios, issue-6 targets and the markdown tables, all computed from a measured result."""

from __future__ import annotations

from typing import Any, Optional

from slamasr.benchmark.modes import MODES

Row = dict[str, Any]


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` (NaN when the denominator is 0)."""
    return numerator / denominator if denominator else float("nan")


def amortized_throughput(train: dict[str, Any], cache_seconds: float, epochs: int) -> float:
    """Audio s per wall s when the cache build is spread over ``epochs`` passes."""
    wall = train["wall_seconds"] + cache_seconds / max(epochs, 1)
    return ratio(train["audio_seconds"], wall)


def best_batched(decodes: list[Row], beams: int) -> Optional[Row]:
    """The fastest ours-mode decode with ``batch_size > 1`` at ``beams`` (None if none)."""
    rows = [d for d in decodes if d["num_beams"] == beams and d["batch_size"] > 1]
    return min(rows, key=lambda d: d["rtf"]) if rows else None


def batch1(decodes: list[Row], beams: int) -> Optional[Row]:
    """The ours-mode batch-1 decode at ``beams`` (None if not run)."""
    rows = [d for d in decodes if d["num_beams"] == beams and d["batch_size"] == 1]
    return rows[0] if rows else None


def _train_ratios(result: dict[str, Any], amortize_epochs: int) -> dict[str, float]:
    """Training throughput (also with the cache build amortized), token rate, dev loss."""
    ours, ref = result["train"]["ours"], result["train"]["reference"]
    cache_s = result["encoder_cache"]["build_seconds"]
    ref_rate = ref["audio_seconds_per_second"]
    return {
        "train_audio_per_s": ratio(ours["audio_seconds_per_second"], ref_rate),
        "train_audio_per_s_cache_1_epoch": ratio(amortized_throughput(ours, cache_s, 1), ref_rate),
        f"train_audio_per_s_cache_{amortize_epochs}_epochs": ratio(
            amortized_throughput(ours, cache_s, amortize_epochs), ref_rate
        ),
        "train_llm_tokens_per_s": ratio(
            ours["llm_tokens_per_second"], ref["llm_tokens_per_second"]
        ),
        "dev_loss_ours_minus_reference": result["dev"]["ours"]["loss"]
        - result["dev"]["reference"]["loss"],
    }


def _joint_ratios(decode: dict[str, Any]) -> dict[str, float]:
    """The joint search's RTF over the LLM alone at its size (> 1: slower), and over the same
    search without LLM rescoring (> 1: what the rescoring costs)."""
    out: dict[str, float] = {}
    joint, unrescored = decode.get("ours_joint"), decode.get("ours_joint_no_rescore")
    if not joint:
        return out
    same = [
        d
        for d in decode["ours"]
        if d["num_beams"] == joint["num_beams"] and d["batch_size"] == joint["batch_size"]
    ]
    if same:
        out["decode_joint_rtf_over_llm_only"] = ratio(joint["rtf"], same[0]["rtf"])
    if unrescored:
        out["decode_joint_rtf_over_no_rescore"] = ratio(joint["rtf"], unrescored["rtf"])
    return out


def _decode_ratios(decode: dict[str, Any]) -> dict[str, float]:
    """Batched vs batch 1 per beam size, the joint search, batched beam 4 vs the reference."""
    decodes, out = decode["ours"], {}
    for beams in sorted({d["num_beams"] for d in decodes}):
        best, single = best_batched(decodes, beams), batch1(decodes, beams)
        if best and single:
            out[f"decode_beam{beams}_batched_vs_batch1"] = ratio(single["rtf"], best["rtf"])
    out.update(_joint_ratios(decode))
    ref_dec, best4 = decode.get("reference"), best_batched(decodes, 4)
    if ref_dec and best4:
        out["decode_beam4_batched_vs_reference"] = ratio(ref_dec["rtf"], best4["rtf"])
        incl = best4.get("rtf_incl_cache_build", best4["rtf"])
        out["decode_beam4_batched_incl_cache_vs_reference"] = ratio(ref_dec["rtf"], incl)
    return out


def compute_ratios(result: dict[str, Any], amortize_epochs: int) -> dict[str, Any]:
    """Speed-ups computed from the measured numbers in ``result``."""
    return {**_train_ratios(result, amortize_epochs), **_decode_ratios(result["decode"])}


def check_targets(result: dict[str, Any]) -> dict[str, Any]:
    """Issue-6 targets (>=3x training, >=5x beam-4 decoding with identical hyps, MFU >=50%)."""
    ratios, ours = result["ratios"], result["train"]["ours"]
    rows = [d for d in result["decode"]["ours"] if d["num_beams"] == 4 and d["batch_size"] > 1]
    identical = all(d["mismatches_vs_batch1"] == 0 for d in rows) if rows else None
    decode_speed = ratios.get("decode_beam4_batched_vs_batch1", float("nan"))
    dev_diff = ratios["dev_loss_ours_minus_reference"]
    return {
        "train_throughput_ge_3x": ratios["train_audio_per_s"] >= 3.0,
        "dev_loss_equal_or_better": dev_diff <= 0.0,
        "decode_beam4_ge_5x_vs_batch1": decode_speed >= 5.0,
        "decode_hyps_identical": identical,
        "mfu_ge_50pct": ours["mfu"] >= 0.5,
    }


def _mb(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def training_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: one per training mode."""
    peaks = result["matmul_peak_flops"]
    lines = [
        "| mode | steps | utts | audio s | s/step | audio s/s | LLM tok/s | padding "
        "| GFLOP/s | matmul peak GFLOP/s | MFU | peak RSS MB | GPU max MB | dev loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in MODES:
        t, dev = result["train"][name], result["dev"][name]
        peak = peaks[t["compute_dtype"]]
        lines.append(
            f"| {name} ({t['compute_dtype']}) | {t['steps']} | {t['utterances']} "
            f"| {t['audio_seconds']:.1f} | {t['seconds_per_step']:.2f} "
            f"| {t['audio_seconds_per_second']:.2f} | {t['llm_tokens_per_second']:.0f} "
            f"| {100 * t['padding_fraction']:.0f}% | {t['achieved_flops_per_second'] / 1e9:.1f} "
            f"| {peak / 1e9:.1f} | {100 * t['mfu']:.0f}% | {_mb(t['peak_rss_bytes'])} "
            f"| {_mb(t['gpu_max_allocated_bytes'])} | {dev['loss']:.3f} |"
        )
    return lines


def _decoding_row(dec: dict[str, Any], d: Row) -> str:
    """One markdown row of :func:`decoding_table`."""
    single = batch1(dec.get("ours", []), d["num_beams"])
    speed = ratio(single["rtf"], d["rtf"]) if single else float("nan")
    miss = "-" if d["mismatches_vs_batch1"] is None else str(d["mismatches_vs_batch1"])
    ours = d["mode"] == "ours"
    source = dec.get("ours_input", "features") if ours else "features"
    incl = f"{d['rtf_incl_cache_build']:.3f}" if ours and source == "cache" else "-"
    return (
        f"| {d['mode']} | {source} | {d.get('search', 'hf')} | {d['num_beams']} "
        f"| {d['batch_size']} "
        f"| {d['utterances']} | {d['audio_seconds']:.1f} | {d['wall_seconds']:.1f} "
        f"| {d['rtf']:.3f} | {incl} | {speed:.2f}x | {miss} |"
    )


def decoding_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: one per decoding run."""
    dec = result["decode"]
    rows = list(dec.get("ours", []))
    for key in ("ours_joint", "ours_joint_no_rescore"):
        if dec.get(key):
            rows.append(dec[key])
    if dec.get("reference"):
        rows.append(dec["reference"])
    if not rows:
        return ["(no decoding run)"]
    lines = [
        "| mode | input | search | beams | batch | utts | audio s | wall s | RTF "
        "| RTF incl. cache build | speed-up vs ours batch 1 | hyps differing from batch 1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    return lines + [_decoding_row(dec, d) for d in rows]


def ratios_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: the measured ratios and the issue's targets."""
    lines = ["| ratio (ours / reference unless named) | value |", "|---|---|"]
    for key, value in result["ratios"].items():
        lines.append(f"| {key} | {value:.3f} |")
    lines += ["", "| target | met |", "|---|---|"]
    for key, value in result["targets"].items():
        lines.append(f"| {key} | {'n/a' if value is None else ('yes' if value else 'NO')} |")
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    """The whole result as markdown (used by the CLI and ``tools/benchmark_table.py``)."""
    env, setup = result["environment"], result.get("setup", {})
    cache = result["encoder_cache"]
    head = [
        f"Measured {env['time']} on {env['device']} ({env['device_name']}, "
        f"{env['torch_threads']} threads, torch {env['torch']}, git {env['git_sha'][:12]}).",
        f"Training audio: {setup.get('train_cuts')} cuts, "
        f"{setup.get('train_audio_seconds', 0):.1f} s "
        f"(one pass per mode, lr {setup.get('lr')}); dev loss on {setup.get('dev_cuts')} cuts. "
        f"Encoder cache build (ours, once): {cache['build_seconds']:.1f} s.",
        "",
    ]
    body = training_table(result) + [""] + decoding_table(result) + [""] + ratios_table(result)
    return "\n".join(head + body) + "\n"
