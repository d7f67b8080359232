"""A real Slurm job (single-node cluster on this machine): sbatch slurm/cpt.sh, interrupt it twice
mid-run (the pre-timeout USR1, then scontrol requeue), and check that it finishes with the full
step count, resumed rather than restarted, with every optimizer step executed exactly once across
the three attempts, and a loadable final model.

The job log (``--open-mode=append``) holds both attempts; cpt.sh prints
``[cpt.sh] job <id> restart <n>`` at the start of each, and the engine one
``optimizer step N/M done`` line per step (rank 0), which is what is counted.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from astrollama.train.checkpoints import check_checkpoint

from .conftest import REPO

MAX_STEPS, SAVE_STEPS = 200, 10

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_requeued_job_resumes_and_finishes(slurm_cluster, submit_cpt, train_recipe, train_env, tmp_path):
    """Attempt 0 gets Slurm's pre-timeout signal (USR1 to the batch shell, as --signal=B:USR1@secs
    sends it) and requeues itself; attempt 1 is requeued from outside (scontrol requeue);
    attempt 2 finishes. Each attempt resumes from the checkpoint the previous one saved."""
    run_dir = tmp_path / "run"
    recipe = train_recipe(run_dir, max_steps=MAX_STEPS, save_steps=SAVE_STEPS)
    job = submit_cpt(["--job-name=astrollama-test"], [str(recipe)], train_env)
    ckpts = run_dir / "checkpoints"
    newest = job.newest_checkpoint
    job.wait_for(
        lambda: newest(ckpts) >= SAVE_STEPS and job.state()[0] == "RUNNING", 240, "the first checkpoint"
    )
    subprocess.run(["scancel", "--signal=USR1", "--batch", job.id], check=True, capture_output=True)
    job.wait_for(lambda: job.state() == ("RUNNING", 1), 240, "the self-requeued job to start again")
    k1 = newest(ckpts)
    job.wait_for(lambda: newest(ckpts) >= k1 + SAVE_STEPS, 240, "a checkpoint in attempt 1")
    subprocess.run(["scontrol", "requeue", job.id], check=True, capture_output=True)
    job.wait_for(lambda: job.state() == ("COMPLETED", 2), 300, "the requeued job to complete")

    parts = job.attempts()
    assert [p.split("\n", 1)[0] for p in parts] == [
        f"[cpt.sh] job {job.id} restart {i} on 1 node(s): {recipe}" for i in range(3)
    ], parts[-1][-3000:]
    steps = [job.steps(p) for p in parts]
    k = [s[-1] for s in steps[:2]]
    # the runner relays a signal to its workers through a stop file; a worker may see the file before
    # its own copy of the signal, so either stop message proves the stop-at-this-step path
    stopped = ("stop requested (signal", "stop requested (stop file")
    assert "got SIGUSR1" in parts[0] and "[astrollama train run] SIGUSR1" in parts[0]
    assert any(m in parts[0] for m in stopped)
    assert f"requeueing job {job.id}" in parts[0]  # cpt.sh requeued itself after the checkpoint
    assert "[astrollama train run] SIGTERM" in parts[1]  # the external requeue's SIGTERM
    assert any(m in parts[1] for m in stopped)
    # resumed, not restarted: each later attempt starts from the previous attempt's last step ...
    for i in (1, 2):
        assert f"resuming from {ckpts / f'checkpoint-{k[i - 1]}'}" in parts[i], parts[i][-3000:]
    assert 0 < k[0] < k[1] < MAX_STEPS
    # ... and no step was lost or executed twice: 1..K1, K1+1..K2, K2+1..M
    assert steps[0] == list(range(1, k[0] + 1))
    assert steps[1] == list(range(k[0] + 1, k[1] + 1))
    assert steps[2] == list(range(k[1] + 1, MAX_STEPS + 1))

    state = json.loads((ckpts / "trainer_state.json").read_text())
    assert state["global_step"] == state["max_steps"] == MAX_STEPS
    last = ckpts / f"checkpoint-{MAX_STEPS}"
    assert job.newest_checkpoint(ckpts) == MAX_STEPS and check_checkpoint(last).complete

    from transformers import AutoModelForCausalLM

    for d in (ckpts, last):
        model = AutoModelForCausalLM.from_pretrained(d)
        assert sum(p.numel() for p in model.parameters()) > 0

    prov = sorted(p.name for p in (run_dir / "provenance").iterdir() if p.name.startswith("attempt-"))
    assert prov == [f"attempt-{i + 1:03d}-job{job.id}-restart{i}" for i in range(3)]
    env1 = json.loads((run_dir / "provenance" / prov[0] / "environment.json").read_text())
    assert env1["SLURM_JOB_ID"] == job.id


SFT_RECIPE = """
name: tiny-sft
reproduces: "none: SFT requeue test"
model:
  name_or_path: {model}
  torch_dtype: float32
