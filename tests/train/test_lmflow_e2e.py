"""The REAL LMFlow ``examples/finetune.py`` (the pinned commit) trains through
``bash slurm/cpt.sh RECIPE launch.engine=lmflow``, stops, resumes, and computes exactly what the
local engine computes.

A tiny random LLaMA on a 4-shard corpus whose directory listing is NOT sorted (LMFlow lists files in
directory order; the shim sorts them like the local engine). Two scenarios, each compared step for
step with an uninterrupted local-engine run of the same recipe (the final ``trainer_state.json``
holds every step's loss, across attempts):

* full CPT, packing off, 2 processes (gloo): SIGUSR1 to cpt.sh mid-run -> checkpoint at that step,
  exit 75, output dir holds checkpoints only -> rerun resumes there and finishes;
* LoRA, packing on, 1 process, a tokenizer with ``model_max_length`` 96 (LMFlow truncates each
  document there before packing): a torn ``checkpoint-3`` is there before the first start (moved
  out of the output dir, or LMFlow would refuse to start) -> kill -9 of the whole process tree after
  a checkpoint -> another torn checkpoint planted -> rerun resumes from the newest complete one.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from astrollama.lmflow_data import read_text_only_dir, write_text_only
from astrollama.models import DEFAULT_TINY_TEXT
from astrollama.train.checkpoints import CHECKPOINT_RE, check_checkpoint, latest_complete_checkpoint
from astrollama.train.preempt import REQUEUE_EXIT_CODE

REPO = Path(__file__).resolve().parents[2]
STEP_RE = re.compile(r"optimizer step (\d+)/(\d+) done")
MAX_STEPS, SAVE_STEPS = 100, 10
pytestmark = [pytest.mark.lmflow, pytest.mark.slow]

RECIPE = """
name: tiny-lmflow
reproduces: "none: LMFlow end-to-end test"
model:
  name_or_path: {model}
  torch_dtype: float32
{lora}
data:
  dataset_path: {data}
  block_size: 64
  packing: {packing}
  preprocessing_num_workers: 1
batch:
  global_batch_size: 4
  max_micro_batch_size: {micro}
launch:
  engine: lmflow
  gpus_per_node: {procs}
  run_dir: {run_dir}
trainer:
  use_cpu: true  # CPU on purpose
  learning_rate: {lr}
  max_steps: {max_steps}
  save_steps: {save_steps}
  logging_steps: 1
  report_to: none
  seed: 7
  ddp_find_unused_parameters: false
