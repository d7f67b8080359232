"""Resume and preemption without Slurm: complete-checkpoint rules, and SIGUSR1 -> checkpoint -> resume.

The end-to-end test proves "no optimizer step lost or repeated" three ways: the per-step log lines
of the two attempts are 1..K and K+1..M (each step executed once), the second attempt resumed from
checkpoint-K, and the final weights and per-step losses equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from astrollama.train.checkpoints import check_checkpoint, latest_complete_checkpoint, quarantine_incomplete
from astrollama.train.preempt import REQUEUE_EXIT_CODE

REPO = Path(__file__).resolve().parents[2]
STEP_RE = re.compile(r"optimizer step (\d+)/(\d+) done")
MAX_STEPS, SAVE_STEPS = 40, 4


def engine_flags(recipe: Path) -> list[str]:
    """The local engine's flags for this recipe (the part of the torchrun command after the module)."""
    from astrollama.train.launch import build_launch
    from astrollama.train.recipe import load_recipe

    cmd = build_launch(load_recipe(recipe), nodes=["localhost"], gpus_per_node=1).commands[0]
    return cmd[cmd.index("astrollama.train.engine") + 1 :]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, train_recipe, train_env) -> Path:
    """An uninterrupted run of MAX_STEPS steps (engine run directly, one process): its output dir."""
    run_dir = tmp_path_factory.mktemp("reference")
    recipe = train_recipe(run_dir, max_steps=MAX_STEPS, save_steps=SAVE_STEPS)
    r = subprocess.run(
        [sys.executable, "-m", "astrollama.train.engine", *engine_flags(recipe)],
        env=train_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return run_dir / "checkpoints"


def _copy(ckpt: Path, dest_root: Path) -> Path:
    dest = dest_root / ckpt.name
    shutil.copytree(ckpt, dest)
    return dest


def test_complete_checkpoint_rules(reference, tmp_path):
    good = reference / f"checkpoint-{SAVE_STEPS}"
    assert check_checkpoint(good).complete, check_checkpoint(good).reason
    damage = {
        "optimizer.pt": "no optimizer state",
        "scheduler.pt": "no scheduler.pt",
        "model.safetensors": "no model weights",
        "trainer_state.json": "no trainer_state.json",
    }
    for i, (name, reason) in enumerate(damage.items()):
        d = _copy(good, tmp_path / f"case{i}")
        (d / name).unlink()
        c = check_checkpoint(d)
        assert not c.complete and reason in c.reason
    d = _copy(good, tmp_path / "torn-rng")
    rng = next(d.glob("rng_state*.pth"))
    rng.write_bytes(rng.read_bytes()[:20])  # a kill while writing
    assert "is torn" in check_checkpoint(d).reason
    d = _copy(good, tmp_path / "wrong-step")
    d = d.rename(d.with_name("checkpoint-99"))
    assert "global_step" in check_checkpoint(d).reason


def test_newest_complete_wins_and_torn_newer_ones_are_moved_aside(reference, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for step in (SAVE_STEPS, 2 * SAVE_STEPS):
        _copy(reference / f"checkpoint-{step}", out)
    torn = _copy(reference / f"checkpoint-{3 * SAVE_STEPS}", out)
    (torn / "scheduler.pt").unlink()
    assert latest_complete_checkpoint(out) == out / f"checkpoint-{2 * SAVE_STEPS}"
    moved = quarantine_incomplete(out)
    assert [(m.parent, m.name.startswith(f"checkpoint-{3 * SAVE_STEPS}-")) for m in moved] == [
        (tmp_path / "out.incomplete", True)
    ]  # out of the output dir: LMFlow sees checkpoints only
    assert sorted(p.name for p in out.iterdir()) == [
        f"checkpoint-{SAVE_STEPS}",
        f"checkpoint-{2 * SAVE_STEPS}",
    ]


def _steps(text: str) -> list[int]:
    return [int(m.group(1)) for m in STEP_RE.finditer(text)]


def test_sigusr1_saves_at_the_current_step_and_the_rerun_resumes(
    reference, train_recipe, train_env, tmp_path
):
    run_dir = tmp_path / "run"
    recipe = train_recipe(run_dir, max_steps=MAX_STEPS, save_steps=SAVE_STEPS)
    cmd = ["bash", str(REPO / "slurm" / "cpt.sh"), str(recipe)]
    first = subprocess.Popen(
        cmd, cwd=REPO, env=train_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / f"checkpoint-{SAVE_STEPS}").exists():
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGUSR1)  # to cpt.sh, as Slurm's --signal=B:USR1 would
    out1, _ = first.communicate(timeout=300)
    assert first.returncode == REQUEUE_EXIT_CODE, out1[-3000:]
    steps1 = _steps(out1)
    k = steps1[-1]
    assert SAVE_STEPS <= k < MAX_STEPS, f"stopped at {k}"
    assert steps1 == list(range(1, k + 1))
    assert check_checkpoint(run_dir / "checkpoints" / f"checkpoint-{k}").complete  # saved at the stop step
    assert "stop requested (stop file" in out1 or "stop requested (signal" in out1

    second = subprocess.run(cmd, cwd=REPO, env=train_env, capture_output=True, text=True, timeout=600)
    out2 = second.stdout + second.stderr
    assert second.returncode == 0, out2[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / f'checkpoint-{k}'}" in out2
    steps2 = _steps(out2)
    assert steps2 == list(range(k + 1, MAX_STEPS + 1))  # each step exactly once across attempts

    final = json.loads((run_dir / "checkpoints" / "trainer_state.json").read_text())
    ref = json.loads((reference / "trainer_state.json").read_text())
    assert final["global_step"] == ref["global_step"] == MAX_STEPS
    losses = [e["loss"] for e in final["log_history"] if "loss" in e]
    ref_losses = [e["loss"] for e in ref["log_history"] if "loss" in e]
    assert len(losses) == MAX_STEPS
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses), rtol=1e-4, atol=1e-4)
    w, w_ref = (
        load_file(run_dir / "checkpoints" / "model.safetensors"),
        load_file(reference / "model.safetensors"),
    )
    assert w.keys() == w_ref.keys()
    for name in w:
        torch.testing.assert_close(w[name], w_ref[name], rtol=1e-4, atol=1e-5, msg=name)

    attempts = sorted(p.name for p in (run_dir / "provenance").iterdir() if p.name.startswith("attempt-"))
    assert len(attempts) == 2
    launch2 = json.loads((run_dir / "provenance" / attempts[1] / "launch.json").read_text())
    assert launch2["resume_from_checkpoint"].endswith(f"checkpoint-{k}")
    for f in (
        "recipe.yaml",
        "recipe.json",
        "git.json",
        "pip-freeze.txt",
        "environment.json",
        "launch.txt",
        "batch.txt",
    ):
        assert (run_dir / "provenance" / attempts[0] / f).stat().st_size > 0, f
    assert "torch==" in (run_dir / "provenance" / attempts[0] / "pip-freeze.txt").read_text()
