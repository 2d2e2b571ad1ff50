"""Load and validate an experiment config (a dry run: no model is loaded) and print it.

With ``--get KEY`` prints one resolved value (e.g. ``data.input_kind``), which recipes use
to pick their stages' inputs; ``--get name`` prints the experiment name derived from the
settings.  With ``--get`` local model directories need not exist yet (recipes read values
before their stage 0 creates them); without it they must.

Usage:
    python -m slamasr.bin.show_config --config conf/slam_asr.yaml --get data.input_kind
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import yaml

from slamasr.config import ConfigError, load_config, to_dict
from slamasr.logging_setup import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--get", default=None, help="dotted key to print, or 'name'")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser


def lookup(tree: dict[str, Any], dotted: str) -> Any:
    """Return ``tree[a][b]...`` for ``dotted='a.b...'``; KeyError names the missing part."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"no config key '{dotted}' (missing '{part}')")
        node = node[part]
    return node


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(level=logging.WARNING)  # stdout is the answer; only warnings on stderr
    try:
        cfg = load_config(args.config, args.overrides, check_paths=args.get is None)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if args.get == "name":
        from slamasr.training.naming import experiment_name

        print(experiment_name(cfg))
        return 0
    tree = to_dict(cfg)
    if args.get:
        try:
            value = lookup(tree, args.get)
        except KeyError as e:
            print(f"config error: {e.args[0]}", file=sys.stderr)
            return 2
        print(yaml.safe_dump(value).strip() if isinstance(value, (dict, list)) else value)
        return 0
    print(yaml.safe_dump(tree, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
