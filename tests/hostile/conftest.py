"""Hostile-input suite: ONE assertion helper shared by every area (train, eval, data, e-prints).

Fixtures (the usual pytest way to share; the suite runs with --import-mode=importlib):

* ``refuse``: ``refuse(argv, tree, expect=[...], code=2, allow=[...], cwd=..., subprocess=False)``
* ``run_astrollama``: ``run_astrollama(argv, cwd=...)`` -> :class:`Outcome` (for accepted inputs)
* :func:`snapshot` is what ``refuse`` compares before and after.

``refuse(argv, tree, expect=...)`` runs ``astrollama <argv>`` and asserts the one error policy of
``astrollama.errors``:

* the exit code (2 for bad input by default; 1 for environment faults);
* the last stderr line is ``astrollama <group>: error: <file>: <field>: <problem>`` and holds every
  fragment of ``expect`` (name the file and the field);
* no traceback anywhere (stdout, stderr, or a log record with exc_info);
* nothing under ``tree`` (a directory, or several) was written, changed or removed, except paths
  under ``allow`` (the command's intended output).

In-process by default (``astrollama.cli.main`` with stdout, stderr and the root logger captured;
an exception escaping ``main`` fails the test, which is how a traceback would reach a user);
``subprocess=True`` runs ``python -m astrollama`` for cases that need a fresh interpreter.
It returns the :class:`Outcome` for further checks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess as sp
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def snapshot(root: str | os.PathLike[str]) -> dict[str, tuple]:
    """Every path under ``root`` -> (kind, size, mtime_ns) (directories too: creating one counts)."""
    out: dict[str, tuple] = {}
    root = Path(root)
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = "dir" if p.is_dir() and not p.is_symlink() else "file"
            out[str(p)] = (kind, 0 if kind == "dir" else st.st_size, 0 if kind == "dir" else st.st_mtime_ns)
    return out


def _run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    subprocess: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Outcome:
    """Run ``astrollama <argv>``; return exit code, stdout and stderr (logs included)."""
    argv = [str(a) for a in argv]
    if subprocess:
        full_env = {**os.environ, **(env or {})}
        full_env.pop("ASTROLLAMA_DEBUG", None)
        r = sp.run(
            [sys.executable, "-m", "astrollama", *argv],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Outcome(r.returncode, r.stdout, r.stderr)
    from astrollama.cli import main

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)  # log records (and any exc_info traceback) land in stderr
    root = logging.getLogger()
    root.addHandler(handler)
    old_env = {k: os.environ.get(k) for k in [*(env or {}), "ASTROLLAMA_DEBUG"]}
    os.environ.update(env or {})
    os.environ.pop("ASTROLLAMA_DEBUG", None)
    old_cwd = os.getcwd()
    try:
        os.chdir(cwd or old_cwd)  # contextlib.chdir needs Python 3.11; the project supports 3.10
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse usage errors
                code = e.code if isinstance(e.code, int) else 2
    finally:
        os.chdir(old_cwd)
        root.removeHandler(handler)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Outcome(int(code or 0), out.getvalue(), err.getvalue())


def _refuse(
    argv: Sequence[str],
    tree: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    expect: str | Sequence[str] = (),
    code: int = 2,
    allow: Sequence[str | os.PathLike[str]] = (),
    cwd: str | os.PathLike[str] | None = None,
    subprocess: bool = False,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Assert ``astrollama <argv>`` refuses with the one-line policy and leaves ``tree`` untouched."""
    trees = [tree] if isinstance(tree, (str, os.PathLike)) else list(tree)
    before = {t: snapshot(t) for t in trees}
    r = _run(argv, cwd=cwd, subprocess=subprocess, env=env)
    shown = f"exit {r.code}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, shown
    assert r.code == code, shown
    group = argv[0]
    assert r.message.startswith(f"astrollama {group}: error: "), shown
    for frag in [expect] if isinstance(expect, str) else expect:
        assert str(frag) in r.message, f"{frag!r} not in the message\n{shown}"
    allowed = [str(Path(a)) for a in allow]
    for t in trees:
        after = snapshot(t)
        changed = sorted(
            p
            for p in set(before[t]) | set(after)
            if before[t].get(p) != after.get(p)
            and not any(p == a or p.startswith(a + os.sep) for a in allowed)
        )
        assert not changed, f"written, changed or removed outside the intended output: {changed}\n{shown}"
    return r


@pytest.fixture
def refuse():
    """The one assertion of the hostile suite (see the module docstring)."""
    return _refuse


@pytest.fixture
def run_astrollama():
    """``astrollama <argv>`` in-process (or ``subprocess=True``): exit code, stdout, stderr."""
    return _run
