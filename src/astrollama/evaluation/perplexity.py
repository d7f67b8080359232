"""Perplexity on held-out documents (AstroLLaMA-1's metric), with fixed semantics.

Semantics (stated once, used everywhere: the demo, checkpoint sweeps, the report):

* Each document is tokenised on its own with the tokenizer's special tokens, i.e. with BOS and
  without EOS, exactly as LMFlow tokenises ``text_only`` data for training.
* A document longer than ``block_size`` tokens is scored with a sliding window: windows of at most
  ``block_size`` tokens start every ``stride`` tokens; each token is predicted once, in the first
  window whose new part contains it, with up to ``block_size - stride`` tokens of context before it.
  ``stride == block_size`` gives disjoint blocks; smaller strides give more context (lower ppl).
* BOS is context, never a target. Perplexity = exp(total NLL / number of predicted tokens),
  token-weighted across documents (not a mean of per-document perplexities).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    nll: float  # mean negative log-likelihood per predicted token (nats)
    n_tokens: int  # predicted tokens
    n_documents: int
    block_size: int
    stride: int

    def to_dict(self) -> dict:
        return asdict(self)


def _windows(n: int, block_size: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_new) windows over a sequence of n tokens; targets are the last n_new."""
    out, prev_end, begin = [], 1, 0  # token 0 (BOS) is never a target
    while prev_end < n:
        end = min(begin + block_size, n)
        n_new = end - prev_end
        if n_new > 0:
            out.append((begin, end, n_new))
        prev_end = end
        begin += stride
    return out


@torch.no_grad()
def perplexity(
    model, tokenizer, texts: Sequence[str], *, block_size: int = 512, stride: int | None = None,
    batch_size: int = 8, device: str | torch.device | None = None, progress: bool = False,
) -> PerplexityResult:
    stride = block_size if stride is None else stride
    if not 0 < stride <= block_size:
        raise ValueError(f"stride must be in (0, block_size={block_size}], got {stride}")
    if not texts:
        raise ValueError("perplexity: no documents")
    device = torch.device(device) if device else next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    items: list[tuple[list[int], int]] = []  # (window ids, number of targets at its end)
    for t in texts:
        ids = tokenizer(t, add_special_tokens=True)["input_ids"]
        for b, e, n_new in _windows(len(ids), block_size, stride):
            items.append((ids[b:e], n_new))
    items.sort(key=lambda x: len(x[0]))  # length-sorted batches waste little padding
    total_nll, total_tok = 0.0, 0
    model.eval()
    it = range(0, len(items), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="perplexity", unit="batch")
    for i in it:
        batch = items[i : i + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for r, (ids, n_new) in enumerate(batch):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            attn[r, : len(ids)] = 1
            labels[r, len(ids) - n_new : len(ids)] = torch.tensor(ids[len(ids) - n_new :])
        logits = model(input_ids=input_ids.to(device), attention_mask=attn.to(device)).logits.float()
        shift_logits = logits[:, :-1].reshape(-1, logits.size(-1))
        shift_labels = labels[:, 1:].reshape(-1).to(device)
        nll = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
        total_nll += float(nll)
        total_tok += int((shift_labels != -100).sum())
    mean = total_nll / max(total_tok, 1)
    return PerplexityResult(math.exp(mean), mean, total_tok, len(texts), block_size, stride)
