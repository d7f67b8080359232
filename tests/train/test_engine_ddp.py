"""torchrun with 2 CPU processes (gloo) trains exactly like 1 process at the same global batch.

Both runs use the commands ``build_launch`` makes for the recipe (so the flags of
``astrollama.train.lmflow.finetune_args``, including ``--average_tokens_across_devices False``):
1 process x micro-batch 4 versus 2 processes x micro-batch 2. With packed blocks every token
counts, so the logged per-step losses and the final weights must agree, i.e. the loss is averaged
over the global batch once, not summed over processes (the "~2x loss" trap of lmflow.md) and the
processes really form one DDP group (without ``use_cpu`` on a CPU-only machine each process would
silently train its own model).
"""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from astrollama.train.launch import build_launch
from astrollama.train.recipe import load_recipe

pytestmark = pytest.mark.slow
MAX_STEPS = 6


def _train(recipe_path, procs: int, env: dict) -> tuple[list[float], dict, str]:
    recipe = load_recipe(recipe_path)
    plan = build_launch(recipe, nodes=["localhost"], gpus_per_node=procs)
    assert plan.batch.world_size == procs and plan.batch.global_batch_size == 4
    r = subprocess.run(plan.commands[0], env={**env, **plan.env}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    state = json.loads((plan.output_dir / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    return losses, load_file(plan.output_dir / "model.safetensors"), r.stdout + r.stderr


def test_two_processes_equal_one_process(train_recipe, train_env, tmp_path):
    one = train_recipe(tmp_path / "one", max_steps=MAX_STEPS, save_steps=100, procs=1)
    two = train_recipe(tmp_path / "two", max_steps=MAX_STEPS, save_steps=100, procs=2)
    l1, w1, _ = _train(one, 1, train_env)
    l2, w2, out2 = _train(two, 2, train_env)
    assert "[rank 1]" in out2  # two ranks really ran
    assert len(l1) == len(l2) == MAX_STEPS
    assert l1[-1] < l1[0]  # it learned something, so equality below is not trivial
    torch.testing.assert_close(torch.tensor(l2), torch.tensor(l1), rtol=1e-4, atol=1e-4)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-5, msg=name)
