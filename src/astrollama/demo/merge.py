"""The merge stage of the demo: the SFT model with the model it all started from (SmolLM2-135M-Instruct),
through ``bash slurm/merge.sh recipes/demo-smollm2-135m-merge.yaml`` (mergekit; the AstroSage step)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from astrollama.demo import REPO, DemoError

log = logging.getLogger(__name__)

RECIPE = REPO / "recipes" / "demo-smollm2-135m-merge.yaml"


def merge(sft_model: Path, workdir: Path) -> Path:
    """Merge ``sft_model`` with the base instruct model into ``<workdir>/merged`` (a fresh merge each
    run); return that directory."""
    out = workdir / "merged"
    if out.exists():
        shutil.rmtree(out)
    cmd = [
        "bash",
        str(REPO / "slurm" / "merge.sh"),
        str(RECIPE),
        f"models.sft.path={sft_model}",
        f"output_dir={out}",
    ]
    log.info("merging: %s", " ".join(cmd))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SLURM_")
    }  # a local run, even inside a job
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    if rc != 0 or not (out / "config.json").is_file():
        raise DemoError(f"merge failed (exit {rc}): {' '.join(cmd)}")
    return out
