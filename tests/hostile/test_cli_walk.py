"""Every ``astrollama`` command, every input argument, generic bad inputs.

The commands come from the parser tree itself (:func:`astrollama.cli.command_parsers`, through
tests/hostile/walk.py), so a new command or argument is walked as soon as it is registered. Every
input argument of a command names the same bad path at once (a missing file, a directory where a
file belongs, a FIFO, an empty file, bytes that are not UTF-8, a 2 TiB sparse file, a symlink to
/dev/zero), and the command must:

* exit 2 with exactly one error line ``astrollama <group>: error: ...`` naming the bad input, and no
  traceback;
* finish within a time limit (a FIFO read would block forever, /dev/zero never ends);
* stay within bounded memory (the 2 TiB file and /dev/zero run in a subprocess with a capped
  address space, and each case's peak-RSS growth is checked).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.hostile.conftest import REPO
from tests.hostile.walk import cases, problems, run_case

COMMANDS = cases()
IDS = [" ".join(w) for w, _ in COMMANDS]
IN_PROCESS = ("missing", "directory", "fifo", "empty", "not-utf8")
LIMIT_S = 30.0  # per case; a refusal takes well under a second once the libraries are imported
MAX_RSS_GROWTH = 1 << 30  # per case


def test_the_walk_covers_every_command_group():
    groups = {w[0] for w, _ in COMMANDS}
    assert {"train", "data", "eval", "merge"} <= groups
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize(("words", "parser"), COMMANDS, ids=IDS)
def test_bad_files_are_refused_in_one_line(words, parser, tmp_path):
    found = []
    for kind in IN_PROCESS:
        out, argv, bad, secs, _ = run_case(words, parser, kind, tmp_path / kind, LIMIT_S)
        found += [f"[{kind}] {p}" for p in problems(words, out, argv, bad)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("kind", ["huge", "dev-zero"])
def test_endless_and_huge_inputs_are_refused_without_reading_them(kind, tmp_path):
    """A 2 TiB sparse file and a symlink to /dev/zero in every input of every command, in a
    subprocess whose address space is capped (6 GiB above its imports): refused from ``stat``,
    quickly, without the memory a read would take."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    env.pop("ASTROLLAMA_DEBUG", None)
    r = subprocess.run(
        [sys.executable, "-m", "tests.hostile.walk", kind, str(tmp_path), str(LIMIT_S)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=LIMIT_S * len(COMMANDS) + 120,
    )
    rows = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert r.returncode == 0 and len(rows) == len(COMMANDS), r.stderr[-3000:]
    found = []
    for row in rows:
        found += [f"[{kind}] {p}" for p in row["problems"]]
        if row["rss_growth"] > MAX_RSS_GROWTH:
            found.append(f"[{kind}] {' '.join(row['words'])}: peak RSS grew by {row['rss_growth'] >> 20} MiB")
    assert not found, "\n".join(found)
