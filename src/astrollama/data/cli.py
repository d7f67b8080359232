"""``astrollama data ...``: every data-prep stage registers its own sub-command.

Each module in :data:`MODULES` exposes ``add_cli(subparsers)``, which adds its parser(s) and sets
``func`` (a callable ``(argparse.Namespace) -> int``) with ``set_defaults``. Modules must import
heavy dependencies (torch, transformers, vLLM) inside their functions, not at module level, so
that ``astrollama data --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

MODULES = (
    "astrollama.data.manifest",   # manifest summary/export/failures/compact
    "astrollama.data.harvest",    # harvest oai/kaggle/lookup
    "astrollama.data.download",   # download
    "astrollama.data.ocr",        # ocr
    "astrollama.data.aic",        # aic
    "astrollama.data.summarize",  # summarize
    "astrollama.data.build",      # build
    "astrollama.data.bench",      # bench (throughput of the CPU corpus stages)
    "astrollama.data.demo",       # demo-prep (the offline demo data chain)
)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="astrollama data", description="arXiv astro-ph data preparation (see docs/data-*.md)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a missing dependency inside the module is a real error
                raise
            log.debug("data CLI: %s not present; its sub-command is unavailable", name)
            continue
        if not hasattr(module, "add_cli"):
            log.warning("data CLI: %s has no add_cli(subparsers); its sub-command is unavailable", name)
            continue
        module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. Expected failures (bad input, HTTP give-ups, missing files) print one
    line naming the problem and return 1; ``ASTROLLAMA_DEBUG=1`` re-raises them with a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        if os.environ.get("ASTROLLAMA_DEBUG"):
            raise
        log.debug("traceback", exc_info=True)
        print(f"astrollama data {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
