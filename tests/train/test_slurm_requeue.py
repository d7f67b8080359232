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
import re
import subprocess
import time
from pathlib import Path

import pytest

from astrollama.train.checkpoints import CHECKPOINT_RE, check_checkpoint

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS, SAVE_STEPS = 200, 10
ATTEMPT_RE = re.compile(r"^\[cpt\.sh\] job (\d+) restart (\d+)", re.M)
STEP_RE = re.compile(r"optimizer step (\d+)/(\d+) done")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def job_state(job: str) -> tuple[str, int]:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    state = re.search(r"JobState=(\S+)", out)
    restarts = re.search(r"Restarts=(\d+)", out)
    return (state.group(1) if state else "UNKNOWN"), int(restarts.group(1)) if restarts else 0


def wait_for(cond, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tail = log.read_text()[-4000:] if log.exists() else "(no log)"
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; job log tail:\n{tail}")
        time.sleep(0.2)


def newest_checkpoint(ckpts: Path) -> int:
    steps = [int(m.group(1)) for p in ckpts.glob("checkpoint-*") if (m := CHECKPOINT_RE.match(p.name))]
    return max(steps, default=0)


def test_requeued_job_resumes_and_finishes(slurm_cluster, train_recipe, train_env, tmp_path):
    """Attempt 0 gets Slurm's pre-timeout signal (USR1 to the batch shell, as --signal=B:USR1@secs
    sends it) and requeues itself; attempt 1 is requeued from outside (scontrol requeue);
    attempt 2 finishes. Each attempt resumes from the checkpoint the previous one saved."""
    run_dir = tmp_path / "run"
    recipe = train_recipe(run_dir, max_steps=MAX_STEPS, save_steps=SAVE_STEPS)
    log = tmp_path / "job.out"
    sub = subprocess.run(
        ["sbatch", "--parsable", f"--output={log}", "--job-name=astrollama-test", "slurm/cpt.sh", str(recipe)],
        cwd=REPO, env=train_env, capture_output=True, text=True, check=True,
    )
    job = sub.stdout.strip().split(";")[0]
    ckpts = run_dir / "checkpoints"
    try:
        wait_for(lambda: newest_checkpoint(ckpts) >= SAVE_STEPS and job_state(job)[0] == "RUNNING",
                 240, "the first checkpoint", log)
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, capture_output=True)
        wait_for(lambda: job_state(job) == ("RUNNING", 1), 240, "the self-requeued job to start again", log)
        k1 = newest_checkpoint(ckpts)
        wait_for(lambda: newest_checkpoint(ckpts) >= k1 + SAVE_STEPS, 240, "a checkpoint in attempt 1", log)
        subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True)
        wait_for(lambda: job_state(job) == ("COMPLETED", 2), 300, "the requeued job to complete", log)
    finally:
        if job_state(job)[0] not in ("COMPLETED", "FAILED", "CANCELLED", "UNKNOWN"):
            subprocess.run(["scancel", job], capture_output=True)

    text = log.read_text()
    starts = list(ATTEMPT_RE.finditer(text))
    assert [m.group(2) for m in starts] == ["0", "1", "2"], text[-3000:]
    parts = [text[a.start():b.start()] for a, b in zip(starts, starts[1:], strict=False)] + [text[starts[-1].start():]]
    steps = [[int(m.group(1)) for m in STEP_RE.finditer(p)] for p in parts]
    k = [s[-1] for s in steps[:2]]
    assert "got SIGUSR1" in parts[0] and "stop requested (signal SIGUSR1)" in parts[0]
    assert f"requeueing job {job}" in parts[0]  # cpt.sh requeued itself after the checkpoint
    assert "stop requested (signal SIGTERM)" in parts[1]  # the external requeue's SIGTERM
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
    assert newest_checkpoint(ckpts) == MAX_STEPS and check_checkpoint(last).complete

    from transformers import AutoModelForCausalLM

    for d in (ckpts, last):
        model = AutoModelForCausalLM.from_pretrained(d)
        assert sum(p.numel() for p in model.parameters()) > 0

    prov = sorted(p.name for p in (run_dir / "provenance").iterdir() if p.name.startswith("attempt-"))
    assert prov == [f"attempt-{i + 1:03d}-job{job}-restart{i}" for i in range(3)]
    env1 = json.loads((run_dir / "provenance" / prov[0] / "environment.json").read_text())
    assert env1["SLURM_JOB_ID"] == job
