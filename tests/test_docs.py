"""Docs that cannot go stale: every command README.md and docs/*.md show runs here or is marked, and
every repository path they name exists.

The convention (docs/reproduce.md, "Commands in these docs"), for fenced ``bash``/``sh``/``shell``/
``console`` blocks (continuation lines and here-documents belong to their command):

* a command that is cheap runs here, as written, from the repository root, and must exit 0: any
  command with ``--help`` or ``--dry-run``, ``astrollama train validate``, ``astrollama train plan``;
* ``cluster-only``: in the block's info string (```` ```bash cluster-only ````) or in the line's
  comment (``# cluster-only``): needs a GPU, Slurm, network or data this machine does not have;
* ``run-by: FILE``: in the line's comment (or ``run-by=FILE`` in the info string): the test (or CI
  entry point: ``.ci/run``, ``scripts/test.sh``) that runs it; FILE must exist and name the
  command's program (its script, or its ``astrollama`` sub-command);
* ``synopsis`` in the info string: a usage pattern, every command of which has a placeholder
  (an upper-case word such as ``DATA`` or ``MODEL_DIR``, or ``...``), so none can be run as written;
* ``VAR=value`` / ``export VAR=value`` lines only set the environment.

Anything else fails this test with its file and line, so a renamed path or flag fails CI. New docs
(and new pages) are picked up by the glob.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
TOP_DIRS = (
    "recipes",
    "slurm",
    "scripts",
    "data_prep",
    "eval",
    "docs",
    "src",
    "tests",
    "ds_configs",
    "envs",
    "data",
)
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9_]{1,}\b|\.\.\.")


@dataclass
class Command:
    doc: Path
    line: int
    text: str  # continuation lines joined (backslash-newline kept out), here-document included
    comment: str  # the trailing comment of its first line
    info: set[str]

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one shell line: the first ``#`` outside quotes that starts a word."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def commands(doc: Path) -> list[Command]:
    out: list[Command] = []
    lines = doc.read_text(encoding="utf-8").split("\n")
    i, info = 0, None
    while i < len(lines):
        fence = re.match(r"^\s*```(.*)$", lines[i])
        if fence:
            if info is None:
                words = fence.group(1).split()
                info = set(words) if words else {""}
            else:
                info = None
            i += 1
            continue
        if info is None or not info & SHELL_LANGS:
            i += 1
            continue
        code, comment = _split_comment(lines[i])
        start = i
        if not code.strip():
            i += 1
            continue
        parts = [code]
        while parts[-1].endswith("\\") and i + 1 < len(lines):  # continuation
            parts[-1] = parts[-1][:-1]
            i += 1
            more, c2 = _split_comment(lines[i])
            parts.append(more)
            comment = comment or c2
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", code)
        if heredoc:  # the body, up to the terminator, belongs to the command
            end = heredoc.group(1)
            while i + 1 < len(lines) and lines[i + 1].strip() != end:
                i += 1
                parts.append(lines[i])
            i += 1
            parts.append(end)
        out.append(Command(doc, start + 1, "\n".join(p.strip() for p in parts), comment, info))
        i += 1
    return out


ALL = [c for d in DOCS for c in commands(d)]
ENV_ONLY = re.compile(r"^(export\s+)?[A-Z_][A-Z0-9_]*=\S*$")


def _run_by(c: Command) -> str | None:
    m = re.search(r"run-by[:=]\s*([\w./-]+)", c.comment) or next(
        (re.match(r"run-by=([\w./-]+)", w) for w in c.info if w.startswith("run-by=")), None
    )
    return m.group(1).rstrip(".,;)") if m else None


def _program(text: str) -> str:
    """What a test must name to run the command: its script path, or ``astrollama <group> <sub>``."""
    try:
        words = shlex.split(text.split("\n")[0], posix=True)
    except ValueError:  # a quote closed on a later line (python -c "...")
        words = text.split("\n")[0].split()
    words = [w for w in words if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
    if "-c" in words and (calls := re.findall(r"(\w+)\(", text)):
        return calls[0]  # python -c "...": the function it runs
    for w in words:
        if re.match(r"^(\./)?(" + "|".join(TOP_DIRS) + r")/\S+\.(sh|py)$", w):
            return w.removeprefix("./")
    if "astrollama" in words:
        k = words.index("astrollama")
        sub = [w for w in words[k + 1 : k + 3] if not re.search(r"[/=]|^-", w)]
        return " ".join(sub)
    return words[0] if words else ""


def _cheap(text: str) -> bool:
    return (
        " --help" in text
        or " --dry-run" in text
        or bool(re.match(r"^astrollama train (validate|plan) ", text))
    )


def classify(c: Command) -> str:
    """ "env" | "cluster-only" | "run-by" | "synopsis" | "cheap" | "unmarked: <why>"."""
    first = c.text.split("\n")[0]
    if ENV_ONLY.match(first.strip()):
        return "env"
    if "cluster-only" in c.info or "cluster-only" in c.comment:
        return "cluster-only"
    if _run_by(c):
        return "run-by"
    if "synopsis" in c.info:
        return (
            "synopsis" if PLACEHOLDER.search(c.text) else "unmarked: a synopsis command without a placeholder"
        )
    if _cheap(c.text):
        return "cheap"
    return "unmarked: neither cheap (--help, --dry-run, train validate/plan) nor cluster-only nor run-by"


def test_every_doc_command_is_run_or_marked() -> None:
    assert ALL, "no commands found in README.md and docs/*.md"
    bad = [
        f"{c.where}: {c.text.splitlines()[0][:100]}  <- {k}"
        for c in ALL
        if (k := classify(c)).startswith("unmarked")
    ]
    assert not bad, "\n".join(bad)


def test_run_by_names_a_test_that_runs_the_command() -> None:
    bad = []
    for c in ALL:
        if classify(c) != "run-by":
            continue
        test = REPO / _run_by(c)
        prog = _program(c.text)
        if not test.is_file():
            bad.append(f"{c.where}: {test.relative_to(REPO)} does not exist")
        elif prog and not any(
            w in test.read_text(encoding="utf-8")
            for w in (prog, Path(prog).name, Path(prog).stem, prog.split()[-1])
        ):
            bad.append(f"{c.where}: {test.relative_to(REPO)} never names {prog!r}")
    assert not bad, "\n".join(bad)


CHEAP = [c for c in ALL if classify(c) == "cheap"]


@pytest.mark.parametrize("c", CHEAP, ids=[c.where for c in CHEAP])
def test_cheap_doc_command_runs_as_written(c: Command, tmp_path: Path) -> None:
    """The command, as the doc shows it, from the repository root: exit 0. ``astrollama`` is this
    checkout's CLI; no network (HF offline), no GPU."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "astrollama"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m astrollama "$@"\n')
    shim.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ASTROLLAMA_VENV"))},
        "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "src"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "USER": os.environ.get("USER", "user"),
    }
    r = subprocess.run(
        ["bash", "-c", "set -e\n" + c.text],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"{c.where}: {c.text}\n--- stderr ---\n{r.stderr[-3000:]}"


PATH_RE = re.compile(r"(?<![\w./:-])((?:" + "|".join(TOP_DIRS) + r")/[\w.+-][\w./+-]*)")


def _doc_paths(doc: Path) -> list[tuple[int, str]]:
    """Repository paths a doc shows in code (blocks and `spans`), without placeholders: files
    (with an extension) and directories (a trailing ``/``), from the repository root or, for the
    module tables, from ``src/astrollama/``."""
    out = []
    in_block = False
    for n, line in enumerate(doc.read_text(encoding="utf-8").split("\n"), 1):
        if re.match(r"^\s*```", line):
            in_block = not in_block
            continue
        spans = [line] if in_block else re.findall(r"`([^`]+)`", line)
        for span in spans:
            for m in PATH_RE.finditer(span):
                p = m.group(1).rstrip(".,:;)")
                if re.search(r"[<>*{}$]|NNN|\.\.\.|XXX", p) or re.search(r"/[A-Z][A-Z_]+(/|$)", p):
                    continue  # a pattern or a placeholder, not a path
                if p.endswith("/") or re.search(r"\.(py|sh|ya?ml|json|jsonl|md|txt|parquet|csv|toml)$", p):
                    out.append((n, p))  # a file or a directory (a bare `data/astro` may be a user's root)
    return out


def test_every_repository_path_in_the_docs_exists() -> None:
    bad = [
        f"{doc.relative_to(REPO)}:{n}: {p}"
        for doc in DOCS
        for n, p in _doc_paths(doc)
        if not any((base / p).exists() for base in (REPO, REPO / "src" / "astrollama"))
    ]
    assert not bad, "paths named in the docs that do not exist:\n" + "\n".join(bad)


def test_the_convention_catches_what_it_should(tmp_path: Path) -> None:
    """The classifier itself: an unmarked command fails, each marker passes, a synopsis needs a
    placeholder, continuation lines and here-documents stay with their command."""
    doc = tmp_path / "x.md"
    doc.write_text(
        "```bash\n"
        "astrollama data build --root work/data \\\n    --out work/corpora\n"
        "sbatch slurm/cpt.sh recipes/x.yaml   # cluster-only: 8 GPUs\n"
        "bash scripts/test.sh   # run-by: .ci/run\n"
        "astrollama train launch recipes/demo-smollm2-135m.yaml --dry-run\n"
        "python - <<'EOF'\nprint(1)\nEOF\n"
        "export CONFIG=data_prep/astro-ph.yaml\n"
        "```\n"
        "```bash synopsis\nastrollama data aic --root DATA\nastrollama data aic --root work/data\n```\n"
    )
    got = [(c.line, classify(c)[:8]) for c in commands(doc)]
    assert got == [
        (2, "unmarked"),
        (4, "cluster-"),
        (5, "run-by"),
        (6, "cheap"),
        (7, "unmarked"),
        (10, "env"),
        (13, "synopsis"),
        (14, "unmarked"),
    ], got
    assert commands(doc)[0].text == "astrollama data build --root work/data\n--out work/corpora"
