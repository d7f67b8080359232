"""A real two-node Slurm job (tests/slurm_cluster2.sh: nodes n1 and n2 are network + UTS + mount
namespaces on a bridge): ``sbatch --nodes=2 slurm/cpt.sh`` starts one ``astrollama train run`` per
node, each node's torchrun meets the other at the c10d rendezvous on n1 (gloo, one CPU process per
node), and the job is requeued from outside (``scontrol requeue``) mid-run.

Asserted: both nodes ran (node 0 on n1 is the rendezvous host), the second attempt resumed from the
checkpoint the first saved, every optimizer step ran exactly once across the two attempts, and the
per-step losses equal those of an uninterrupted ONE-node run with the same global batch
(2 processes on this machine, same micro-batch, no Slurm, local engine). Once with the local
engine, once with the real LMFlow ``examples/finetune.py`` where its environment exists (the
``lmflow_env`` fixture: ``$ASTROLLAMA_LMFLOW_PYTHON``, which scripts/test.sh sets).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from astrollama.train.checkpoints import check_checkpoint
from astrollama.train.launch import build_launch
from astrollama.train.recipe import load_recipe

MAX_STEPS, SAVE_STEPS = 100, 5  # ~10 s of steps after the first checkpoint: the requeue lands mid-run
# one process per node, micro-batch 2: global batch 4 = 2 processes x micro-batch 2 x accumulation 1
RECIPE = {"max_steps": MAX_STEPS, "save_steps": SAVE_STEPS, "procs": 1, "global_batch": 4, "micro": 2}

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def step_losses(ckpts: Path) -> list[float]:
    """Per-step losses 1..MAX_STEPS from the last checkpoint's trainer state (both engines write it)."""
    state = json.loads((ckpts / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_text())
    losses = {e["step"]: e["loss"] for e in state["log_history"] if "loss" in e}
    assert sorted(losses) == list(range(1, MAX_STEPS + 1)), sorted(losses)
    return [losses[s] for s in sorted(losses)]


@pytest.fixture(scope="module")
def one_node_losses(train_recipe, train_env, tmp_path_factory) -> list[float]:
    """The same recipe on ONE node (this machine, no Slurm, local engine, uninterrupted): 2 processes,
    the same global batch and micro-batch."""
    run_dir = tmp_path_factory.mktemp("one-node")
    plan = build_launch(load_recipe(train_recipe(run_dir, **RECIPE)), nodes=["localhost"], gpus_per_node=2)
    assert (
        plan.batch.box(1, 2)
        == "global batch 4 = 2 processes (1 nodes x 2) x micro-batch 2 x gradient accumulation 1"
    )
    r = subprocess.run(
        plan.commands[0], env={**train_env, **plan.env}, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    losses = step_losses(plan.output_dir)
    assert losses[-1] < losses[0]  # it learned something, so the equality below is not trivial
    return losses


@pytest.mark.parametrize("engine", ["local", pytest.param("lmflow", marks=pytest.mark.lmflow)])
def test_two_node_job_rendezvous_requeue_and_one_node_losses(
    engine,
    request,
    slurm_cluster2,
    submit_cpt,
    one_node_losses,
    train_recipe,
    train_env,
    tmp_path,
):
    run_dir = tmp_path / "run"
    recipe = train_recipe(run_dir, **RECIPE)
    # lmflow: the job trains in the LMFlow environment (skips where there is none)
    env = request.getfixturevalue("lmflow_env") if engine == "lmflow" else train_env
    job = submit_cpt(
        ["--nodes=2", f"--job-name=astrollama-2node-{engine}"],
        [str(recipe), f"launch.engine={engine}"],
        {**env, "SLURM_CONF": slurm_cluster2},
    )
    ckpts = run_dir / "checkpoints"
    newest = job.newest_checkpoint
    job.wait_for(
        lambda: newest(ckpts) >= SAVE_STEPS and job.state()[0] == "RUNNING", 300, "the first checkpoint"
    )
    subprocess.run(["scontrol", "requeue", job.id], env=job.env, check=True, capture_output=True)
    job.wait_for(lambda: job.state() == ("COMPLETED", 1), 300, "the requeued job to complete")

    parts = job.attempts()
    assert [p.split("\n", 1)[0] for p in parts] == [
        f"[cpt.sh] job {job.id} restart {i} on 2 node(s): {recipe} launch.engine={engine}" for i in (0, 1)
    ], parts[-1][-3000:]
    for part in parts:  # one runner per node, each on its own host, in one 2-process DDP group
        assert "node 0/2 (n1)" in part and "node 1/2 (n2)" in part, part[-3000:]
        assert "global batch 4 = 2 processes (2 nodes x 1) x micro-batch 2 x gradient accumulation 1" in part
    # the requeue's SIGTERM reaches the runner on each node, which relays it to its workers; a worker
    # may see the relay's stop file before its own copy of the signal: either way, checkpoint, then stop
    assert "[astrollama train run] SIGTERM" in parts[0], parts[0][-3000:]
    assert "stop requested (signal SIGTERM)" in parts[0] or "stop requested (stop file" in parts[0]
    steps = [job.steps(p) for p in parts]
    k = steps[0][-1]
    assert f"resuming from {ckpts / f'checkpoint-{k}'}" in parts[1], parts[1][-3000:]
    # no step lost or executed twice: 1..K, then K+1..M
    assert 0 < k < MAX_STEPS
    assert steps[0] == list(range(1, k + 1))
    assert steps[1] == list(range(k + 1, MAX_STEPS + 1))

    launch = json.loads(next((run_dir / "provenance").glob("attempt-001-*/launch.json")).read_text())
    assert launch["engine"] == engine and launch["nodes"] == ["n1", "n2"]
    cmd = launch["commands"][1]
    assert cmd[cmd.index("--nnodes") + 1] == "2" and cmd[cmd.index("--rdzv-endpoint") + 1].startswith("n1:")
    assert check_checkpoint(ckpts / f"checkpoint-{MAX_STEPS}").complete

    # two nodes, requeued once == one node, uninterrupted (local engine), step for step (measured:
    # bit for bit, both engines)
    assert step_losses(ckpts) == one_node_losses
