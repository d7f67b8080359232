"""``astrollama eval <command>``: the evaluation sub-commands.

Each command lives in its own module, named in ``COMMANDS``. A command module provides

    def register(subparsers) -> None
        add its parser with ``subparsers.add_parser(NAME, ...)`` and
        ``parser.set_defaults(func=run)``, where ``run(args: argparse.Namespace) -> int``.

Adding a command is one line in ``COMMANDS``. Modules are imported when the parser is built, so a
command module must import heavy libraries (torch, transformers) inside ``run``, not at the top.
Bad input raises ``astrollama.evaluation.common.EvalInputError`` (an ``astrollama.errors.InputError``);
``astrollama.cli.main`` prints it as one line ``astrollama eval: error: <file>: <field>: <problem>``
and exits 2, the one policy of every command group.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
    """Run one command; InputError propagates to ``astrollama.cli.main`` (one line, exit 2)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    from astrollama.cli import main as astrollama_main

    raise SystemExit(astrollama_main(["eval", *sys.argv[1:]]))