"""
LORA = "  lora: {r: 4, alpha: 8, dropout: 0.1}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """60 documents in 4 text_only shards, written until the directory lists them out of order."""
    words = DEFAULT_TINY_TEXT.split()
    rng = random.Random(1)
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 120))) for _ in range(60)]
    names = [f"shard-{i:05d}.json" for i in range(4)]
    for attempt in range(20):
        d = tmp_path_factory.mktemp("corpus") / "train"
        order = list(range(4))
        random.Random(attempt).shuffle(order)  # creation order (tmpfs lists by it, ext4 by name hash)
        for i in order:
            write_text_only(d / names[i], docs[15 * i : 15 * (i + 1)])
        if [p.name for p in d.glob("*.json")] != names:
            return d
    pytest.fail("could not make a directory whose listing is unsorted: the order check would prove nothing")


@pytest.fixture(scope="module")
def tiny96(tiny_model, tmp_path_factory) -> Path:
    """tiny_model with tokenizer model_max_length 96 (the corpus' longest documents are longer)."""
    d = tmp_path_factory.mktemp("models") / "tiny96"
    shutil.copytree(tiny_model, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    (d / "tokenizer_config.json").write_text(json.dumps(cfg | {"model_max_length": 96}))
    return d


def write_recipe(
    path: Path, run_dir: Path, *, model: Path, data: Path, packing: bool, procs: int, lora: bool
) -> Path:
    path.write_text(
        RECIPE.format(
            model=model,
            data=data,
            packing=str(packing).lower(),
            micro=4 // procs,
            procs=procs,
            run_dir=run_dir,
            lora=LORA if lora else "",
            lr=1.0e-2 if lora else 1.0e-3,
            max_steps=MAX_STEPS,
            save_steps=SAVE_STEPS,
        )
    )
    return path


class CptRun:
    """``bash slurm/cpt.sh RECIPE ...`` in the background, its output collected line by line."""

    def __init__(self, recipe: Path, env: dict[str, str], *overrides: str) -> None:
        self.proc = subprocess.Popen(
            ["bash", "slurm/cpt.sh", str(recipe), *overrides],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not any(pattern in line for line in list(self.lines)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill_tree()
                pytest.fail(f"no {pattern!r} (exit {self.proc.poll()}); output tail:\n{self.text[-4000:]}")
            time.sleep(0.02)

    def finish(self, timeout: float = 900) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill_tree()

    def kill_tree(self) -> None:
        """SIGKILL cpt.sh and every process below it (torchrun runs in its own session), like a
        node that dies: the whole list is taken first, so nothing escapes by being re-parented."""
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=60)  # every writer is gone: the pipe ends

    def steps(self) -> list[int]:
        return [int(m.group(1)) for m in STEP_RE.finditer(self.text)]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo += children.get(q, [])
    return out


def losses(output_dir: Path) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


def assert_same_losses(lmflow_out: Path, local_out: Path) -> None:
    got, want = losses(lmflow_out), losses(local_out)
    assert len(got) == len(want) == MAX_STEPS
    assert want[-1] < want[0] - 0.1  # it learned: equality below is not trivial
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=1e-5)


def only_checkpoints(output_dir: Path) -> list[str]:
    names = sorted(p.name for p in output_dir.iterdir())
    assert all(CHECKPOINT_RE.match(n) for n in names), names  # LMFlow refuses anything else on rerun
    return names


def local_reference(recipe: Path, run_dir: Path, train_env: dict[str, str]) -> Path:
    r = subprocess.run(
        ["bash", "slurm/cpt.sh", str(recipe), "launch.engine=local", f"launch.run_dir={run_dir}"],
        cwd=REPO,
        env=train_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return run_dir / "checkpoints"


def test_full_cpt_unpacked_two_processes_stops_on_usr1_and_resumes(
    corpus, tiny_model, lmflow_env, train_env, tmp_path
):
    run_dir = tmp_path / "run"
    out = run_dir / "checkpoints"
    recipe = write_recipe(
        tmp_path / "full.yaml", run_dir, model=tiny_model, data=corpus, packing=False, procs=2, lora=False
    )

    first = CptRun(recipe, lmflow_env)
    first.wait_for("optimizer step 1/")
    first.proc.send_signal(signal.SIGUSR1)  # to cpt.sh, as Slurm's --signal=B:USR1@300 does
    assert first.finish() == REQUEUE_EXIT_CODE, first.text[-4000:]
    assert "lmflow_shim" in first.text and "examples/finetune.py" in first.text  # the real script ran
    assert first.text.count("Number of train samples: 60") == 2  # LMFlow's own data path, in 2 processes
    k = first.steps()[-1]
    assert first.steps() == list(range(1, k + 1)) and k < MAX_STEPS
    assert "stop requested (stop file" in first.text or "stop requested (signal" in first.text
    assert (
        only_checkpoints(out)[-1:] == [f"checkpoint-{k}"]
        and check_checkpoint(out / f"checkpoint-{k}").complete
    )

    second = CptRun(recipe, lmflow_env)
    assert second.finish() == 0, second.text[-4000:]
    assert f"resuming from {out / f'checkpoint-{k}'}" in second.text
    assert second.steps() == list(range(k + 1, MAX_STEPS + 1))  # every optimizer step exactly once
    assert (out / "model.safetensors").is_file()

    assert_same_losses(out, local_reference(recipe, tmp_path / "local", train_env))


def test_lora_packed_truncated_survives_torn_checkpoints_and_kill9(
    corpus, tiny96, lmflow_env, train_env, tmp_path
):
    from transformers import AutoTokenizer

    from astrollama.train.engine import tokenize_and_group

    run_dir = tmp_path / "run"
    out = run_dir / "checkpoints"
    recipe = write_recipe(
        tmp_path / "lora.yaml", run_dir, model=tiny96, data=corpus, packing=True, procs=1, lora=True
    )
    torn = out / "checkpoint-3"  # a first checkpoint a crash left half-written
    torn.mkdir(parents=True)
    (torn / "adapter_model.safetensors").write_bytes(b"\0" * 100)

    first = CptRun(recipe, lmflow_env)
    first.wait_for(f"saved checkpoint-{SAVE_STEPS}")
    first.kill_tree()  # kill -9 of everything, mid-run
    assert "starting from step 0" in first.text
    assert [p.name.startswith("checkpoint-3-") for p in (run_dir / "checkpoints.incomplete").iterdir()] == [
        True
    ]
    steps = first.steps()
    assert steps == list(range(1, len(steps) + 1)) and SAVE_STEPS <= len(steps) < MAX_STEPS, steps[-3:]
    k = latest_complete_checkpoint(out)
    assert k is not None and int(k.name.split("-")[1]) >= SAVE_STEPS
    k = int(k.name.split("-")[1])
    # LMFlow truncated every document at model_max_length before packing (the local engine does too)
    tok = AutoTokenizer.from_pretrained(tiny96)
    docs = read_text_only_dir(corpus)
    blocks = {
        cut: len(
            tokenize_and_group(docs, tok, block_size=64, disable_group_texts=False, truncate_at=cut)[
                "input_ids"
            ]
        )
        for cut in (96, None)
    }
    assert blocks[96] < blocks[None] and f"Number of train samples: {blocks[96]}" in first.text

    newer = out / f"checkpoint-{k + 1}"  # and a newer one, torn the way a kill during save leaves it
    shutil.copytree(out / f"checkpoint-{k}", newer)
    (newer / "trainer_state.json").unlink()
    second = CptRun(recipe, lmflow_env)
    assert second.finish() == 0, second.text[-4000:]
    assert f"resuming from {out / f'checkpoint-{k}'}" in second.text
    assert second.steps() == list(range(k + 1, MAX_STEPS + 1))
    assert not newer.exists() and (out / "adapter_model.safetensors").is_file()

    assert_same_losses(out, local_reference(recipe, tmp_path / "local", train_env))


SFT_RECIPE = """
name: tiny-lmflow-sft
reproduces: "none: LMFlow SFT end-to-end test"
model:
  name_or_path: {model}
  torch_dtype: float32
data:
  dataset_path: {data}
  conversation_template: chatml
  block_size: 96
  packing: false
  preprocessing_num_workers: 1
batch:
  global_batch_size: 4
  max_micro_batch_size: 4
launch:
  engine: lmflow
  gpus_per_node: 1
  run_dir: {run_dir}
trainer:
  use_cpu: true  # CPU on purpose
  learning_rate: 1.0e-3
  max_steps: {max_steps}
  save_steps: {save_steps}
  logging_steps: 1
  report_to: none
  seed: 7
"""


@pytest.fixture(scope="module")
def chat_corpus(tmp_path_factory) -> Path:
    """48 conversations (1-3 turns, with and without system prompts) in 3 conversation shards whose
    directory listing is not sorted."""
    from astrollama.lmflow_data import write_conversations

    from .conftest import make_conversations

    convs = make_conversations(48, seed=11)
    names = [f"chat-{i:05d}.json" for i in range(3)]
    for attempt in range(20):
        d = tmp_path_factory.mktemp("chat") / "train"
        order = list(range(3))
        random.Random(attempt).shuffle(order)
        for i in order:
            write_conversations(d / names[i], convs[16 * i : 16 * (i + 1)])
        if [p.name for p in d.glob("*.json")] != names:
            return d
    pytest.fail("could not make a directory whose listing is unsorted")


def test_sft_conversations_assistant_only_loss_equals_local_engine(
    chat_corpus, tiny_chat_model, lmflow_env, train_env, tmp_path
):
    """LMFlow's finetune.py on a conversation dataset with --conversation_template chatml: SIGUSR1
    mid-run, resume, and every step's loss equal to the local engine's (same tokens, same
    assistant-only labels, same blocks). A run with the loss on the prompt too differs: the mask is
    real."""
    run_dir = tmp_path / "run"
    out = run_dir / "checkpoints"
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(
        SFT_RECIPE.format(
            model=tiny_chat_model,
            data=chat_corpus,
            run_dir=run_dir,
            max_steps=MAX_STEPS,
            save_steps=SAVE_STEPS,
        )
    )

    first = CptRun(recipe, lmflow_env)
    first.wait_for("optimizer step 3/")
    first.proc.send_signal(signal.SIGUSR1)
    assert first.finish() == REQUEUE_EXIT_CODE, first.text[-4000:]
    assert "examples/finetune.py" in first.text and "--conversation_template chatml" in first.text
    assert "Number of train samples: 48" in first.text  # LMFlow's own conversation path, one block each
    k = first.steps()[-1]
    assert first.steps() == list(range(1, k + 1)) and k < MAX_STEPS

    second = CptRun(recipe, lmflow_env)
    assert second.finish() == 0, second.text[-4000:]
    assert f"resuming from {out / f'checkpoint-{k}'}" in second.text
    assert second.steps() == list(range(k + 1, MAX_STEPS + 1))

    local = local_reference(recipe, tmp_path / "local", train_env)
    assert_same_losses(out, local)
    # the same run with the loss on every token (the local engine's --train_on_prompt True) differs
    prompt_out = tmp_path / "prompt"
    args = [
        sys.executable,
        "-m",
        "astrollama.train.engine",
        "--model_name_or_path",
        str(tiny_chat_model),
        "--dataset_path",
        str(chat_corpus),
        "--conversation_template",
        "chatml",
        "--train_on_prompt",
        "True",
        "--block_size",
        "96",
        "--output_dir",
        str(prompt_out),
        "--per_device_train_batch_size",
        "4",
        "--learning_rate",
        "1e-3",
        "--max_steps",
        "3",
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        "--seed",
        "7",
        "--do_train",
        "True",
    ]
    r = subprocess.run(args, env=train_env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert losses(prompt_out)[0] != pytest.approx(losses(local)[0], rel=1e-3)
