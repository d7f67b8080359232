"""slurm/_data_stage.sh is the one opening of the six data-stage scripts: each script sources it
(and holds no copy of its argument handling), and without arguments each one prints its own usage
line and exits 2 before touching any environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_STAGES = ("download", "ocr", "aic", "summarize", "qa", "build")


@pytest.mark.parametrize("stage", DATA_STAGES)
def test_data_stage_script_uses_the_shared_opening(stage: str, tmp_path: Path) -> None:
    text = (REPO / "slurm" / f"{stage}.sh").read_text()
    assert text.count('source "$REPO/slurm/_data_stage.sh"') == 1
    assert "ROOT=(" not in text and 'slurm/_env.sh"' not in text  # the opening's job, not a copy
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ASTROLLAMA_"))}
    env["ASTROLLAMA_VENV"] = str(tmp_path / "not-a-venv")  # would be an exit-1 error if _env.sh ran
    r = subprocess.run(["bash", str(REPO / "slurm" / f"{stage}.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert (
        r.stderr.startswith("usage: ") and f"slurm/{stage}.sh" in r.stderr and len(r.stderr.splitlines()) == 1
    )


def test_every_script_sourcing_the_opening_is_a_data_stage() -> None:
    users = sorted(
        p.stem
        for p in (REPO / "slurm").glob("*.sh")
        if 'source "$REPO/slurm/_data_stage.sh"' in p.read_text()
    )
    assert users == sorted(DATA_STAGES)
