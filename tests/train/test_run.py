"""``astrollama train run`` / ``slurm/cpt.sh`` before training starts: allocation, refusals."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from astrollama.train.run import detect_allocation

REPO = Path(__file__).resolve().parents[2]


def test_local_allocation_uses_the_recipe_process_count_on_cpu(monkeypatch):
    for k in ("SLURM_JOB_ID", "SLURM_GPUS_ON_NODE", "SLURM_NODEID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    a = detect_allocation(cpu_procs_per_node=3)
    assert (a.nodes, a.node_rank, a.procs_per_node, a.device, a.job_id) == (["localhost"], 0, 3, "cpu", None)


def test_gpu_count_comes_from_slurm_then_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.delenv("SLURM_GPUS_ON_NODE", raising=False)
    assert detect_allocation(1).procs_per_node == 4
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "8")
    a = detect_allocation(1)
    assert (a.procs_per_node, a.device) == (8, "cuda")


@pytest.mark.skipif(
    shutil.which("scontrol") is None, reason="needs scontrol (slurm-wlm) to expand node lists"
)
def test_slurm_allocation_reads_hostnames_node_id_and_restart(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[007-008],login1")
    monkeypatch.setenv("SLURM_NNODES", "3")
    monkeypatch.setenv("SLURM_NODEID", "1")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "8")
    a = detect_allocation(1)
    assert a.nodes == ["gpu007", "gpu008", "login1"]
    assert (a.node_rank, a.procs_per_node, a.restart, a.rdzv_id) == (1, 8, 2, "slurm-4242-2")


def test_bad_recipe_is_refused_before_anything_starts(train_recipe, train_env, tmp_path, capsys):
    from astrollama.cli import main

    run_dir = tmp_path / "run"
    recipe = train_recipe(run_dir)
    for overrides, key in (
        (["launch.gpus_per_node=2", "batch.global_batch_size=3"], "batch.global_batch_size"),
        (["trainer.learning_rate=2e-5"], "trainer.learning_rate"),
    ):
        assert main(["train", "run", str(recipe), *overrides]) == 2
        errors = [
            line
            for line in capsys.readouterr().err.splitlines()
            if line.startswith("astrollama train: error: ")
        ]
        assert len(errors) == 1 and str(recipe) in errors[0] and key in errors[0]
    # through the shell a cluster job runs: exit status 2, one error line
    r = subprocess.run(
        ["bash", "slurm/cpt.sh", str(recipe), "data.dataset_path=/nonexistent/dir"],
        cwd=REPO,
        env=train_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("astrollama train: error: ")]
    assert len(errors) == 1 and str(recipe) in errors[0] and "data.dataset_path" in errors[0], r.stderr
    assert not run_dir.exists()  # no provenance, no checkpoints, nothing launched
