"""``astrollama data ...``: every data-prep stage registers its own sub-command.

Each module in :data:`MODULES` exposes ``add_cli(subparsers)``, which adds its parser(s) and sets
``func`` (a callable ``(argparse.Namespace) -> int``) with ``set_defaults``. Modules must import
heavy dependencies (torch, transformers, vLLM) inside their functions, not at module level, so
that ``astrollama data --help`` stays fast.

Errors follow the one policy of :mod:`astrollama.errors` (printed by ``astrollama.cli.main``):
bad input (a bad option value, a missing or malformed file, no manifest) is one line
``<file>: <field>: <problem>`` and exit 2; a failing machine or server (disk full, I/O error, a
killed worker, HTTP give-ups) is one line naming the path or URL and exit 1 (retry: the rerun
resumes). Numeric options are range-checked at parse time with :func:`number`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import sys
from collections.abc import Callable

from astrollama.errors import EnvironmentFault, InputError, describe_os_error, is_environment_error, one_line

MODULES = (
    "astrollama.data.manifest",   # manifest summary/export/failures/compact
    "astrollama.data.harvest",    # harvest oai/kaggle/lookup
    "astrollama.data.download",   # download
    "astrollama.data.ocr",        # ocr
    "astrollama.data.aic",        # aic
    "astrollama.data.quality",    # quality (AIC text: raw macros, dangling citations, control chars)
    "astrollama.data.summarize",  # summarize
    "astrollama.data.build",      # build
    "astrollama.data.bench",      # bench (throughput of the CPU corpus stages)
    "astrollama.data.demo",       # demo-prep (the offline demo data chain)
)

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is an :class:`InputError` (one line, exit 2), not usage + exit."""

    def error(self, message: str):  # type: ignore[override]
        command = self.prog.removeprefix("astrollama data").strip()  # "astrollama data: error: " comes first
        raise InputError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def number(kind: type = float, *, min: float | None = None, gt: float | None = None,  # noqa: A002
           max: float | None = None) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in a range: ``number(int, min=1)``, ``number(gt=0)``."""
    what = "an integer" if kind is int else "a number"
    bounds = [f">= {min:g}" if min is not None else "", f"> {gt:g}" if gt is not None else "",
              f"<= {max:g}" if max is not None else ""]
    want = " and ".join(b for b in bounds if b)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not math.isfinite(value) or (min is not None and value < min) or (gt is not None and value <= gt) \
                or (max is not None and value > max):
            raise argparse.ArgumentTypeError(f"must be {what} {want}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="astrollama data", description="arXiv astro-ph data preparation (see docs/data-*.md).")
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
    """Run one sub-command; returns its exit code.

    Raises :class:`InputError` for bad input (exit 2 in ``astrollama.cli.main``) and an
    environment ``OSError`` or :class:`EnvironmentFault` for a failing machine or server (exit 1).
    Other ``OSError`` (a path from the command line that does not exist, is a directory, is not
    readable) are input errors; anything else is a bug and keeps its traceback.
    """
    from astrollama.data.harvest import HarvestError
    from astrollama.data.http import HttpError
    from astrollama.data.stages import StageAbort

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, EnvironmentFault):
        raise
    except OSError as exc:
        if is_environment_error(exc):
            raise
        raise InputError(describe_os_error(exc)) from exc
    except (HarvestError, HttpError, StageAbort) as exc:  # the server, not the input: retry later
        raise EnvironmentFault(one_line(exc)) from exc


if __name__ == "__main__":
    from astrollama.cli import main as _main

    raise SystemExit(_main(["data", *sys.argv[1:]]))
