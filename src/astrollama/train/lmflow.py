"""The one recipe -> LMFlow ``examples/finetune.py`` translation.

LMFlow commit pinned in ``envs/train-cluster.txt``: ``f3597dba134e8bb3d2cfedeaaae6fc7296ace924``
(HEAD of 2026-04-25, reports 1.1.0; runs with transformers 5.x). ``finetune.py`` parses
``HfArgumentParser((ModelArguments, DatasetArguments, FinetunerArguments))``; the local engine
(``astrollama.train.engine``) parses the same flags. Traps avoided (docs/lmflow.md):

* ``--do_train True`` always: TrainingArguments defaults it to False and LMFlow's finetuner only
  trains when it is True (without it a run loads, tokenises, writes a model card into output_dir
  and exits 0, after which every rerun is refused as "output directory not empty");

* ``--block_size`` always passed (LMFlow's default is None) and the packing choice is explicit:
  ``--disable_group_texts False`` concatenates documents into block_size chunks (packing),
  ``True`` cuts every document at block_size;
* ``--dataset_path`` is a directory of ``text_only`` JSON files, or of ``conversation`` files for SFT,
  which then get ``--conversation_template NAME`` (never LMFlow's fallback to the tokenizer's jinja
  template) and an explicit ``--train_on_prompt False`` (loss on assistant turns only);
* no ``--overwrite_output_dir`` (gone in transformers 5; a rerun must resume instead) and the
  output dir holds checkpoints only (logs go to ``<run_dir>/logs``);
* no ``--do_eval`` (it calls ``evaluate.load("accuracy")``, which needs the network);
* ``--ddp_timeout`` large (tokenisation on local rank 0 happens inside the timeout);
* ``--average_tokens_across_devices False`` (transformers 5 otherwise logs a loss ~N x too high
  with N processes under LMFlow);
* ``--save_strategy steps`` with the recipe's ``save_steps``, so preempted runs resume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from astrollama.models import resolve_model
from astrollama.train.batch import BatchPlan
from astrollama.train.recipe import Recipe

__all__ = ["LMFLOW_COMMIT", "MODEL_DATA_FLAGS", "finetune_args", "flag_value"]

LMFLOW_COMMIT = "f3597dba134e8bb3d2cfedeaaae6fc7296ace924"

# Every LMFlow ModelArguments / DatasetArguments / FinetunerArguments-only flag finetune_args can
# emit; everything else it emits is a transformers.TrainingArguments field. The local engine must
# accept exactly these.
MODEL_DATA_FLAGS = (
    "model_name_or_path",
    "torch_dtype",
    "trust_remote_code",
    "use_flash_attention",
    "use_lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "dataset_path",
    "eval_dataset_path",
    "block_size",
    "disable_group_texts",
    "preprocessing_num_workers",
    "conversation_template",
    "train_on_prompt",
)


def flag_value(value: Any) -> list[str]:
    """How HfArgumentParser wants a value: bools as True/False, lists as separate words, dicts as JSON."""
    if isinstance(value, bool):
        return [str(value)]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return [json.dumps(value, sort_keys=True)]
    if isinstance(value, float):
        return [repr(value)]
    if isinstance(value, os.PathLike):
        return [os.fspath(value)]
    return [str(value)]


def finetune_args(recipe: Recipe, plan: BatchPlan, *, output_dir: str | os.PathLike[str]) -> list[str]:
    """The exact ``finetune.py`` argument list for this recipe on this batch plan."""
    m, d, launch = recipe.model, recipe.data, recipe.launch
    args: dict[str, Any] = {
        "model_name_or_path": resolve_model(m.name_or_path),
        "torch_dtype": m.torch_dtype,
        "trust_remote_code": m.trust_remote_code,
        "use_flash_attention": m.use_flash_attention,
        "use_lora": m.lora is not None,
    }
    if m.lora is not None:
        args |= {"lora_r": m.lora.r, "lora_alpha": m.lora.alpha, "lora_dropout": m.lora.dropout}
        if m.lora.target_modules:
            args["lora_target_modules"] = ",".join(m.lora.target_modules)  # LMFlow splits on commas
    args["dataset_path"] = Path(d.dataset_path)
    if d.eval_dataset_path is not None:
        args["eval_dataset_path"] = Path(d.eval_dataset_path)
    if d.conversation_template is not None:
        args |= {"conversation_template": d.conversation_template, "train_on_prompt": False}
    args |= {
        "block_size": d.block_size,
        "disable_group_texts": not d.packing,
        "preprocessing_num_workers": d.preprocessing_num_workers,
        "output_dir": Path(output_dir),
        "do_train": True,
        "per_device_train_batch_size": plan.per_device_train_batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        "ddp_timeout": launch.ddp_timeout,
        "average_tokens_across_devices": False,
        "save_strategy": "steps",
    }
    if launch.deepspeed is not None:
        args["deepspeed"] = Path(launch.deepspeed)
    args |= recipe.trainer  # validated: never a key set above except save_strategy="steps"
    out: list[str] = []
    for key, value in args.items():
        if value is None:
            continue
        out += [f"--{key}", *flag_value(value)]
    return out
