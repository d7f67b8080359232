"""The command walk shared by tests/hostile/test_cli_walk.py and its subprocess driver.

:func:`cases` enumerates every leaf command of ``astrollama`` (:func:`astrollama.cli.command_parsers`)
and, for each, the arguments that name a file or directory the command reads. An argument counts
as an input unless it is listed below as an output or as a plain value, so a new command, or a
new argument, is walked as soon as it is registered (and a new non-file argument must be listed
here, which is a one-line, reviewed change).

:func:`argv_for` builds a command line where EVERY input argument names the same bad path (so
whichever the command reads first, it reads something hostile), outputs name fresh paths under
a scratch directory, and required plain values get harmless ones.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# Arguments that are outputs (a fresh path is given), by destination name; per command where the
# same name is an input elsewhere (``eval mcq --key`` reads, ``eval mcq-split --key`` writes).
OUTPUTS = {"out", "workdir", "dest", "json"}
OUTPUTS_BY_COMMAND = {("eval", "mcq-split"): {"public", "key"}, ("eval", "models"): {"embed_out"}}

# Plain values (not paths) and the value given when the argument is required (None: left out).
VALUES: dict[str, str | None] = {
    "label": "model-a",
    "recipe": None,  # eval report --recipe / eval model --recipe: a recipe name, not a file
    "paper_model": None,
    "stage": "ocr",  # data manifest failures --stage; eval model --stage
    "model_id": None,
    "base_url": "http://127.0.0.1:9/",  # never the network: a closed local port
    "api_url": "http://127.0.0.1:9/",
    "set_spec": None,
    "from_date": None,
    "until_date": None,
    "query": None,
    "ids": None,
    "source": None,
    "device": None,
    "dtype": None,
    "variants": None,
    "shard": None,
    "workers": None,
    "nougat_bin": None,
    "overrides": None,
    "prompt_text": None,
}
# A name that is a file for one command and a value for another
VALUES_BY_COMMAND: dict[tuple[str, ...], dict[str, str | None]] = {
    ("eval", "complete"): {"prompt": None},  # the prompt text itself (--prompt-file is the file)
    ("train", "plan"): {"recipe": "INPUT"},
    ("train", "launch"): {"recipe": "INPUT"},
    ("train", "run"): {"recipe": "INPUT"},
    ("merge",): {"recipe": "INPUT"},
    ("eval", "models"): {"embed_device": None},  # a device name, like --device
}
# Optional values a command needs to get as far as reading its inputs
EXTRA_ARGS: dict[tuple[str, ...], list[str]] = {("data", "harvest", "lookup"): ["--query", "galaxy"]}
# The value a typed input argument takes around the path (``--input FORMAT=PATH``)
WRAP = {"input": "openorca={}"}

# Commands with no input file to walk (their inputs are the repository's own files)
NO_INPUTS = {("demo",), ("data", "nougat-random"), ("models", "smollm2"), ("models", "tiny")}


def _is_path_like(action: argparse.Action) -> bool:
    if action.nargs == 0 or action.choices is not None or isinstance(action, argparse._HelpAction):
        return False
    t = action.type
    return t is None or t is str or getattr(t, "__name__", "") in {"Path", "_input"}


def inputs_of(words: tuple[str, ...], parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The actions of ``parser`` that name a file or directory the command reads."""
    outs = OUTPUTS | OUTPUTS_BY_COMMAND.get(words, set())
    values = {**VALUES, **VALUES_BY_COMMAND.get(words, {})}
    found = []
    for a in parser._actions:
        if not _is_path_like(a) or a.dest in outs:
            continue
        if a.dest in values and values[a.dest] != "INPUT":
            continue
        found.append(a)
    return found


def cases() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    from astrollama.cli import command_parsers

    return [(w, p) for w, p in sorted(command_parsers().items()) if w not in NO_INPUTS]


def argv_for(words: tuple[str, ...], parser: argparse.ArgumentParser, bad: Path, scratch: Path) -> list[str]:
    """``astrollama <words> ...`` with every input naming ``bad`` (see the module doc)."""
    outs = OUTPUTS | OUTPUTS_BY_COMMAND.get(words, set())
    values = {**VALUES, **VALUES_BY_COMMAND.get(words, {})}
    inputs = {a.dest for a in inputs_of(words, parser)}
    argv: list[str] = [*words, *EXTRA_ARGS.get(words, [])]
    positional: list[str] = []
    for k, a in enumerate(parser._actions):
        if a.dest == "dry_run" and a.nargs == 0:  # read the inputs, start nothing
            argv.append(a.option_strings[-1])
            continue
        if isinstance(a, argparse._HelpAction) or a.nargs == 0:
            continue
        if a.dest in inputs:
            value: str | None = WRAP.get(a.dest, "{}").format(bad)
        elif a.dest in outs:
            value = str(scratch / f"out-{k}") if a.required or not a.option_strings else None
        elif a.required and a.choices is not None:
            value = str(next(iter(a.choices)))
        elif a.required and a.dest in values:
            value = values[a.dest]
        elif a.dest in values and values[a.dest] is not None and a.dest.endswith("url"):
            value = values[a.dest]  # never the network, even where optional
        else:
            value = None
        if value is None:
            continue
        if a.option_strings:
            argv += [
                a.option_strings[-1] if a.option_strings[-1].startswith("--") else a.option_strings[0],
                value,
            ]
        else:
            positional.append(value)
    return argv + positional


