"""Decode test sets with beam search using a trained experiment; one recogs file per set.

Reads ``<exp-dir>/config.yaml``, loads the trainable weights of ``--checkpoint`` (averaged over
the last ``--avg`` step checkpoints when > 1) and writes
``<exp-dir>/decode-<checkpoint>-avg<K>-beam<N>/{recogs,bad-cuts}-<set>.txt``. Every cut of a
test set gets exactly one result (unreadable cuts: ``hyp=[]``). Shards over torchrun ranks.

Decoding settings come from the config's ``decode:`` section: the paper's at its top level,
scorers beside the LLM under ``decode.scorers.<name>`` and n-best rescorers under
``decode.rescorers.<name>`` (each on iff its weight > 0; e.g. ``--set
decode.scorers.ctc.weight=0.3``). ``--paper`` turns every scorer and rescorer off.

Usage:
    python -m slamasr.bin.decode --exp-dir exp/whisper_tiny --checkpoint best --num-beams 4 \
        --test-sets test-clean=data/manifests/cuts_test-clean.jsonl.gz [--avg 5] [--overwrite]
    python -m slamasr.bin.decode --exp-dir exp/whisper_tiny --paper   # as the paper decodes
    python -m slamasr.bin.decode --exp-dir exp/whisper_tiny --test-sets dev dev_ood  # choose on
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from slamasr.config import ConfigError, ExperimentConfig, load_config
from slamasr.data.ids import UnsafeIdError
from slamasr.data.manifests import UnsafeManifestError
from slamasr.decoding import DecodeOutputExistsError, config_decode_tag, run_decoding
from slamasr.distributed import cleanup_distributed, dist_info_from_env
from slamasr.logging_setup import setup_logging
from slamasr.models.hub import ModelLoadError
from slamasr.models.lora import LoRAStateError
from slamasr.utils import time_tag

UnsafeDataError = (UnsafeIdError, UnsafeManifestError)


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (unset ones come from the config's ``decode:`` section)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exp-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", default=None, help="best | last | step-N")
    parser.add_argument("--avg", type=int, default=None, help="average the last K checkpoints")
    parser.add_argument("--num-beams", type=int, default=None)
    parser.add_argument(
        "--test-sets",
        nargs="*",
        default=None,
        help="name=cuts.jsonl.gz, or a name of data.dev_sets / data.test_sets (e.g. dev_ood, to "
        "choose settings on); default: every set of data.test_sets",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing recogs")
    parser.add_argument(
        "--paper",
        action="store_true",
        help="decode as the paper: every decode.scorers.* and decode.rescorers.* off",
    )
    parser.add_argument(
        "--print-out-dir",
        action="store_true",
        help="print the decode dir these options write to, then exit (decodes nothing)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override, repeatable (e.g. --set decode.max_duration=60, "
        "--set decode.scorers.ctc.weight=0.3)",
    )
    return parser


def parse_test_sets(items: list[str], cfg: Optional[ExperimentConfig] = None) -> dict[str, str]:
    """``["test-clean=a.jsonl.gz", "dev_ood"]`` -> ``{"test-clean": "a.jsonl.gz", "dev_ood": ...}``:
    a bare name is looked up in ``cfg.data.dev_sets``, then ``cfg.data.test_sets``."""
    known: dict[str, str] = {}
    if cfg is not None:
        known = {**cfg.data.test_sets, **cfg.data.dev_sets}
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep and name in known:
            path = known[name]
        elif not sep or not name or not path:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"--test-sets entry {item!r} must look like name=cuts.jsonl.gz or name a set "
                f"of data.dev_sets / data.test_sets in the experiment's config ({names})"
            )
        if name in out:
            raise ConfigError(f"--test-sets names {name!r} twice")
        out[name] = path
    return out


def _cli_overrides(args: argparse.Namespace) -> list[str]:
    pairs = {"checkpoint": args.checkpoint, "avg": args.avg, "num_beams": args.num_beams}
    return [f"decode.{k}={v}" for k, v in pairs.items() if v is not None]


def load_decode_config(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment's recorded config + ``--set`` and the options; with ``--paper`` its
    scorers and rescorers off (before validation: their settings no longer matter)."""
    path, overrides = args.exp_dir / "config.yaml", args.overrides + _cli_overrides(args)
    cfg = load_config(path, overrides, validate=not args.paper, recorded=True)
    if args.paper:
        cfg.decode = cfg.decode.paper()
        try:
            cfg.validate()
        except ConfigError as e:
            raise ConfigError(f"{e} (in {path})") from None
    return cfg


def print_out_dir(args: argparse.Namespace) -> int:
    """Print ``<exp-dir>/<decode-tag>`` for the resolved decode settings (recipes use it)."""
    try:
        cfg = load_decode_config(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(args.exp_dir / config_decode_tag(cfg.decode))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the process exit status."""
    args = get_parser().parse_args(argv)
    if args.print_out_dir:
        return print_out_dir(args)
    if not (args.exp_dir / "config.yaml").is_file():  # before anything is written there
        what = "no experiment dir" if not args.exp_dir.is_dir() else "no config.yaml in"
        print(
            f"error: {what} {args.exp_dir} (cwd {Path.cwd()}): pass --exp-dir of a trained "
            f"experiment (the dir holding config.yaml and checkpoints/)",
            file=sys.stderr,
        )
        return 1
    info = dist_info_from_env()
    setup_logging(args.exp_dir / "log" / f"log-decode-{time_tag()}-{info.rank}", info.rank)
    try:
        cfg = load_decode_config(args)
        test_sets = parse_test_sets(args.test_sets, cfg) if args.test_sets else cfg.data.test_sets
        if not test_sets:
            raise ConfigError("no test sets: pass --test-sets or set data.test_sets")
        run_decoding(cfg, args.exp_dir, test_sets, overwrite=args.overwrite)
    except (
        ConfigError,
        DecodeOutputExistsError,
        FileNotFoundError,
        LoRAStateError,
        ModelLoadError,
        *UnsafeDataError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
