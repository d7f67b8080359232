"""The training stage of the demo: continual pre-training of SmolLM2-135M through ``bash slurm/cpt.sh
recipes/demo-smollm2-135m.yaml``, the same shell, runner and engine a cluster job uses."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from astrollama.demo import REPO, DemoError

log = logging.getLogger(__name__)

RECIPE = REPO / "recipes" / "demo-smollm2-135m.yaml"


def train(
    train_dir: Path,
    workdir: Path,
    *,
    resume: bool = False,
    overrides: Sequence[str] = (),
    recipe: Path = RECIPE,
    run_name: str = "run",
) -> Path:
    """Continue pre-training SmolLM2-135M on ``train_dir`` (or train with another ``recipe``, e.g. the
    demo SFT, into ``<workdir>/<run_name>``); return the final checkpoint directory."""
    run_dir = workdir / run_name
    if run_dir.exists() and not resume:
        log.info("removing the previous run %s (use --resume to continue it instead)", run_dir)
        shutil.rmtree(run_dir)
    cmd = [
        "bash",
        str(REPO / "slurm" / "cpt.sh"),
        str(recipe),
        f"data.dataset_path={train_dir}",
        "data.eval_dataset_path=null",
        f"launch.run_dir={run_dir}",
        *overrides,
    ]
    log.info("training: %s", " ".join(cmd))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SLURM_")
    }  # a local run, even inside a job
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    if rc == 75:
        raise DemoError(
            "training stopped early with a checkpoint; run `astrollama demo --resume` to continue"
        )
    if rc != 0:
        raise DemoError(f"training failed (exit {rc}); logs in {run_dir / 'logs'}")
    out = run_dir / "checkpoints"
    if not (out / "model.safetensors").is_file():
        raise DemoError(f"{out}: training finished but wrote no final model")
    return out
