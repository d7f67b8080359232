"""Perplexity on held-out documents (AstroLLaMA-1's metric), with fixed semantics.

Semantics (stated once, used everywhere: the demo, checkpoint sweeps, the report):

* Each document is tokenised on its own with the tokenizer's special tokens, i.e. with BOS and
  without EOS, exactly as LMFlow tokenises ``text_only`` data for training.
* A document longer than ``block_size`` tokens is scored with a sliding window: windows of at most
  ``block_size`` tokens start every ``stride`` tokens (token 0, ``stride``, ``2*stride``, ...). A
  token is predicted once, in the first window whose new part contains it, never twice.
* ``stride < block_size``: every token after the first is predicted, each with at least
  ``block_size - stride`` tokens of context (smaller stride = more context = lower perplexity).
* ``stride == block_size``: disjoint blocks, exactly how training sees packed ``block_size``
  chunks: the first token of every block is context only, so a document of ``n`` tokens has
  ``n - ceil(n / block_size)`` predicted tokens (reported as ``n_tokens``).
* Token 0 (BOS when the tokenizer adds one) is context, never a target. Perplexity =
  exp(total NLL / number of predicted tokens), token-weighted across documents (not a mean of
  per-document perplexities). Logits are upcast to float32 before the loss.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from astrollama.cli_args import MAX_TOKENS, number
from astrollama.evaluation.settings import ScoringSettings
from astrollama.io import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    nll: float  # mean negative log-likelihood per predicted token (nats)
    n_tokens: int  # predicted tokens
    n_documents: int
    block_size: int
    stride: int
    # per-document NLL sums and predicted-token counts, in input order (for intervals; not in to_dict)
    doc_nll: tuple[float, ...] = field(default=(), repr=False)
    doc_tokens: tuple[int, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["doc_nll"], d["doc_tokens"]
        return d

    def bootstrap_ci(self, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
        """Percentile 95% interval of the perplexity, resampling DOCUMENTS with replacement."""
        import numpy as np

        from astrollama.evaluation.stats import bootstrap_ci

        nll, tok = np.asarray(self.doc_nll), np.asarray(self.doc_tokens, dtype=np.float64)
        return bootstrap_ci(
            len(nll),
            lambda idx: np.exp(nll[idx].sum(1) / np.maximum(tok[idx].sum(1), 1)),
            n_resamples=n_boot,
            seed=seed,
        )


def _windows(n: int, block_size: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_new) windows over a sequence of n tokens; targets are the last n_new.

    The target positions of consecutive windows are contiguous and disjoint: ``[prev_end, end)``.
    A target at a window's first position (``stride == block_size``) has no context in the window
    and is dropped by the one-token shift of the loss; see the module docstring.
    """
    out, prev_end, begin = [], 1, 0  # token 0 (BOS) is never a target
    while prev_end < n:
        end = min(begin + block_size, n)
        n_new = end - prev_end
        if n_new > 0:
            out.append((begin, end, n_new))
        prev_end = end
        begin += stride
    return out


def perplexity(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    block_size: int = 512,
    stride: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = False,
) -> PerplexityResult:
    """Token-weighted perplexity of ``texts`` (semantics in the module docstring).

    Windows of all documents are scored in length-sorted, right-padded batches of ``batch_size``;
    padding never changes a score (attention mask + ignored labels).
    """
    import torch

    stride = block_size if stride is None else stride
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2 (a target needs context), got {block_size}")
    if not 0 < stride <= block_size:
        raise ValueError(f"stride must be in (0, block_size={block_size}], got {stride}")
    if not texts:
        raise ValueError("perplexity: no documents")
    device = torch.device(device) if device else next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    items: list[tuple[list[int], int, int]] = []  # (window ids, number of targets at its end, doc)
    for d, t in enumerate(texts):
        ids = tokenizer(t, add_special_tokens=True)["input_ids"]
        for b, e, n_new in _windows(len(ids), block_size, stride):
            items.append((ids[b:e], n_new, d))
    items.sort(key=lambda x: len(x[0]))  # length-sorted batches waste little padding
    doc_nll, doc_tok = [0.0] * len(texts), [0] * len(texts)
    model.eval()
    it = range(0, len(items), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="perplexity", unit="batch")
    for i in it:
        batch = items[i : i + batch_size]
        width = max(len(ids) for ids, _, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for r, (ids, n_new, _) in enumerate(batch):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            attn[r, : len(ids)] = 1
            labels[r, len(ids) - n_new : len(ids)] = torch.tensor(ids[len(ids) - n_new :])
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=attn.to(device)).logits.float()
        shift_labels = labels[:, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), shift_labels, ignore_index=-100, reduction="none"
        ).sum(1)  # per window
        counts = (shift_labels != -100).sum(1)
        for r, (_, _, d) in enumerate(batch):
            doc_nll[d] += float(nll[r])
            doc_tok[d] += int(counts[r])
    total_nll, total_tok = math.fsum(doc_nll), sum(doc_tok)
    if total_tok == 0:
        raise ValueError("perplexity: no token to predict (every document is a single token)")
    mean = total_nll / total_tok
    return PerplexityResult(
        math.exp(mean), mean, total_tok, len(texts), block_size, stride, tuple(doc_nll), tuple(doc_tok)
    )


