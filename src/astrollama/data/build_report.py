"""The BUILD stage's report of one variant: ``stats.json`` (its content: :func:`variant_stats`),
``stats.md`` and ``length_hist.png``."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from astrollama.data.build_config import BuildConfig
from astrollama.data.decontam import Benchmark


class SplitTotals(Protocol):
    """What the report reads of a written split: tokens per document and characters."""

    tokens: Sequence[int]
    characters: int


def _split_stats(w: SplitTotals, shards: int) -> dict[str, Any]:
    toks = np.asarray(w.tokens, dtype=np.int64)
    return {
        "papers": len(toks),
        "tokens": int(toks.sum()),
        "characters": int(w.characters),
        "shards": shards,
        "tokens_per_paper": (
            {
                "mean": round(float(np.mean(toks)), 1),
                **{f"p{q}": int(np.percentile(toks, q)) for q in (5, 50, 95)},
                "max": int(toks.max()),
            }
            if len(toks)
            else None
        ),
    }


def variant_stats(
    variant: str,
    n_unique: int,
    splits: dict[str, SplitTotals],
    reasons: Counter[str],
    shards: dict[str, int],
    cfg: BuildConfig,
    tok: str | None,
    bench: Benchmark | None,
    contamination: list[dict[str, Any]],
    quality: dict[str, Any],
) -> dict[str, Any]:
    return {
        "variant": variant,
        "papers_in": n_unique + reasons.get("duplicate_id", 0),
        "papers_out": len(splits["train"].tokens) + len(splits["validation"].tokens),
        "train": _split_stats(splits["train"], shards["train"]),
        "validation": _split_stats(splits["validation"], shards["validation"]),
        "tokenizer": Path(tok).name if tok else None,
        "tokens_note": "content tokens (no BOS/EOS); LMFlow adds one BOS per document",
        "drops": dict(sorted(reasons.items())),
        "quality": quality,  # raw macros, dangling ... (a sample of the kept papers)
        "decontamination": {
            "benchmark": Path(bench.path).name if bench else None,
            "questions": bench.questions if bench else 0,
            "documents_matched": len(contamination),
            "questions_hit": len({q for c in contamination for q in c["questions"]}),
            "action": cfg.decontam_action,
        },
        "settings": asdict(cfg),
    }


def stats_markdown(s: dict[str, Any]) -> str:
    lines = [
        f"# Corpus `{s['variant']}`",
        "",
        f"Papers in: {s['papers_in']}; kept: {s['papers_out']}. Tokenizer: `{s['tokenizer']}` "
        f"({s['tokens_note']}).",
        "",
        "| split | papers | tokens | characters | shards | tokens/paper p5 / p50 / p95 |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for split in ("train", "validation"):
        x = s[split]
        tp = x["tokens_per_paper"]
        dist = f"{tp['p5']} / {tp['p50']} / {tp['p95']}" if tp else "-"
        lines.append(
            f"| {split} | {x['papers']} | {x['tokens']} | {x['characters']} | {x['shards']} | {dist} |"
        )
    lines += [
        "",
        "Dropped papers by reason (details in drops.jsonl):",
        "",
        "| reason | papers |",
        "|---|---:|",
    ]
    lines += [f"| {r} | {n} |" for r, n in s["drops"].items()] or ["| (none) | 0 |"]
    dc, q = s["decontamination"], s["quality"]
    lines += [
        "",
        f"Decontamination: benchmark `{dc['benchmark']}` ({dc['questions']} questions, "
        f"{s['settings']['decontam_ngram']}-grams): {dc['documents_matched']} papers matched "
        f"{dc['questions_hit']} questions; action: {dc['action']} (decontamination.json).",
        "",
        f"Text quality (kept papers; `astrollama data quality`): {q['macros_per_100k']} raw LaTeX "
        f"macros per 100k characters outside math, {q['dangling']} dangling citation leftovers, "
        f"{q['control']} control characters.",
        "",
        "![token length histogram](length_hist.png)",
        "",
    ]
    return "\n".join(lines)


def length_histogram(tokens: dict[str, Sequence[int]], path: Path, variant: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train, val = list(tokens["train"]), list(tokens["validation"])
    allt = train + val or [0]
    lo, hi = min(allt), max(allt)
    bins = np.linspace(lo, hi + 1, min(40, max(5, int(math.sqrt(len(allt))) + 1)))
    ax.hist(
        [train, val],
        bins=bins,
        stacked=True,
        label=["train", "validation"],
    )
    ax.axvline(
        float(np.median(allt)), color="k", linestyle="--", linewidth=1, label=f"median {int(np.median(allt))}"
    )
    ax.set_xlabel("tokens per paper")
    ax.set_ylabel("papers")
    ax.set_title(f"{variant}: token length")
    ax.legend()
    fig.tight_layout()
    with open(path, "wb") as fh:
        fig.savefig(fh, format="png", metadata={"Software": None})
    plt.close(fig)
