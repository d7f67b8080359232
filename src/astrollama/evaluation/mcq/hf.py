"""The transformers backend of the MCQ scorer (CPU or GPU, batched).

``hf_letter_logprobs`` (the token method): one forward pass per question, the prefix shared by all
prompts computed once and its KV cache reused by every batch, batches sorted by length and
left-padded here, only the last position's logits computed. ``hf_generate`` (the instruct
method): greedy completions. ``resolve_device`` / ``resolve_dtype``: ``auto`` = bfloat16 on CUDA,
float32 on CPU.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Sequence
from typing import Any

from astrollama.benchmark import MCQInputError
from astrollama.evaluation.mcq.prompts import EncodedPrompt

log = logging.getLogger(__name__)


def resolve_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in {"float32", "bfloat16", "float16"}:
        raise MCQInputError(f"dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return dtype


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by all sequences."""
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def hf_letter_logprobs(
    model,
    encoded: Sequence[EncodedPrompt],
    *,
    batch_size: int = 8,
    prefix_cache: bool = True,
    progress: bool = True,
) -> tuple[list[list[float]], int]:
    """Full-vocabulary log-probabilities of the four letter tokens after each prompt.

    Returns ``(logprobs per question, number of prefix tokens computed once)``.
    """
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    seqs = [e.ids for e in encoded]
    p_len = min(common_prefix_len(seqs), min(len(s) for s in seqs) - 1) if prefix_cache else 0
    keep_last = "logits_to_keep" in inspect.signature(model.forward).parameters
    results: list[list[float]] = [[]] * len(seqs)
    with torch.inference_mode():
        prefix_kv = None
        if p_len > 0:
            prefix = torch.tensor([seqs[0][:p_len]], dtype=torch.long, device=device)
            prefix_kv = model(input_ids=prefix, use_cache=True).past_key_values
            log.info("shared prompt prefix: %d tokens, computed once", p_len)
        order = sorted(range(len(seqs)), key=lambda i: (-len(seqs[i]), i))
        bar = tqdm(total=len(seqs), desc="MCQ (token)", unit="q", disable=not progress)
        for batch in _batches(order, batch_size):
            width = max(len(seqs[i]) - p_len for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), p_len + width), dtype=torch.long)
            mask[:, :p_len] = 1
            pos = torch.ones((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):
                suffix = seqs[i][p_len:]
                start = width - len(suffix)  # left padding: every prompt ends at the last column
                ids[r, start:] = torch.tensor(suffix)
                mask[r, p_len + start :] = 1
                pos[r, start:] = torch.arange(p_len, p_len + len(suffix))
            kwargs: dict[str, Any] = {
                "input_ids": ids.to(device),
                "attention_mask": mask.to(device),
                "position_ids": pos.to(device),
            }
            if keep_last:
                kwargs["logits_to_keep"] = 1
            if prefix_kv is not None:
                cache = copy.deepcopy(prefix_kv)
                cache.batch_repeat_interleave(len(batch))
                kwargs.update(past_key_values=cache, use_cache=True)
            else:
                kwargs["use_cache"] = False
            logits = model(**kwargs).logits[:, -1, :].float()
            lp = torch.log_softmax(logits, dim=-1)
            letter_ids = torch.tensor([encoded[i].letter_ids for i in batch], device=lp.device)
            picked = torch.gather(lp, 1, letter_ids).cpu().tolist()
            for r, i in enumerate(batch):
                results[i] = picked[r]
            bar.update(len(batch))
        bar.close()
    return results, p_len


def hf_generate(
    model,
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    progress: bool = True,
) -> list[str]:
    """Greedy completions (left-padded, length-sorted batches), decoded without special tokens."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    texts: list[str] = [""] * len(prompt_ids)
    order = sorted(range(len(prompt_ids)), key=lambda i: (-len(prompt_ids[i]), i))
    bar = tqdm(total=len(prompt_ids), desc="MCQ (instruct)", unit="q", disable=not progress)
    with torch.inference_mode():
        for batch in _batches(order, batch_size):
            width = max(len(prompt_ids[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):
                ids[r, width - len(prompt_ids[i]) :] = torch.tensor(prompt_ids[i])
                mask[r, width - len(prompt_ids[i]) :] = 1
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad,
            )
            for r, i in enumerate(batch):
                texts[i] = tokenizer.decode(out[r, width:], skip_special_tokens=True)
            bar.update(len(batch))
        bar.close()
    return texts
