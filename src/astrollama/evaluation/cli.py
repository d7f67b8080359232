"""``astrollama eval <command>``: the evaluation sub-commands.

Each module in :data:`MODULES` exposes ``register(subparsers)`` (the one pattern of every group,
:func:`astrollama.cli_args.build_group`): it adds its parser with ``subparsers.add_parser(NAME, ...)``
and ``parser.set_defaults(func=run)``, where ``run(args: argparse.Namespace) -> int``; heavy
libraries (torch, transformers) are imported inside ``run``. Bad input raises
``astrollama.evaluation.common.EvalInputError`` (an ``astrollama.errors.InputError``);
``astrollama.cli.main`` prints it as one line ``astrollama eval: error: <file>: <field>: <problem>``
and exits 2, the one policy of every command group.
"""

from __future__ import annotations

import sys

from astrollama.cli_args import build_group, run_group

MODULES = (
    "astrollama.evaluation.mcq.cli",  # mcq
    "astrollama.evaluation.perplexity",  # ppl
    "astrollama.evaluation.embeddings",  # embed
    "astrollama.evaluation.completion",  # complete
    "astrollama.evaluation.sweep",  # sweep
    "astrollama.evaluation.suite",  # model
    "astrollama.evaluation.pool",  # models: model + embed of several checkpoints, each loaded once
    "astrollama.evaluation.report",  # report
)


def build_parser():
    from astrollama.evaluation.config import add_config_option

    parser = build_group(
        "astrollama eval", "Evaluate checkpoints: astronomy MCQ benchmark and more.", MODULES
    )
    add_config_option(parser)  # --config eval/<name>.yaml (astrollama.evaluation.config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; InputError propagates to ``astrollama.cli.main`` (one line, exit 2)."""
    from astrollama.evaluation.config import apply_config

    parser = build_parser()
    return run_group(parser, apply_config(parser, list(sys.argv[1:] if argv is None else argv)))
