"""The README's first command, as written: ``bash scripts/demo.sh`` (set-up, then the whole toy
pipeline offline) ends with ``demo OK``. Its work files go to a temporary directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_script_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ASTROLLAMA_VENV"))}
    env.update(OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"), CUDA_VISIBLE_DEVICES="")
    r = subprocess.run(
        ["bash", "scripts/demo.sh", "--workdir", str(tmp_path / "demo")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "demo OK" in r.stdout