data:
  dataset_path: {data}
  conversation_template: llama2
  block_size: 64
  packing: true
  preprocessing_num_workers: 1
batch:
  global_batch_size: 4
  max_micro_batch_size: 4
launch:
  engine: local
  gpus_per_node: 1
  run_dir: {run_dir}
trainer:
  use_cpu: true  # CPU on purpose (a GPU recipe is refused on a node without GPUs)
  learning_rate: 1.0e-3
  max_steps: 40
  save_steps: 5
  logging_steps: 1
  report_to: none
  seed: 7
"""


def losses(ckpts) -> list[float]:
    state = json.loads((ckpts / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def test_sft_job_requeued_resumes_with_identical_losses(
    slurm_cluster, submit_cpt, tiny_model, conversation_corpus, train_env, tmp_path
):
    """An SFT recipe (conversation data, llama2 template, packed, assistant-only loss) through
    sbatch slurm/cpt.sh: scontrol requeue mid-run, the next attempt resumes, and every step's loss
    equals an uninterrupted run's."""
    import torch

    def recipe(run_dir):
        p = tmp_path / f"{run_dir.name}.yaml"
        p.write_text(SFT_RECIPE.format(model=tiny_model, data=conversation_corpus, run_dir=run_dir))
        return p

    run_dir = tmp_path / "run"
    ckpts = run_dir / "checkpoints"
    job = submit_cpt(["--job-name=astrollama-sft-test"], [str(recipe(run_dir))], train_env)
    job.wait_for(
        lambda: job.newest_checkpoint(ckpts) >= 5 and job.state()[0] == "RUNNING", 240, "a checkpoint"
    )
    subprocess.run(["scontrol", "requeue", job.id], check=True, capture_output=True)
    job.wait_for(lambda: job.state() == ("COMPLETED", 1), 300, "the requeued job to complete")
    parts = job.attempts()
    assert len(parts) == 2
    k = job.steps(parts[0])[-1]
    assert 5 <= k < 40 and f"resuming from {ckpts / f'checkpoint-{k}'}" in parts[1], parts[1][-3000:]
    assert job.steps(parts[1]) == list(range(k + 1, 41))
    assert "--conversation_template llama2" in parts[0]

    ref_dir = tmp_path / "ref"
    r = subprocess.run(
        ["bash", "slurm/cpt.sh", str(recipe(ref_dir))],
        cwd=REPO,
        env=train_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got, want = losses(ckpts), losses(ref_dir / "checkpoints")
    assert len(got) == len(want) == 40 and want[-1] < want[0] - 0.1
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=1e-5)


def test_cluster_script_tells_whose_cluster_runs(slurm_cluster, tmp_path):
    """The test fixture tears a cluster down only if no slurmctld ran before it (``running``: the
    daemon's pid file), not when ``sinfo`` is merely slow: a second test session beside a busy one
    must not stop the first one's cluster under its jobs."""
    script = REPO / "tests" / "slurm_cluster.sh"
    assert subprocess.run(["bash", str(script), "running"], capture_output=True).returncode == 0
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "slurmctld.pid").write_text(f"{dead.pid}\n")  # a pid file whose process is gone
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "SLURM_TEST_STATE": str(tmp_path)}
    assert subprocess.run(["bash", str(script), "running"], capture_output=True, env=env).returncode == 1
    (tmp_path / "slurmctld.pid").unlink()
    assert subprocess.run(["bash", str(script), "running"], capture_output=True, env=env).returncode == 1
