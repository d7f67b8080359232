"""LoRA through the local engine (LMFlow's --use_lora flags): adapter checkpoints count as complete,
and --save_aggregated_lora leaves a merged model every tool loads."""

from __future__ import annotations

import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from astrollama.train.checkpoints import check_checkpoint


def test_lora_trains_only_adapters_and_saves_a_merged_model(tiny_model, tiny_corpus, train_env, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "astrollama.train.engine",
            "--model_name_or_path",
            str(tiny_model),
            "--dataset_path",
            str(tiny_corpus),
            "--block_size",
            "64",
            "--disable_group_texts",
            "False",
            "--output_dir",
            str(out),
            "--per_device_train_batch_size",
            "4",
            "--max_steps",
            "4",
            "--save_steps",
            "2",
            "--learning_rate",
            "1e-2",
            "--report_to",
            "none",
            "--disable_tqdm",
            "True",
            "--use_lora",
            "True",
            "--lora_r",
            "4",
            "--lora_alpha",
            "8",
            "--lora_dropout",
            "0.0",
            "--lora_target_modules",
            "q_proj,v_proj",
            "--save_aggregated_lora",
            "True",
        ],
        env=train_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ckpt = out / "checkpoint-4"
    assert check_checkpoint(ckpt).complete
    adapter = load_file(ckpt / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert {k.split(".")[-3] for k in adapter} <= {"q_proj", "v_proj"}  # only the named modules
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert merged.keys() == base.keys()
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)