def perplexity_report(
    model_dir: str | os.PathLike[str],
    data: str | os.PathLike[str],
    settings: ScoringSettings = ScoringSettings(),
    *,
    out: str | os.PathLike[str] | None = None,
    model_and_tokenizer: tuple | None = None,
) -> dict:
    """Perplexity of a checkpoint on held-out documents, as a JSON-ready dict with its settings.

    ``data`` is an LMFlow ``text_only`` directory, a ``text_only`` .json or a JSONL file; the
    fields of ``settings`` used: ``block_size``, ``stride``, ``batch_size``, ``max_docs`` and, to
    load the model, ``base``, ``dtype``, ``device``. With
    ``out`` the dict is also written there atomically. ``model_and_tokenizer`` reuses an already
    loaded model (the demo and the sweep score several metrics on one load).
    """
    from astrollama.evaluation.common import EvalInputError, load_causal_lm, load_texts

    s = settings
    batch_size, max_docs = s.batch_size, s.max_docs
    texts = load_texts(data, max_docs=max_docs)
    model, tok = model_and_tokenizer or load_causal_lm(model_dir, base=s.base, dtype=s.dtype, device=s.device)
    t0 = time.perf_counter()
    try:
        res = perplexity(
            model, tok, texts, block_size=s.block_size, stride=s.stride, batch_size=batch_size, progress=True
        )
    except ValueError as e:
        raise EvalInputError(f"{data}: {e}") from e
    seconds = time.perf_counter() - t0
    log.info(
        "perplexity %s on %s: %.4f over %d tokens (%d docs, %.1fs)",
        model_dir,
        data,
        res.perplexity,
        res.n_tokens,
        res.n_documents,
        seconds,
    )
    report = {
        "metric": "perplexity",
        **res.to_dict(),
        "ci95": list(res.bootstrap_ci()),  # documents resampled, 2000 draws, seed 0
        "model": str(model_dir),
        "data": str(data),
        "settings": {
            "block_size": res.block_size,
            "stride": res.stride,
            "batch_size": batch_size,
            "max_docs": max_docs,
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "device": str(next(model.parameters()).device),
            "bos": tok.bos_token,
            "adds_bos": _adds_bos(tok),
            "eos_appended": False,
            "semantics": "token-weighted; BOS/first token context only; sliding window (see docs/eval-report.md)",
        },
        "versions": library_versions(),
        "seconds": round(seconds, 3),
    }
    if out:
        atomic_write_json(out, report)
    return report


def _adds_bos(tok) -> bool:
    ids = tok("a", add_special_tokens=True)["input_ids"]
    return tok.bos_token_id is not None and bool(ids) and ids[0] == tok.bos_token_id


def library_versions() -> dict[str, str]:
    """Versions of the libraries that move a score, written beside every number."""
    import platform

    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def register(subparsers) -> None:
    """``astrollama eval ppl``: perplexity of one checkpoint on held-out documents."""
    p = subparsers.add_parser(
        "ppl",
        help="perplexity on held-out documents (sliding window, BOS never scored)",
        description="Token-weighted perplexity of a checkpoint on held-out documents; writes JSON "
        "with the settings. Semantics: docs/eval-report.md.",
    )
    p.add_argument("--model", required=True, help="checkpoint directory (full model or LoRA adapter)")
    p.add_argument("--base", default=None, help="base model directory for a LoRA adapter checkpoint")
    p.add_argument(
        "--data", required=True, help="LMFlow text_only directory, text_only .json or JSONL (text)"
    )
    p.add_argument(
        "--block-size",
        type=number(int, min=2, cap=MAX_TOKENS),
        default=512,
        help="window length in tokens (default 512)",
    )
    p.add_argument(
        "--stride", type=number(int, min=1), default=None, help="window step (default = block size: disjoint)"
    )
    p.add_argument("--batch-size", type=number(int, min=1), default=8)
    p.add_argument(
        "--max-docs", type=number(int, min=1), default=None, help="score only the first N documents"
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cpu)")
    p.add_argument("--out", required=True, help="output JSON file")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from astrollama.evaluation.common import EvalInputError
    from astrollama.io import claim_file, json_file_with

    # --out: a new file or this command's earlier output, writable: checked before the model loads
    claim_file(args.out, "eval perplexity", is_own=json_file_with(metric="perplexity"))

    stride = args.block_size if args.stride is None else args.stride
    if stride > args.block_size:
        raise EvalInputError(f"--stride must be in (0, --block-size={args.block_size}], got {stride}")
    rep = perplexity_report(args.model, args.data, ScoringSettings.from_args(args), out=args.out)
    print(
        f"perplexity {rep['perplexity']:.4f} ({rep['n_tokens']} tokens, {rep['n_documents']} docs) -> {args.out}"
    )
    return 0
