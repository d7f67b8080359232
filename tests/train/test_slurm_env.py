"""slurm/_env.sh: the one rule for which environment every slurm/*.sh script trains or runs in
(README, cluster quick start): $ASTROLLAMA_VENV, else the one $ASTROLLAMA_ENV_SETUP activated, else
the stage's own ($REPO/.venv-train for cpt.sh), else $REPO/.venv, else the calling one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOW = 'REPO=$1; STAGE_VENV=$REPO/.venv-train; source "$2"; python3 -c "import sys; print(sys.prefix)"'


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A repository root with .venv and .venv-train, plus two environments elsewhere (real venvs)."""
    root = tmp_path_factory.mktemp("repo")
    for name in (".venv", ".venv-train", "elsewhere", "chosen"):
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(root / name)], check=True, timeout=120
        )
    return root


def which_env(repo: Path, **knobs: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(repo), **knobs}
    return subprocess.run(
        ["bash", "-c", SHOW, "cpt.sh", str(repo), str(REPO / "slurm" / "_env.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        ({}, ".venv-train"),  # the stage's environment beats .venv
        ({"ASTROLLAMA_ENV_SETUP": "umask 022"}, ".venv-train"),  # setup code that activates nothing
        (
            {"ASTROLLAMA_ENV_SETUP": "source {repo}/elsewhere/bin/activate"},
            "elsewhere",
        ),  # not overridden by a .venv
        (
            {"ASTROLLAMA_ENV_SETUP": 'export PATH={repo}/elsewhere/bin:"$PATH"'},
            "elsewhere",
        ),  # PATH-only activation
        (
            {
                "ASTROLLAMA_ENV_SETUP": "source {repo}/elsewhere/bin/activate",
                "ASTROLLAMA_VENV": "{repo}/chosen",
            },
            "chosen",
        ),
    ],
)
def test_one_rule_picks_the_environment(repo, knobs, expected):
    r = which_env(repo, **{k: v.format(repo=repo) for k, v in knobs.items()})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == str(repo / expected)
    assert r.stdout.splitlines()[0] == f"[cpt.sh] python: {repo / expected / 'bin' / 'python3'}"


def test_without_stage_env_dot_venv_then_the_calling_environment(repo, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(bare / ".venv")], check=True, timeout=120
    )
    assert which_env(bare).stdout.splitlines()[-1] == str(bare / ".venv")
    shutil.rmtree(bare / ".venv")
    calling = subprocess.run(
        ["python3", "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    ).stdout.strip()
    assert which_env(bare).stdout.splitlines()[-1] == calling


def test_a_missing_astrollama_venv_is_an_error(repo):
    r = which_env(repo, ASTROLLAMA_VENV=str(repo / "nope"))
    assert r.returncode == 1 and "ASTROLLAMA_VENV" in r.stderr and "not a virtual environment" in r.stderr
