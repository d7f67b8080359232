"""Document embeddings and the spread of their pairwise cosine similarities (AstroLLaMA-1).

Fixed semantics:

* A document's embedding is the mean of the model's LAST-layer hidden states (the decoder output
  after its final norm, ``model.base_model(...).last_hidden_state``) over its tokens, EXCLUDING the
  first token when it is BOS (AstroLLaMA-1). Tokenizers that add no BOS (SmolLM2) keep every token.
  Documents are truncated to ``max_length`` tokens (BOS included); no EOS is appended.
* The similarity distribution is the set of cosine similarities of all unordered pairs of
  distinct documents (``n (n - 1) / 2`` values). AstroLLaMA-1 reads a WIDER distribution (lower
  mean, larger spread) as more discriminative embeddings of astronomy text.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from astrollama.cli_args import number
from astrollama.io import Legacy, atomic_path, atomic_write_json, claim_dir, owned_dir

log = logging.getLogger(__name__)

PERCENTILES = (5, 25, 50, 75, 95)
PAIRS_FILE = "similarity_pairs.npz"  # every pair similarity per model (m0, m1, ... in label order)


# the output's owner marker (astrollama.io); an output of an earlier version: its similarity.json
# with nothing beside it but similarity.png
OWNER = "eval embed"
LEGACY = (
    Legacy(
        "similarity.json",
        check=lambda d: isinstance(d, dict) and d.get("metric") == "pairwise_cosine_similarity",
        only=frozenset({"similarity.json", "similarity.png", PAIRS_FILE}),
    ),
)


def embed_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    max_length: int = 512,
    batch_size: int = 8,
    progress: bool = False,
) -> np.ndarray:
    """``[n, hidden]`` float32 embeddings: mean last-layer hidden state without the BOS token."""
    import torch

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    bos = tokenizer.bos_token_id
    encoded: list[tuple[list[int], int]] = []  # (ids, first position that is averaged)
    for i, t in enumerate(texts):
        ids = tokenizer(t, add_special_tokens=True)["input_ids"][:max_length]
        skip = 1 if bos is not None and ids and ids[0] == bos else 0
        if len(ids) <= skip:
            raise ValueError(f"document {i} has no tokens besides BOS")
        encoded.append((ids, skip))
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out = np.zeros((len(encoded), model.config.hidden_size), dtype=np.float32)
    decoder = model.base_model
    it = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="embeddings", unit="batch")
    for start in it:
        idx = order[start : start + batch_size]
        width = max(len(encoded[i][0]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        keep = torch.zeros((len(idx), width), dtype=torch.float32)
        for r, i in enumerate(idx):
            ids, skip = encoded[i]
            input_ids[r, : len(ids)] = torch.tensor(ids)
            attn[r, : len(ids)] = 1
            keep[r, skip : len(ids)] = 1.0
        with torch.no_grad():
            hidden = decoder(input_ids=input_ids.to(device), attention_mask=attn.to(device)).last_hidden_state
        hidden = hidden.float().cpu()
        mean = (hidden * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
        out[idx] = mean.numpy()
    return out


def pairwise_cosine(emb: np.ndarray) -> np.ndarray:
    """Cosine similarities of all unordered pairs of distinct rows (upper triangle, row-major)."""
    if emb.ndim != 2 or emb.shape[0] < 2:
        raise ValueError(f"need at least 2 embeddings, got shape {emb.shape}")
    x = emb.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    i, j = np.triu_indices(x.shape[0], k=1)
    return (x @ x.T)[i, j]


def similarity_stats(sims: np.ndarray) -> dict:
    """Summary of a similarity distribution: mean, std, min, max and percentiles."""
    stats = {
        "n_pairs": int(sims.size),
        "mean": float(sims.mean()),
        "std": float(sims.std()),
        "min": float(sims.min()),
        "max": float(sims.max()),
    }
    stats.update(
        {f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(sims, PERCENTILES), strict=True)}
    )
    return stats


def plot_similarity_hist(
    sims: dict[str, np.ndarray], path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Each model's similarity distribution: one panel per model and their cumulative curves
    (:func:`astrollama.evaluation.figures.similarity_figure`)."""
    from astrollama.evaluation.figures import plot_similarity

    return plot_similarity(sims, path, title=title)


def starts_with_bos(tokenizer, text: str) -> bool:
    """Whether the tokenizer puts its BOS token first (then :func:`embed_texts` leaves it out)."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer(text)["input_ids"][0] == bos


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Labels made unique by appending ``-2``, ``-3`` ... to repeats."""
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab}-{seen[lab]}")
    return out


