"""The local training engine: LMFlow's ``examples/finetune.py`` flags, ``transformers.Trainer`` inside.

Run it exactly like LMFlow's script, under torchrun (1..N processes; gloo on CPU, NCCL on GPUs)::

    torchrun --nproc_per_node 2 -m astrollama.train.engine \\
        --model_name_or_path M --dataset_path DIR --block_size 512 --disable_group_texts False \\
        --output_dir OUT --per_device_train_batch_size 4 ... (any transformers.TrainingArguments)

It accepts the LMFlow argument names listed in :class:`ModelArguments` and :class:`DataArguments`
plus every ``TrainingArguments`` field; any other flag is an error (nothing is silently ignored).
A single ``*.json`` argument is read as an arguments file, like LMFlow.

Data semantics are LMFlow's: ``text_only`` directories (see :func:`tokenize_and_group`) and
``conversation`` directories for SFT (``--conversation_template``; loss on assistant turns only,
see :mod:`astrollama.train.chat` and :func:`make_blocks`).

Resume and preemption:

* If ``output_dir`` holds ``checkpoint-N`` directories, training resumes from the newest COMPLETE
  one (``astrollama.train.checkpoints``); incomplete ones newer than it are moved aside first.
  ``--resume_from_checkpoint PATH`` overrides the choice.
* SIGUSR1/SIGTERM or ``$ASTROLLAMA_STOP_FILE`` -> a checkpoint is saved at the end of the current
  optimizer step on every rank and the process exits with 75 (``REQUEUE_EXIT_CODE``).
* A finished run saves the final model (+ tokenizer) and ``trainer_state.json`` in ``output_dir``
  (like LMFlow); a LoRA run saves the adapter, or the merged model with ``--save_aggregated_lora``.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

log = logging.getLogger("astrollama.train")

IGNORE_INDEX = -100  # label value the loss skips (padding)


@dataclass
class ModelArguments:
    """The LMFlow ``ModelArguments`` this engine supports (same names, same defaults)."""

    model_name_or_path: str = field(metadata={"help": "HF checkpoint directory (or hub name where online)"})
    torch_dtype: str | None = field(
        default=None,
        metadata={
            "help": "auto, bfloat16, float16 or float32 (None: float32, like LMFlow on transformers 4)",
            "choices": ["auto", "bfloat16", "float16", "float32"],
        },
    )
    trust_remote_code: bool = field(default=False)
    use_flash_attention: bool = field(
        default=False,
        metadata={"help": "flash_attention_2 where CUDA and flash_attn exist; else ignored (warned)"},
    )
    use_lora: bool = field(default=False)
    lora_r: int = field(default=8)
    lora_alpha: int = field(default=32)
    lora_dropout: float = field(default=0.1)
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "module names; default: peft's choice for the architecture"}
    )
    save_aggregated_lora: bool = field(default=False, metadata={"help": "merge LoRA into the final model"})
    truncate_to_model_max_length: bool = field(
        default=True, metadata={"help": "clip block_size to the tokenizer's model_max_length"}
    )
    arch_type: str = field(default="decoder_only", metadata={"choices": ["decoder_only"]})


@dataclass
class DataArguments:
    """The LMFlow ``DatasetArguments`` (+ ``eval_dataset_path``) this engine supports."""

    dataset_path: str = field(
        metadata={"help": "a DIRECTORY of LMFlow text_only or conversation *.json files"}
    )
    eval_dataset_path: str | None = field(
        default=None,
        metadata={"help": "held-out directory of the same type; evaluated at eval steps (loss only)"},
    )
    conversation_template: str | None = field(
        default=None, metadata={"help": "conversation datasets: LMFlow template name (astrollama.train.chat)"}
    )
    train_on_prompt: bool = field(
        default=False,
        metadata={"help": "conversation datasets: loss on user turns too (LMFlow's default: False)"},
    )
    block_size: int | None = field(
        default=None,
        metadata={
            "help": "tokens per training sequence (None: the tokenizer's model_max_length, like LMFlow)"
        },
    )
    disable_group_texts: bool = field(
        default=True,
        metadata={
            "help": "True: cut every document at block_size and pad (LMFlow >= v0.0.8 default); "
            "False: concatenate documents and cut block_size chunks (packing)"
        },
    )
    group_texts_batch_size: int = field(
        default=1000, metadata={"help": "documents concatenated together; each group's remainder is dropped"}
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "accepted; tokenising is in-process"}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "keep only the first N blocks"})


# ----------------------------------------------------------------------------------------------
# Data: LMFlow semantics
# ----------------------------------------------------------------------------------------------
def tokenize_and_group(
    docs: list[str],
    tokenizer,
    *,
    block_size: int,
    disable_group_texts: bool,
    group_texts_batch_size: int = 1000,
    truncate_at: int | None = None,
) -> dict[str, list[list[int]]]:
    """Turn documents into training blocks exactly as LMFlow does for a ``text_only`` dataset.

    * Each document is tokenised on its own with the tokenizer's special tokens: a LLaMA-style
      tokenizer adds BOS per document; NO EOS is appended. ``labels`` start as ``input_ids``.
    * ``truncate_at``: each document's tokens are first cut to this many (on the tokenizer's
      ``truncation_side``), as LMFlow's tokenizer call does with LoRA or without packing
      (``truncation=True``, i.e. at ``model_max_length``), BEFORE any packing.
    * ``disable_group_texts=True``: each document is cut to ``block_size`` tokens (on the
      tokenizer's ``truncation_side``) or padded up to it (on its ``padding_side``) with the pad
      token, attention 0 and label -100. One block per document; the rest of a long one is lost.
    * ``disable_group_texts=False``: documents are taken ``group_texts_batch_size`` at a time; each
      group is concatenated and cut into consecutive ``block_size`` chunks; the group's remainder
      (< block_size tokens) is DROPPED. labels == input_ids, attention all 1, and no attention
      mask between documents that share a block.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    enc = tokenizer(list(docs), add_special_tokens=True)
    ids: list[list[int]] = [list(x) for x in enc["input_ids"]]
    if truncate_at is not None:
        left = tokenizer.truncation_side == "left"
        ids = [x[-truncate_at:] if left and len(x) > truncate_at else x[:truncate_at] for x in ids]
    return make_blocks(
        [(x, list(x)) for x in ids],
        tokenizer,
        block_size=block_size,
        disable_group_texts=disable_group_texts,
        group_texts_batch_size=group_texts_batch_size,
    )


def make_blocks(
    seqs: list[tuple[list[int], list[int]]],
    tokenizer,
    *,
    block_size: int,
    disable_group_texts: bool,
    group_texts_batch_size: int = 1000,
) -> dict[str, list[list[int]]]:
    """LMFlow's blocking of tokenised sequences ``(input_ids, labels)``: without grouping each one is
    cut or padded to ``block_size`` (see :func:`tokenize_and_group`); with grouping they are
    concatenated ``group_texts_batch_size`` at a time, labels included (so the -100 of a
    conversation's user turns stay where they were), and cut into ``block_size`` chunks."""
    out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    if disable_group_texts:
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token to pad blocks with")
        for x, lab in seqs:
            if len(x) >= block_size:
                keep = (
                    slice(None, block_size)
                    if tokenizer.truncation_side == "right"
                    else slice(-block_size, None)
                )
                x, mask, lab = x[keep], [1] * block_size, lab[keep]
            else:
                n = block_size - len(x)
                if tokenizer.padding_side == "left":
                    x, mask, lab = [pad_id] * n + x, [0] * n + [1] * len(x), [IGNORE_INDEX] * n + lab
                else:
                    x, mask, lab = x + [pad_id] * n, [1] * len(x) + [0] * n, lab + [IGNORE_INDEX] * n
            out["input_ids"].append(list(x))
            out["attention_mask"].append(mask)
            out["labels"].append(list(lab))
        return out
    for g in range(0, len(seqs), group_texts_batch_size):
        flat = list(chain.from_iterable(x for x, _ in seqs[g : g + group_texts_batch_size]))
        flat_labels = list(chain.from_iterable(lab for _, lab in seqs[g : g + group_texts_batch_size]))
        usable = (len(flat) // block_size) * block_size
        for i in range(0, usable, block_size):
            out["input_ids"].append(flat[i : i + block_size])
            out["attention_mask"].append([1] * block_size)
            out["labels"].append(flat_labels[i : i + block_size])
    return out


def conversation_blocks(
    convs: list[dict],
    tokenizer,
    *,
    template: str | None,
    block_size: int,
    disable_group_texts: bool,
    group_texts_batch_size: int = 1000,
    train_on_prompt: bool = False,
) -> dict[str, list[list[int]]]:
    """Training blocks of a ``conversation`` dataset, as LMFlow builds them: each conversation
    encoded with the template (:func:`astrollama.train.chat.encode_conversation`; loss on assistant
    turns only unless ``train_on_prompt``), no truncation before grouping, then :func:`make_blocks`."""
    from astrollama.train.chat import encode_conversation

    if template is None:
        raise ValueError(
            "a conversation dataset needs --conversation_template (LMFlow would fall back to the "
            "tokenizer's jinja template, which the local engine does not implement)"
        )
    seqs = [encode_conversation(c, tokenizer, template, train_on_prompt=train_on_prompt) for c in convs]
    return make_blocks(
        seqs,
        tokenizer,
        block_size=block_size,
        disable_group_texts=disable_group_texts,
        group_texts_batch_size=group_texts_batch_size,
    )


class BlockDataset:
    """A list of equal-length blocks as a map-style dataset for ``default_data_collator``."""

    def __init__(self, blocks: dict[str, list[list[int]]]) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks["input_ids"])

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {k: v[i] for k, v in self.blocks.items()}


_NO_MAX_LENGTH = 10**18  # transformers' "no limit" model_max_length is ~1e30


def effective_block_size(data_args: DataArguments, model_args: ModelArguments, tokenizer) -> int:
    """The block length LMFlow would use: ``--block_size`` (None: the tokenizer's model_max_length);
    without packing every document is cut at min(block_size, model_max_length); with packing a
    block_size above model_max_length is clipped to it unless ``--truncate_to_model_max_length False``."""
    model_max = int(min(getattr(tokenizer, "model_max_length", None) or _NO_MAX_LENGTH, _NO_MAX_LENGTH))
    if data_args.block_size is None:
        if model_max >= _NO_MAX_LENGTH:
            raise ValueError(
                "--block_size not given and the tokenizer sets no model_max_length: pass --block_size"
            )
        log.warning(
            "--block_size not given: using the tokenizer's model_max_length %d (as LMFlow); always pass it",
            model_max,
        )
        return model_max
    if data_args.block_size > model_max and (
        data_args.disable_group_texts or model_args.truncate_to_model_max_length
    ):
        log.warning(
            "block_size %d > model_max_length %d: using %d", data_args.block_size, model_max, model_max
        )
        return model_max
    return data_args.block_size


def truncation_length(data_args: DataArguments, model_args: ModelArguments, tokenizer) -> int | None:
    """Where LMFlow cuts each ``text_only`` document before grouping: at model_max_length with LoRA
    or without packing (its tokenizer call gets ``truncation=True``), nowhere otherwise."""
    model_max = getattr(tokenizer, "model_max_length", None) or _NO_MAX_LENGTH
    if (model_args.use_lora or data_args.disable_group_texts) and model_max < _NO_MAX_LENGTH:
        return int(model_max)
    return None


def build_blocks(
    path: str, tokenizer, data_args: DataArguments, block_size: int, truncate_at: int | None = None
) -> BlockDataset:
    from astrollama.lmflow_data import CONVERSATION, dataset_type, read_conversation_dir, read_text_only_dir

    if dataset_type(path) == CONVERSATION:
        docs = read_conversation_dir(path)
        blocks = conversation_blocks(
            docs,
            tokenizer,
            template=data_args.conversation_template,
            block_size=block_size,
            disable_group_texts=data_args.disable_group_texts,
            group_texts_batch_size=data_args.group_texts_batch_size,
            train_on_prompt=data_args.train_on_prompt,
        )
    else:
        docs = read_text_only_dir(path)
        blocks = tokenize_and_group(
            docs,
            tokenizer,
            block_size=block_size,
            disable_group_texts=data_args.disable_group_texts,
            group_texts_batch_size=data_args.group_texts_batch_size,
            truncate_at=truncate_at,
        )
    n = len(blocks["input_ids"])
    if n == 0:
        raise ValueError(
            f"{path}: no training block of {block_size} tokens (documents too short for packing?)"
        )
    kept = sum(sum(1 for t in lab if t != IGNORE_INDEX) for lab in blocks["labels"])
    log.info(
        "%s: %d documents -> %d blocks of %d tokens (%d target tokens; %s)",
        path,
        len(docs),
        n,
        block_size,
        kept,
        "packed" if not data_args.disable_group_texts else "one block per document, cut/padded",
    )
    return BlockDataset(blocks)


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------
def _target_modules(values: list[str] | None) -> list[str] | None:
    """LoRA target modules given as separate words and/or comma-joined (LMFlow splits on commas)."""
    if not values:
        return None
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


def load_model(model_args: ModelArguments):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtypes = {
        None: torch.float32,
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
        "auto": "auto",
    }
    kwargs: dict[str, Any] = {
        "dtype": dtypes[model_args.torch_dtype],
        "trust_remote_code": model_args.trust_remote_code,
    }
    if model_args.use_flash_attention:
        import importlib.util

        if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
            kwargs["attn_implementation"] = "flash_attention_2"
        else:
            log.warning("--use_flash_attention ignored: needs CUDA and the flash_attn package")
    from astrollama.untrusted import check_model_dir

    if Path(model_args.model_name_or_path).is_dir():  # a local checkpoint: checked before loading
        check_model_dir(model_args.model_name_or_path)
    # padding_side="right": LMFlow's ModelArguments.padding_side default, passed to its tokenizer
    tok = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code, padding_side="right"
    )
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **kwargs)
    if model_args.use_lora:
        from peft import LoraConfig, TaskType, get_peft_model

        cfg = LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=_target_modules(model_args.lora_target_modules),
        )
        model = get_peft_model(model, cfg)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log.info(
            "LoRA r=%d alpha=%d: %d trainable parameters", model_args.lora_r, model_args.lora_alpha, trainable
        )
    return model, tok


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------
def with_use_cpu(argv: list[str]) -> list[str]:
    """``argv`` plus ``--use_cpu True`` where no CUDA device exists and the flag is not given.

    Without it, accelerate forms no gloo DDP group on a CPU-only machine: every torchrun process
    would silently train its own copy of the model on the whole dataset (true of LMFlow's
    finetune.py as well, which the shim runs with this too).
    """
    import torch

    if torch.cuda.is_available() or any(a == "--use_cpu" or a.startswith("--use_cpu=") for a in argv):
        return argv
    return [*argv, "--use_cpu", "True"]


