"""The rehearsal: the toy target through `astrollama reproduce` on the real single-node Slurm
(tests/slurm_cluster.sh): every stage a real job (arrays for the sharded data stages) chained with
--dependency=afterok, ending with the report; the CPT job is requeued (`scontrol requeue`) mid-graph
and resumes from its checkpoint without redoing a finished stage; a rerun submits nothing.

Tiny settings through the target's overrides (CPT 4 steps, SFT 2, one short summary, 8 questions);
the graph is the real one: harvest -> download -> ocr -> aic -> summarize -> build -> demo-sft ->
cpt -> sft -> merge -> eval -> report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from astrollama.demo import demo_target

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slurm, pytest.mark.slow]
DATA = ("harvest", "download", "ocr", "aic", "summarize", "build", "demo-sft")


def _state(job: str) -> tuple[str, int]:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    state, restarts = re.search(r"JobState=(\S+)", out), re.search(r"Restarts=(\d+)", out)
    return (state.group(1) if state else "UNKNOWN"), int(restarts.group(1)) if restarts else 0


def _wait(cond, timeout: float, what: str, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in sorted(logs.glob("*.out")))
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
        time.sleep(1)


def test_toy_target_on_real_slurm_with_a_requeue(slurm_cluster, tmp_path: Path) -> None:
    work, logs = tmp_path / "work", tmp_path / "logs"
    logs.mkdir()
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join((REPO / "eval" / "data" / "astro_mcq_sample.jsonl").read_text().splitlines(True)[:8])
    )
    target = demo_target(
        work,
        cpt=["trainer.max_steps=4", "trainer.save_steps=1"],
        sft=["trainer.max_steps=2", "trainer.save_steps=2"],
        eval_args=[f"--questions={questions}", "--max-docs=4", "--max-new-tokens=4"],
        embed_args=["--max-docs=4"],
    )
    target["data"]["set"] += [
        "summarize.limit=1",
        "summarize.target_tokens=16",
        "summarize.min_tokens=8",
        "summarize.max_tokens=48",
    ]
    f = tmp_path / "toy.yaml"
    f.write_text(yaml.safe_dump(target, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ASTROLLAMA_VENV"))}
    env.update(
        ASTROLLAMA_VENV=str(Path(sys.executable).parent.parent),
        PYTHONPATH=str(REPO / "src"),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    cmd = [sys.executable, "-m", "astrollama", "reproduce", str(f), f"--log-dir={logs}"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = dict(re.findall(r"^(\S+): job (\d+)  \(sbatch ", r.stdout, re.M))
    assert list(jobs) == [*DATA, "cpt", "sft", "merge", "eval", "report"], r.stdout
    ids = [int(j) for j in jobs.values()]
    assert ids == sorted(ids)
    # each job waits for the one before it, as Slurm holds it
    for prev, stage in zip(list(jobs), list(jobs)[1:], strict=False):
        out = subprocess.run(["scontrol", "show", "job", jobs[stage]], capture_output=True, text=True).stdout
        assert f"Dependency=afterok:{jobs[prev]}" in out or "Dependency=(null)" in out, out

    ckpts = work / "run" / "checkpoints"
    try:
        _wait(
            lambda: _state(jobs["cpt"])[0] == "RUNNING" and (ckpts / "checkpoint-1").is_dir(),
            1800,
            "the CPT job's first checkpoint",
            logs,
        )
        markers = {p.name: p.stat().st_mtime_ns for p in (work / "done").glob("*.json")}
        assert {m.split(".")[0] for m in markers} == set(DATA)  # every data stage (array task) marked
        subprocess.run(["scontrol", "requeue", jobs["cpt"]], check=True, capture_output=True)

        def poll() -> bool:  # Slurm forgets finished jobs after MinJobAge: remember what it said
            for stage in ("cpt", "sft", "merge", "eval", "report"):
                st = _state(jobs[stage])
                if st[0] != "UNKNOWN":
                    seen[stage] = st
            return seen.get("report", ("",))[0] in ("COMPLETED", "FAILED", "CANCELLED")

        seen: dict[str, tuple[str, int]] = {}
        _wait(poll, 2400, "the report job", logs)
    finally:
        for j in jobs.values():
            subprocess.run(["scancel", j], capture_output=True)

    assert seen["report"][0] == "COMPLETED", seen
    assert (work / "eval" / "report" / "report.md").stat().st_size > 0
    assert seen["cpt"] == ("COMPLETED", 1)
    # finished stages were not redone: their markers are untouched, each data job ran once
    assert {
        p.name: p.stat().st_mtime_ns for p in (work / "done").glob("*.json") if p.name.split(".")[0] in DATA
    } == markers
    for stage in DATA:
        text = "".join(p.read_text() for p in logs.glob(f"astrollama-{stage}-*.out"))
        assert text.count("[stage.sh]") == (2 if stage in ("download", "ocr", "aic") else 1), stage
        assert "restart 1" not in text
    # the requeued CPT resumed from its checkpoint and finished the 4 steps
    cpt_log = next(logs.glob(f"astrollama-cpt-{jobs['cpt']}.out")).read_text()
    assert f"job {jobs['cpt']} restart 1" in cpt_log
    m = re.search(r"resuming from (\S+checkpoint-(\d+))", cpt_log)
    assert m and int(m.group(2)) >= 1, cpt_log[-3000:]
    state = json.loads((ckpts / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # the eval and report stages ran once each, after the requeued CPT had finished
    for stage in ("sft", "merge", "eval", "report"):
        assert seen[stage] == ("COMPLETED", 0), stage

    # a rerun skips every complete stage and submits nothing
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and " job " not in r.stdout, r.stdout
    assert r.stdout.count("complete, skipped") == len(jobs)
