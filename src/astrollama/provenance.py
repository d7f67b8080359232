"""What a run records about where it ran: the git state of the checkout, ``pip freeze`` and the
environment variables that shape it. ``astrollama train run`` and ``astrollama merge`` write them
into their ``provenance/`` directories.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENV_PREFIXES = (
    "SLURM_",
    "CUDA_",
    "NCCL_",
    "TORCH",
    "OMP_",
    "HF_",
    "TRANSFORMERS_",
    "ASTROLLAMA_",
    "MASTER_",
    "PYTHON",
)
ENV_NAMES = ("HOSTNAME", "PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH")


def git_info(repo: Path) -> dict:
    """The commit, branch and dirty state of the checkout at ``repo`` (``sha`` None outside git)."""

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    return {
        "repo": str(repo),
        "sha": sha,
        "dirty": bool(status) if status is not None else None,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "note": None if sha else "no git commit found (not a git checkout, or no commits yet)",
    }


class PipFreeze:
    """``pip freeze`` started early in the background (it takes seconds); ``text()`` waits for it."""

    def __init__(self) -> None:
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self.error = ""
        except OSError as e:
            self.proc, self.error = None, str(e)

    def text(self) -> str:
        if self.proc is None:
            return f"# pip freeze failed: {self.error}\n"
        try:
            out, err = self.proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "# pip freeze timed out\n"
        return (
            out
            if self.proc.returncode == 0
            else f"# pip freeze failed ({self.proc.returncode}): {err.strip()}\n"
        )


def environment() -> dict[str, str]:
    """The environment variables that shape a run (scheduler, CUDA, NCCL, torch, HF, ours)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}