# --------------------------------------------------------------------------- the bad inputs

BAD_KINDS = ("missing", "directory", "fifo", "empty", "not-utf8", "huge", "dev-zero")
# A sparse file bigger than every per-kind cap of astrollama.untrusted.LIMITS (no disk used).
HUGE_BYTES = 2 * 2**40


def make_bad(kind: str, where: Path, suffix: str = "") -> Path:
    """One bad input of ``kind`` at ``where/bad-<kind><suffix>``."""
    where.mkdir(parents=True, exist_ok=True)
    p = where / f"bad-{kind}{suffix}"
    if kind == "missing":
        pass
    elif kind == "directory":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "not-utf8":
        p.write_bytes(b"\xff\xfe\x00garbage \xc3\x28 \n")
    elif kind == "huge":
        with open(p, "wb") as fh:
            fh.truncate(HUGE_BYTES)
    elif kind == "dev-zero":
        p.symlink_to("/dev/zero")
    else:
        raise ValueError(kind)
    return p


def suffix_for(words: tuple[str, ...], parser: argparse.ArgumentParser) -> str:
    """A file suffix that sends the command down its usual reader (JSONL question files, YAML
    recipes): chosen from the first input argument's name."""
    names = [a.dest for a in inputs_of(words, parser)]
    first = names[0] if names else ""
    if first in {"recipe", "targets", "config", "prompt"}:
        return ".yaml"
    if first in {"papers", "paths", "snapshot"}:
        return ".json"
    if first in {"ids_file", "template", "prompt_file"}:
        return ".txt"
    if first == "file":
        return ".mmd"
    if first in {"questions", "keyed", "key", "mcq", "data", "heldout", "input"}:
        return ".jsonl"
    return ""


# --------------------------------------------------------------------------------- running


class Hang(BaseException):  # not an Exception: no handler of the command may swallow it
    pass


def run_case(
    words: tuple[str, ...], parser: argparse.ArgumentParser, kind: str, scratch: Path, limit_s: float
):
    """Run one command with one bad input in-process; ``(outcome, argv, bad path, seconds, rss
    growth in bytes)``. A run longer than ``limit_s`` is stopped with :class:`Hang`."""
    import resource
    import signal
    import time

    from tests.hostile.conftest import Outcome, _run

    scratch.mkdir(parents=True, exist_ok=True)
    bad = make_bad(kind, scratch / "in", suffix_for(words, parser))
    argv = argv_for(words, parser, bad, scratch)

    def alarm(signum, frame):
        raise Hang(f"{' '.join(argv)}: still running after {limit_s:.0f} s")

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    t0 = time.perf_counter()
    try:
        out = _run(argv, cwd=scratch)
    except Hang as e:
        out = Outcome(-1, "", f"HANG: {e}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    return out, argv, bad, time.perf_counter() - t0, grew


def problems(words: tuple[str, ...], out, argv: list[str], bad: Path) -> list[str]:
    """What is wrong with a refusal: not exit 2, a traceback, not one error line naming the input."""
    shown = f"`astrollama {' '.join(argv[0:])}` -> exit {out.code}: {out.stderr.strip()[-600:]!r}"
    found = []
    if "Traceback" in out.stderr or "Traceback" in out.stdout:
        found.append(f"traceback: {shown}")
    if out.code != 2:
        found.append(f"exit {out.code}, not 2: {shown}")
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error: " in ln]
    if len(errors) != 1 or not lines or lines[-1] != errors[0]:
        found.append(f"not exactly one error line, last: {shown}")
    elif not errors[0].startswith(f"astrollama {words[0]}: error: "):
        found.append(f"error line not in the one form: {shown}")
    elif bad.name not in errors[0]:
        found.append(f"the error does not name the bad input {bad.name}: {shown}")
    return found


def main() -> None:
    """Subprocess driver: ``python -m tests.hostile.walk KIND SCRATCH LIMIT_S``; caps its own
    address space, walks every command with one kind of bad input, prints one JSON line a case."""
    import json
    import resource
    import sys

    import pandas  # noqa: F401 - the heavy imports first, so the cap below is for the command
    import torch  # noqa: F401
    import transformers  # noqa: F401

    kind, scratch, limit_s = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    status = Path("/proc/self/status").read_text().splitlines()
    vm = next(int(ln.split()[1]) * 1024 for ln in status if ln.startswith("VmSize"))
    cap = vm + 6 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    for i, (words, parser) in enumerate(cases()):
        out, argv, bad, secs, grew = run_case(words, parser, kind, scratch / str(i), limit_s)
        print(
            json.dumps(
                {
                    "words": words,
                    "problems": problems(words, out, argv, bad),
                    "seconds": round(secs, 2),
                    "rss_growth": grew,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
