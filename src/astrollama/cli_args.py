"""The argparse helpers every command module uses: the parser class whose errors are one line,
typed numeric options, the shared bounds, and the build/run of one command group.

The registration pattern (one for every group: train, data, eval): the group lists the modules that
implement its commands; each module exposes ``register(subparsers)``, which adds its parser(s)
with ``subparsers.add_parser(NAME, ...)`` and ``set_defaults(func=run)`` where
``run(args: argparse.Namespace) -> int``. Command modules import heavy libraries (torch,
transformers, vLLM) inside ``run`` so that ``--help`` stays fast. Adding a command is one line
in the group's MODULES. The exit policy (bad input -> one line, exit 2; a failing machine or server
-> one line, exit 1) is applied once, by ``astrollama.cli.main``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from astrollama.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INPUT,
    EnvironmentFault,
    InputError,
    describe_os_error,
    is_environment_error,
    one_line,
)


class CommandParser(argparse.ArgumentParser):
    """argparse, but a bad command line is an :class:`InputError` (one line, exit 2), not usage + exit."""

    def error(self, message: str):  # type: ignore[override]
        command = " ".join(self.prog.split()[2:])  # "astrollama <group>: error: " comes first
        raise InputError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def number(
    kind: type = float,
    *,
    min: float | None = None,
    gt: float | None = None,  # noqa: A002
    max: float | None = None,
    cap: float | None = None,
) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in a range: ``number(int, min=1)``, ``number(gt=0)``.

    ``cap`` is a sanity ceiling (a seed numpy accepts, a length no model has), named in the
    message only when it is exceeded; ``max`` is part of the option's meaning (``top_p <= 1``)."""
    what = "an integer" if kind is int else "a number"

    def show(v: float) -> str:
        return str(int(v)) if kind is int else f"{v:g}"

    bounds = [
        f">= {show(min)}" if min is not None else "",
        f"> {show(gt)}" if gt is not None else "",
        f"<= {show(max)}" if max is not None else "",
    ]
    want = " and ".join(b for b in bounds if b)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if (
            not math.isfinite(value)
            or (min is not None and value < min)
            or (gt is not None and value <= gt)
            or (max is not None and value > max)
        ):
            raise argparse.ArgumentTypeError(f"must be {what} {want}, got {text!r}")
        if cap is not None and value > cap:
            raise argparse.ArgumentTypeError(f"must be {what} <= {show(cap)}, got {text!r}")
        return value

    return parse


# Bounds shared by every command (our choices): a seed numpy and torch both accept; a resample
# count whose interval is stable to 0.1 point long before the cap, at 8 bytes a resample; a token
# length above any released model's context (2**20 = 1,048,576).
MAX_SEED = 2**32 - 1
MAX_RESAMPLES = 1_000_000
MAX_TOKENS = 2**20
MAX_BATCH = 65_536


def seed_arg() -> Callable[[str], float]:
    """``--seed``: an integer in [0, 2**32 - 1]."""
    return number(int, min=0, cap=MAX_SEED)


def build_group(prog: str, description: str, modules: Iterable[str]) -> argparse.ArgumentParser:
    """The parser of one command group: every module in ``modules`` registers its commands."""
    parser = CommandParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def run_group(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run the chosen command's ``func``; errors propagate to :func:`main`."""
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def is_number_type(tp: Any) -> bool:
    """True for an argparse ``type`` made by :func:`number`."""
    return getattr(tp, "__qualname__", "").startswith("number.")


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser`` by name (empty when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def guarded(group: str, run: Callable[[], int]) -> int:
    """The one exit policy of every command: ``run()``'s exit code, or one line on stderr and
    exit 2 for bad input (:class:`InputError`, a path from the command line that is missing), exit 1
    for a failing machine or server; a defect is one line too (the traceback with
    ``ASTROLLAMA_DEBUG=1``). Applied by ``astrollama.cli.main`` and by an in-process stage runner."""
    try:
        return run()
    except InputError as exc:  # one policy for every group (astrollama.errors)
        if os.environ.get("ASTROLLAMA_DEBUG"):
            raise
        print(f"astrollama {group}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except (OSError, EnvironmentFault) as exc:
        if os.environ.get("ASTROLLAMA_DEBUG"):
            raise
        # requests' and urllib3's errors are OSErrors: the server or the network, not the input
        network = any(c.__module__.split(".")[0] in {"requests", "urllib3"} for c in type(exc).__mro__)
        if isinstance(exc, OSError) and not is_environment_error(exc) and not network:
            # a path from the command line that does not exist, is a directory, is not readable
            print(f"astrollama {group}: error: {describe_os_error(exc)}", file=sys.stderr)
            return EXIT_INPUT
        what = describe_os_error(exc) if isinstance(exc, OSError) else one_line(exc)
        print(f"astrollama {group}: error: {what} (retry once fixed)", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except MemoryError:
        print(f"astrollama {group}: error: out of memory (retry on a larger machine)", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except Exception as exc:  # a defect, not the user's input: one line; the traceback on request
        if os.environ.get("ASTROLLAMA_DEBUG"):
            raise
        print(
            f"astrollama {group}: error: internal error ({type(exc).__name__}: {one_line(exc)[:300]}); "
            "rerun with ASTROLLAMA_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_ENVIRONMENT
