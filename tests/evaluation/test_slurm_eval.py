"""slurm/eval.sh: the thin sweep launcher, run locally and as a real Slurm job."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from astrollama.lmflow_data import write_text_only
from astrollama.models import tiny_llama

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "slurm" / "eval.sh"
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture
def run(tmp_path, tiny_model):
    d = tiny_llama(tmp_path / "run" / "checkpoints" / "checkpoint-4", seed=4)
    (d / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    write_text_only(
        tmp_path / "heldout" / "h.json",
        ["Neutron stars are observed as pulsars.", "The Sun is a main-sequence star."],
    )
    return tmp_path


def _labels(out: Path) -> list[str]:
    with open(out / "curves.csv") as fh:
        return [r["label"] for r in csv.DictReader(fh)]


def test_eval_sh_usage_and_local_run(run, tiny_model):
    p = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=ENV)
    assert p.returncode == 2 and "usage: sbatch slurm/eval.sh RUN_DIR" in p.stderr
    p = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            str(run / "run"),
            "--base",
            str(tiny_model),
            "--heldout",
            str(run / "heldout"),
            "--block-size",
            "16",
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "[eval.sh]" in p.stdout and "device=cpu dtype=float32" in p.stdout
    assert _labels(run / "run" / "eval" / "sweep") == ["base", "checkpoint-4"]
    p = subprocess.run(
        ["bash", str(SCRIPT), str(run / "run"), "--heldout", str(run / "nope")],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert p.returncode == 2 and "nope: no such file or directory" in p.stderr


@pytest.mark.slurm
@pytest.mark.slow
def test_eval_sh_as_a_slurm_job(slurm_cluster, run, tiny_model):
    log = run / "job.out"
    p = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--parsable",
            f"--output={log}",
            "--cpus-per-task=1",
            str(SCRIPT),
            str(run / "run"),
            "--base",
            str(tiny_model),
            "--heldout",
            str(run / "heldout"),
            "--block-size",
            "16",
            "--out",
            str(run / "sweep"),
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = log.read_text() if log.exists() else "(no log)"
    assert p.returncode == 0, text[-3000:]
    assert "[eval.sh]" in text and f"job {p.stdout.strip().split(';')[0]}" in text
    assert _labels(run / "sweep") == ["base", "checkpoint-4"]
    assert (run / "sweep" / "curves.png").stat().st_size > 10_000