def cpu_bf16_units(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> list[str]:
    """The bfloat16 arithmetic this CPU reports: x86 ``amx_bf16`` (matrix tiles) and ``avx512_bf16``,
    Arm ``bf16``; ``[]`` where it has none or the platform gives no ``/proc/cpuinfo``."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    words: set[str] = set()
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in ("flags", "features"):
            words.update(value.split())
    return [unit for unit in ("amx_bf16", "avx512_bf16", "bf16") if unit in words]


def training_precision(bf16: bool, use_cpu: bool, units: list[str] | None = None) -> str:
    """How a run trains: ``bf16 autocast`` or ``float32`` (+ why, for the log and the provenance).

    On CPU, ``bf16`` holds only where the CPU has bfloat16 units (:func:`cpu_bf16_units`): without
    them torch emulates bfloat16, slower than float32 and less exact, so such a run trains in float32.
    """
    if not bf16:
        return "float32"
    if not use_cpu:
        return "bf16 autocast"
    units = cpu_bf16_units() if units is None else units
    if units:
        return f"bf16 autocast on CPU ({', '.join(units)})"
    return "float32 (bf16 requested, but this CPU has no bfloat16 units)"


def parse_args(argv: list[str]):
    """Parse LMFlow-style flags (or one ``*.json`` arguments file); unknown names are an error.

    ``--bf16 True`` on a CPU without bfloat16 units becomes float32 (:func:`training_precision`).
    """

    import torch
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    if len(argv) == 1 and argv[0].endswith(".json"):
        from astrollama.untrusted import read_json

        values = read_json(argv[0], "config")  # regular, bounded, a JSON object
        if not torch.cuda.is_available():  # see with_use_cpu
            values.setdefault("use_cpu", True)
        parsed = parser.parse_dict(values, allow_extra_keys=False)
        if _bf16_unsupported(parsed[2]):
            parsed = parser.parse_dict({**values, "bf16": False}, allow_extra_keys=False)
        return parsed
    # return_remaining_strings=False: an unknown flag raises instead of being ignored
    argv = with_use_cpu(argv)
    parsed = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=False)
    if _bf16_unsupported(parsed[2]):  # argparse keeps the last of a repeated flag
        parsed = parser.parse_args_into_dataclasses(
            args=[*argv, "--bf16", "False"], return_remaining_strings=False
        )
    return parsed


def _bf16_unsupported(training_args) -> bool:
    precision = training_precision(training_args.bf16, training_args.use_cpu)
    if training_args.bf16 and precision.startswith("float32"):
        log.warning("--bf16 True on CPU: %s; training in float32", precision)
        return True
    return False


def _resume_point(training_args) -> str | None:
    from astrollama.train.checkpoints import latest_complete_checkpoint, quarantine_incomplete

    if training_args.resume_from_checkpoint:
        return training_args.resume_from_checkpoint
    out = Path(training_args.output_dir)
    with training_args.main_process_first(local=False, desc="checking checkpoints"):
        if training_args.process_index == 0:
            quarantine_incomplete(out)
        ckpt = latest_complete_checkpoint(out)
    return str(ckpt) if ckpt else None


def train(model_args: ModelArguments, data_args: DataArguments, training_args) -> int:
    """Train; return 0 when finished, REQUEUE_EXIT_CODE when stopped early on request."""
    from transformers import Trainer, default_data_collator, set_seed

    from astrollama.train.preempt import (
        REQUEUE_EXIT_CODE,
        PreemptionCallback,
        StepLogCallback,
        StopRequest,
        barrier,
    )

    stop = StopRequest().install()
    set_seed(training_args.seed)
    log.info("precision: %s", training_precision(training_args.bf16, training_args.use_cpu))
    model, tok = load_model(model_args)
    block_size = effective_block_size(data_args, model_args, tok)
    cut = truncation_length(data_args, model_args, tok)
    train_ds = build_blocks(data_args.dataset_path, tok, data_args, block_size, cut)
    if data_args.max_train_samples is not None:
        train_ds = BlockDataset({k: v[: data_args.max_train_samples] for k, v in train_ds.blocks.items()})
    eval_ds = (
        build_blocks(data_args.eval_dataset_path, tok, data_args, block_size, cut)
        if data_args.eval_dataset_path
        else None
    )
    resume = _resume_point(training_args)
    preempt = PreemptionCallback(stop)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tok,
        data_collator=default_data_collator,
        callbacks=[preempt, StepLogCallback()],
    )
    expected = int(os.environ.get("WORLD_SIZE", "1"))
    if training_args.world_size != expected:
        raise RuntimeError(
            f"torchrun started {expected} processes but the Trainer sees world_size={training_args.world_size}"
        )
    if trainer.is_world_process_zero():
        if resume:
            log.info("resuming from %s", resume)
        else:
            log.info("starting fresh (no complete checkpoint in %s)", training_args.output_dir)
    result = trainer.train(resume_from_checkpoint=resume)
    if preempt.stopped_at is not None and trainer.state.global_step < trainer.state.max_steps:
        barrier()  # every rank has finished writing its part of the checkpoint
        return REQUEUE_EXIT_CODE
    if model_args.use_lora and model_args.save_aggregated_lora:
        merged = trainer.model.merge_and_unload()
        if trainer.is_world_process_zero():
            merged.save_pretrained(training_args.output_dir)
            tok.save_pretrained(training_args.output_dir)
    else:
        trainer.save_model()  # the model (or LoRA adapter) + tokenizer, into output_dir
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        log.info(
            "finished: global_step=%d, final model in %s", trainer.state.global_step, training_args.output_dir
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        model_args, data_args, training_args = parse_args(argv)
    except ValueError as e:
        print(f"astrollama.train.engine: {e}", file=sys.stderr)
        return 2
    return train(model_args, data_args, training_args)


if __name__ == "__main__":
    raise SystemExit(main())
