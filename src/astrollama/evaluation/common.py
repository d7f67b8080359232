"""Shared loading helpers for the evaluation commands: held-out texts and models (full or LoRA).

* ``load_texts`` reads held-out documents from an LMFlow ``text_only`` directory (the layout the
  data stage writes), one ``text_only`` ``.json`` file, or a JSONL file with a ``text`` field per
  row. Errors name the file and the row.
* ``load_causal_lm`` loads a checkpoint directory for scoring: a full Hugging Face checkpoint, or a
  PEFT LoRA adapter directory (``adapter_config.json``), merged into its base model so that every
  metric runs on a plain ``LlamaForCausalLM``-style model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from astrollama.errors import InputError
from astrollama.io import read_jsonl
from astrollama.lmflow_data import LMFlowDataError, iter_text_only_file, read_text_only_dir

log = logging.getLogger(__name__)


class EvalInputError(InputError):
    """Bad evaluation input (a file, a field, a row); the message names it."""


def load_texts(path: str | os.PathLike[str], *, max_docs: int | None = None) -> list[str]:
    """Documents from an LMFlow ``text_only`` dir/file or a JSONL file (``{"text": ...}`` per row).

    ``max_docs`` keeps the first N documents (file order is deterministic), for quick runs.
    """
    p = Path(path)
    if not p.exists():
        raise EvalInputError(f"{p}: no such file or directory")
    try:
        if p.is_dir():
            docs = read_text_only_dir(p)
        elif p.suffix == ".jsonl":
            docs = _read_jsonl_texts(p)
        elif p.suffix == ".json":
            docs = list(iter_text_only_file(p))
        else:
            raise EvalInputError(f"{p}: expected an LMFlow text_only directory, a .json or a .jsonl file")
    except LMFlowDataError as e:
        raise EvalInputError(str(e)) from e
    if not docs:
        raise EvalInputError(f"{p}: holds no documents")
    for i, d in enumerate(docs):
        if not d.strip():
            raise EvalInputError(f"{p}: document {i} is empty")
    return docs[:max_docs] if max_docs else docs


def _read_jsonl_texts(p: Path) -> list[str]:
    docs: list[str] = []
    for lineno, row in read_jsonl(p, error=EvalInputError):
        if not isinstance(row.get("text"), str):
            raise EvalInputError(f"{p}:{lineno}: field 'text' (a string) is missing")
        docs.append(row["text"])
    return docs


def is_adapter_dir(path: str | os.PathLike[str]) -> bool:
    """True for a PEFT adapter checkpoint (LoRA) rather than a full model."""
    p = Path(path)
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def load_causal_lm(
    path: str | os.PathLike[str],
    *,
    base: str | os.PathLike[str] | None = None,
    dtype: str = "float32",
    device: str | None = None,
):
    """Load ``(model, tokenizer)`` from a checkpoint directory, in eval mode.

    A LoRA adapter directory is loaded onto ``base`` (default: the adapter's own
    ``base_model_name_or_path``) and merged. The tokenizer comes from the checkpoint directory when
    it has one, else from the base model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from astrollama.untrusted import check_model_dir, guard, read_json

    p = Path(path)
    if not p.is_dir():
        raise EvalInputError(f"{p}: model directory does not exist")
    check_device(device)
    # every file of the checkpoint checked before a library opens it (astrollama.untrusted)
    check_model_dir(p, error=EvalInputError)
    torch_dtype = getattr(torch, dtype)
    if is_adapter_dir(p):
        from peft import PeftModel

        cfg = read_json(p / "adapter_config.json", "config", error=EvalInputError)
        named = cfg.get("base_model_name_or_path")
        if base is None and named is not None and not isinstance(named, str):
            raise EvalInputError(f"{p}/adapter_config.json: base_model_name_or_path: must be a string")
        base_path = Path(base) if base else Path(named or "")
        if not base_path.is_dir():
            raise EvalInputError(
                f"{p}/adapter_config.json: base_model_name_or_path {str(base_path)!r} is not a local "
                "directory; pass the base model explicitly (--base)"
            )
        check_model_dir(base_path, error=EvalInputError)
        log.info("loading LoRA adapter %s onto %s (merged)", p, base_path)
        model = guard(
            lambda: AutoModelForCausalLM.from_pretrained(base_path, dtype=torch_dtype),
            base_path,
            "(model)",
            error=EvalInputError,
        )
        model = guard(
            lambda: PeftModel.from_pretrained(model, p).merge_and_unload(),
            p,
            "(adapter)",
            error=EvalInputError,
        )
        tok_src = p if (p / "tokenizer_config.json").is_file() else base_path
    else:
        if not (p / "config.json").is_file():
            raise EvalInputError(f"{p}: neither config.json (full model) nor adapter_config.json (LoRA)")
        model = guard(
            lambda: AutoModelForCausalLM.from_pretrained(p, dtype=torch_dtype),
            p,
            "(model)",
            error=EvalInputError,
        )
        tok_src = p
        if not (p / "tokenizer_config.json").is_file() and base:
            tok_src = Path(base)
    tokenizer = guard(
        lambda: AutoTokenizer.from_pretrained(tok_src), tok_src, "(tokenizer)", error=EvalInputError
    )
    check_vocab(model, tokenizer, p, tok_src)
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer


def check_device(device: str | None) -> None:
    """``--device``: one torch understands and this machine has (``cuda`` on a CPU-only torch is
    refused here, one line, not a traceback from the first tensor moved)."""
    if not device:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise EvalInputError(f"--device: {device!r} is not a torch device (cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EvalInputError(
                f"--device: {device!r}, but this torch sees no CUDA device; use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise EvalInputError(f"--device: {device!r}, but only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise EvalInputError(f"--device: {device!r}, but MPS is not available; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise EvalInputError(f"--device: {device!r}: only cpu, cuda[:N] and mps are supported")


def check_vocab(model, tokenizer, model_dir: Path, tok_src: Path) -> None:
    """A tokenizer whose ids run past the model's embedding table would index out of range (or
    read another token's row on GPU): refused before any scoring."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise EvalInputError(
            f"{tok_src}: (tokenizer): {len(tokenizer)} tokens, more than the {rows} rows of the "
            f"embedding table of {model_dir}; use the tokenizer the model was trained with"
        )
