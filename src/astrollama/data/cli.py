"""``astrollama data ...``: every data-prep stage registers its own sub-command.

Each module in :data:`MODULES` exposes ``register(subparsers)`` (the one pattern of every group,
:func:`astrollama.cli_args.build_group`): it adds its parser(s) and sets ``func`` (a callable
``(argparse.Namespace) -> int``) with ``set_defaults``. Modules import heavy dependencies (torch,
transformers, vLLM) inside their functions so that ``astrollama data --help`` stays fast.

Errors follow the one policy of :mod:`astrollama.errors` (printed by ``astrollama.cli.main``):
bad input (a bad option value, a missing or malformed file, no manifest) is one line
``<file>: <field>: <problem>`` and exit 2; a failing machine or server (disk full, I/O error, a
killed worker, HTTP give-ups) is one line naming the path or URL and exit 1 (retry: the rerun
resumes). Numeric options are range-checked at parse time with :func:`astrollama.cli_args.number`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from astrollama.cli_args import build_group, run_group
from astrollama.errors import EnvironmentFault, InputError

MODULES = (
    "astrollama.data.manifest_cli",  # manifest summary/export/failures/compact
    "astrollama.data.harvest",  # harvest oai/kaggle/lookup
    "astrollama.data.download",  # download
    "astrollama.data.ocr",  # ocr
    "astrollama.data.aic",  # aic
    "astrollama.data.quality",  # quality (AIC text: raw macros, dangling citations, control chars)
    "astrollama.data.summarize",  # summarize
    "astrollama.data.qa",  # qa (astro question/answer conversations from AIC or summaries)
    "astrollama.data.sft_convert",  # sft-convert (LIMA/OpenOrca/UltraChat/qa -> LMFlow conversation shards)
    "astrollama.data.build",  # build
    "astrollama.data.demo_sft",  # demo-sft (the toy demo's SFT conversations)
)


def build_parser(extra: Sequence[str] = ()):
    """The parser of ``astrollama data``: :data:`MODULES` and ``extra`` command modules (the roof adds
    ``run`` and the tools' commands users type: :data:`astrollama.commands.GROUP_EXTRAS`)."""
    from astrollama.data.config import add_config_option

    parser = build_group(
        "astrollama data", "arXiv astro-ph data preparation (see docs/data-*.md).", (*MODULES, *extra)
    )
    add_config_option(parser)  # --config data_prep/<name>.yaml (astrollama.data.config)
    return parser


def main(argv: list[str] | None = None, extra: Sequence[str] = ()) -> int:
    """Run one sub-command; returns its exit code.

    Bad input raises :class:`InputError` (exit 2 in ``astrollama.cli.main``); a failing machine or
    server (an environment ``OSError``, :class:`EnvironmentFault`, and the harvest/HTTP/stage give-ups
    below) exits 1.
    """
    from astrollama.data.config import apply_config
    from astrollama.data.harvest_rows import HarvestError
    from astrollama.data.http import HttpError
    from astrollama.data.runner import StageAbort

    try:
        parser = build_parser(extra)
        return run_group(parser, apply_config(parser, list(sys.argv[1:] if argv is None else argv)))
    except InputError:  # HarvestInputError is both
        raise
    except (HarvestError, HttpError, StageAbort) as exc:  # the server, not the input: retry later
        raise EnvironmentFault(str(exc)) from exc
