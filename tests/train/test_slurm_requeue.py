"""A real Slurm job (single-node cluster on this machine): sbatch slurm/cpt.sh, scontrol requeue it
mid-run, and check that it finishes with the full step count, resumed rather than restarted, with
every optimizer step executed exactly once across the two attempts, and a loadable final model.

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
MAX_STEPS, SAVE_STEPS = 30, 3
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


def test_requeued_job_resumes_and_finishes(slurm_cluster, train_recipe, train_env, tmp_path):
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
        wait_for(lambda: (ckpts / f"checkpoint-{SAVE_STEPS}").is_dir() and job_state(job)[0] == "RUNNING",
                 240, "the first checkpoint", log)
        subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True)
        wait_for(lambda: job_state(job) == ("COMPLETED", 1), 300, "the requeued job to complete", log)
    finally:
        if job_state(job)[0] not in ("COMPLETED", "FAILED", "CANCELLED", "UNKNOWN"):
            subprocess.run(["scancel", job], capture_output=True)

    text = log.read_text()
    starts = list(ATTEMPT_RE.finditer(text))
    assert [m.group(2) for m in starts] == ["0", "1"], text[-3000:]
    first, second = text[starts[0].start():starts[1].start()], text[starts[1].start():]
    steps1 = [int(m.group(1)) for m in STEP_RE.finditer(first)]
    steps2 = [int(m.group(1)) for m in STEP_RE.finditer(second)]
    k = steps1[-1]
    # resumed, not restarted: the second attempt starts from checkpoint-K, K > 0 ...
    assert f"resuming from {ckpts / f'checkpoint-{k}'}" in second, second[-3000:]
    assert 0 < k < MAX_STEPS
    # ... and no step was lost or executed twice: 1..K, then K+1..M
    assert steps1 == list(range(1, k + 1))
    assert steps2 == list(range(k + 1, MAX_STEPS + 1))
    assert "stop requested (signal SIGTERM)" in first  # the requeue's SIGTERM -> checkpoint at step K

    state = json.loads((ckpts / "trainer_state.json").read_text())
    assert state["global_step"] == state["max_steps"] == MAX_STEPS
    last = max((p for p in ckpts.iterdir() if CHECKPOINT_RE.match(p.name)), key=lambda p: int(p.name.split("-")[1]))
    assert last.name == f"checkpoint-{MAX_STEPS}" and check_checkpoint(last).complete

    from transformers import AutoModelForCausalLM

    for d in (ckpts, last):
        model = AutoModelForCausalLM.from_pretrained(d)
        assert sum(p.numel() for p in model.parameters()) > 0

    prov = sorted(p.name for p in (run_dir / "provenance").iterdir() if p.name.startswith("attempt-"))
    assert prov == [f"attempt-001-job{job}-restart0", f"attempt-002-job{job}-restart1"]
    env1 = json.loads((run_dir / "provenance" / prov[0] / "environment.json").read_text())
    assert env1["SLURM_JOB_ID"] == job
