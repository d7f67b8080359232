"""``astrollama eval <command>``: the evaluation sub-commands.

Each command lives in its own module, named in ``COMMANDS``. A command module provides

    def register(subparsers) -> None
        add its parser with ``subparsers.add_parser(NAME, ...)`` and
        ``parser.set_defaults(func=run)``, where ``run(args: argparse.Namespace) -> int``.

Adding a command is one line in ``COMMANDS``. Modules are imported when the parser is built, so a
command module must import heavy libraries (torch, transformers) inside ``run``, not at the top.
Bad input raises ``astrollama.evaluation.common.EvalInputError``: it is printed as one line on
stderr and the exit code is 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from astrollama.evaluation.common import EvalInputError

# command name -> module providing register(subparsers)
COMMANDS: dict[str, str] = {
    "mcq": "astrollama.evaluation.mcq_cli",
    "ppl": "astrollama.evaluation.perplexity",
    "embed": "astrollama.evaluation.embeddings",
    "complete": "astrollama.evaluation.completion",
    "sweep": "astrollama.evaluation.sweep",
    "model": "astrollama.evaluation.suite",
    "report": "astrollama.evaluation.report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="astrollama eval", description="Evaluate checkpoints: astronomy MCQ benchmark and more."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EvalInputError as e:
        print(f"astrollama eval {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