def compare_embeddings(
    models: Sequence[tuple[str, str | os.PathLike[str]]],
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_docs: int | None = None,
    max_length: int = 512,
    batch_size: int = 8,
    base: str | None = None,
    dtype: str = "float32",
    device: str | None = None,
    loaded: dict[str, tuple] | None = None,
    embedded: dict[str, tuple[np.ndarray, bool]] | None = None,
) -> dict:
    """Embed the same documents with each ``(label, model_dir)``; write stats and a histogram.

    Writes ``out_dir/similarity.json`` (per-model summary statistics + settings) and
    ``out_dir/similarity.png``. ``loaded`` maps a label to an already loaded ``(model, tokenizer)``;
    ``embedded`` maps a label to its already computed ``(embed_texts(...) of these documents,
    whether the tokenizer put a BOS first)`` (:mod:`astrollama.evaluation.pool` embeds in workers).
    """
    from astrollama.evaluation.common import EvalInputError, load_causal_lm, load_texts
    from astrollama.evaluation.perplexity import library_versions

    claim_dir(out_dir, OWNER, legacy=LEGACY)  # someone else's directory: refused before any work
    texts = load_texts(data, max_docs=max_docs)
    if len(texts) < 2:
        raise EvalInputError(f"{data}: need at least 2 documents for pairwise similarities")
    sims: dict[str, np.ndarray] = {}
    per_model: dict[str, dict] = {}
    for label, model_dir in models:
        if embedded and label in embedded:
            emb, bos_excluded = embedded[label]
        else:
            model, tok = (loaded or {}).get(label) or load_causal_lm(
                model_dir, base=base, dtype=dtype, device=device
            )
            emb = embed_texts(model, tok, texts, max_length=max_length, batch_size=batch_size, progress=True)
            bos_excluded = starts_with_bos(tok, texts[0])
        sims[label] = pairwise_cosine(emb)
        per_model[label] = {
            "model": str(model_dir),
            "hidden_size": int(emb.shape[1]),
            "bos_excluded": bool(bos_excluded),
            **similarity_stats(sims[label]),
        }
        log.info(
            "embeddings %s: mean cosine %.4f, std %.4f over %d pairs",
            label,
            per_model[label]["mean"],
            per_model[label]["std"],
            sims[label].size,
        )
    with owned_dir(out_dir, OWNER, legacy=LEGACY) as out:  # rendered whole, then renamed
        png = plot_similarity_hist(sims, out / "similarity.png")
        with atomic_path(out / PAIRS_FILE) as tmp, open(tmp, "wb") as fh:  # the report redraws from these
            np.savez(fh, **{f"m{i}": s for i, s in enumerate(sims.values())})
        report = {
            "metric": "pairwise_cosine_similarity",
            "data": str(data),
            "n_documents": len(texts),
            "models": per_model,
            "settings": {
                "pooling": "mean of last-layer hidden states, BOS excluded",
                "max_length": max_length,
                "batch_size": batch_size,
                "max_docs": max_docs,
                "dtype": dtype,
            },
            "versions": library_versions(),
            "plot": png.name,
            "pairs": {"file": PAIRS_FILE, "labels": list(sims)},
        }
        atomic_write_json(out / "similarity.json", report)
    return report


def _label_from_path(path: str) -> str:
    name = Path(path).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def register(subparsers) -> None:
    """``astrollama eval embed``: similarity distributions of two (or more) models, one histogram."""
    p = subparsers.add_parser(
        "embed",
        help="pairwise cosine similarity of abstract embeddings, histogram comparing models",
        description="Mean last-layer embeddings (BOS excluded) of held-out documents for each model; "
        "writes OUT/similarity.json (mean, std, percentiles) and OUT/similarity.png.",
    )
    p.add_argument(
        "--model", action="append", required=True, help="checkpoint directory (repeat: base, trained)"
    )
    p.add_argument("--label", action="append", default=None, help="display label per --model (same order)")
    p.add_argument("--base", default=None, help="base model directory for LoRA adapter checkpoints")
    p.add_argument(
        "--data", required=True, help="LMFlow text_only directory, text_only .json or JSONL (text)"
    )
    p.add_argument(
        "--max-docs",
        type=number(int, min=2),
        default=200,
        help="first N documents (pairs grow as N^2; default 200)",
    )
    p.add_argument("--max-length", type=number(int, min=2), default=512)
    p.add_argument("--batch-size", type=number(int, min=1), default=8)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from astrollama.evaluation.common import EvalInputError

    labels = args.label or [_label_from_path(m) for m in args.model]
    if len(labels) != len(args.model):
        raise EvalInputError(f"--label given {len(labels)} times for {len(args.model)} --model")
    rep = compare_embeddings(
        list(zip(unique_labels(labels), args.model, strict=True)),
        args.data,
        args.out,
        max_docs=args.max_docs,
        max_length=args.max_length,
        batch_size=args.batch_size,
        base=args.base,
        dtype=args.dtype,
        device=args.device,
    )
    for label, m in rep["models"].items():
        print(f"{label}: mean {m['mean']:.4f} std {m['std']:.4f} p5 {m['p5']:.4f} p95 {m['p95']:.4f}")
    print(f"-> {Path(args.out) / 'similarity.png'}")
    return 0
