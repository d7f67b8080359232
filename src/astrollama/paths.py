"""Where the repository is (:data:`REPO_ROOT` and its folders), and paths mean what the user typed: relative paths on a command line resolve against the caller's
directory, even when a wrapper script changes directory first.

The wrapper scripts (``data_prep/*.sh``, ``eval/*.sh``, ``slurm/*.sh``, ``scripts/demo.sh``) change
into the repository root so that the repository-relative paths in its config files
(``data_prep/astro-ph.yaml``: ``root: work/data``) and recipes keep their meaning. Before that
they export :data:`CALLER_ENV` (the directory they were started from; under ``sbatch`` the submit
directory). :func:`from_caller`, run by ``astrollama.cli.main`` on the command line before
anything else, then makes each relative path the user typed absolute against that directory:

* the value of an output option (:data:`PATH_DESTS`: ``--out``, ``--root``, ``--run-dir``, ...),
  in either form (``--out X``, ``--out=X``), whether it exists or not (an output usually does not);
* any other value or word that names an existing file or directory relative to the caller (an
  input: ``--config``, ``--questions``, every value of ``--results A B``, the PATH of
  ``--input FORMAT=PATH``, a positional recipe, ``--model ckpt`` when ``ckpt`` is there). An input
  that is not there is left as typed, so the repository's own files can still be named the way
  the README shows (``CONFIG=eval/demo.yaml``); a Hugging Face id or a plain value is left alone;
* the value of a path key in a recipe override (``output_dir=runs/x``, ``launch.run_dir=...``).

Without :data:`CALLER_ENV` (``astrollama`` run directly) nothing changes: the process's own
directory is already the caller's.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

CALLER_ENV = "ASTROLLAMA_CALLER_CWD"

# The repository this package runs from (an editable install of the checkout) and its design
# folders: the one place that knows where they are.
REPO_ROOT = Path(__file__).resolve().parents[2]  # <repo>/src/astrollama/paths.py
RECIPES_DIR = REPO_ROOT / "recipes"
DATA_PREP_DIR = REPO_ROOT / "data_prep"
DATA_PREP_PROMPTS_DIR = DATA_PREP_DIR / "prompts"
EVAL_DIR = REPO_ROOT / "eval"
EVAL_PROMPTS_DIR = EVAL_DIR / "prompts"

# option destinations whose value is an OUTPUT path: made absolute against the caller whether it
# exists or not (an output usually does not exist yet)
PATH_DESTS = frozenset({"out", "root", "run_dir", "dest", "workdir", "json", "public", "key"})
# recipe override keys (last dotted component) whose value is a path
OVERRIDE_PATH_KEYS = frozenset({"output_dir", "run_dir", "dataset_path", "eval_dataset_path", "deepspeed"})


def caller_dir() -> Path | None:
    """The caller's directory named by :data:`CALLER_ENV`, when it differs from the current one."""
    where = os.environ.get(CALLER_ENV)
    if not where or not os.path.isabs(where):
        return None
    try:
        if Path(where).resolve() == Path.cwd().resolve():
            return None
    except OSError:
        return None
    return Path(where)


def _absolute(value: str, base: Path, *, always: bool) -> str:
    if not value or value.startswith("-") or os.path.isabs(value) or "://" in value:
        return value
    candidate = base / value
    if always or candidate.exists():
        return str(candidate)
    return value


def _option_actions(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[dict[str, argparse.Action], set[int]]:
    """The option-string -> action map of the (sub)command ``argv`` selects (group options
    included), and the positions of the command words in ``argv``."""
    actions = dict(parser._option_string_actions)
    commands: set[int] = set()
    current = parser
    for i, token in enumerate(argv):
        sub = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or token not in sub.choices:
            if token.startswith("-"):
                continue
            break
        current = sub.choices[token]
        commands.add(i)
        actions.update(current._option_string_actions)
    return actions, commands


def _convert_value(dest: str, value: str, base: Path) -> str:
    if dest == "input" and "=" in value:  # --input FORMAT=PATH
        fmt, _, path = value.partition("=")
        return f"{fmt}={_absolute(path, base, always=False)}"
    return _absolute(value, base, always=dest in PATH_DESTS)


def from_caller(argv: Sequence[str], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """``argv`` with the user's relative paths made absolute against the caller's directory."""
    base = caller_dir()
    argv = list(argv)
    if base is None:
        return argv
    actions, commands = _option_actions(parser, argv) if parser is not None else ({}, set())
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if i in commands:
            out.append(token)
        elif token.startswith("--") and "=" in token:
            flag, _, value = token.partition("=")
            action = actions.get(flag)
            out.append(f"{flag}={_convert_value(action.dest, value, base)}" if action else token)
        elif token.startswith("--") and token not in actions and token[2:].replace("-", "_") in PATH_DESTS:
            out.append(token)  # a command without a parser here (demo): its path options by name
            if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                i += 1
                out.append(_absolute(argv[i], base, always=True))
        elif token.startswith("-") and token in actions:
            action = actions[token]
            out.append(token)
            if action.nargs == 0:
                pass
            elif action.nargs in ("+", "*"):
                while i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                    i += 1
                    out.append(_convert_value(action.dest, argv[i], base))
            elif i + 1 < len(argv):
                i += 1
                out.append(_convert_value(action.dest, argv[i], base))
        elif not token.startswith("-") and "=" in token and not os.path.exists(base / token):
            key, _, value = token.partition("=")  # a recipe override key=value
            if value in ("null", "~", "None", "none"):
                out.append(token)
            elif key.rsplit(".", 1)[-1] in OVERRIDE_PATH_KEYS or key.endswith(".path"):
                out.append(f"{key}={_absolute(value, base, always=True)}")
            else:
                out.append(f"{key}={_absolute(value, base, always=False)}")
        else:
            out.append(_absolute(token, base, always=False))
        i += 1
    return out
