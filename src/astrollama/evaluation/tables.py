"""The report's tables: published numbers (with citations) beside ours (with intervals).

Each model's row (``table.csv`` and ``report.json``'s ``models``), the base -> trained changes with
a paired bootstrap interval, the stage-by-stage table of a staged run and the published reference
tables, all from :mod:`astrollama.paper` and :class:`astrollama.evaluation.results.ModelResults`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from astrollama import paper
from astrollama.evaluation.results import PPL_RECIPE, ModelResults
from astrollama.evaluation.stats import bootstrap_mean_ci

TABLE_FIELDS = (
    "label",
    "role",
    "model",
    "mcq_accuracy",
    "mcq_ci_low",
    "mcq_ci_high",
    "mcq_n",
    "published_model",
    "published_mcq",
    "published_mcq_source",
    "perplexity",
    "ppl_ci_low",
    "ppl_ci_high",
    "published_perplexity",
    "published_perplexity_source",
    "stage",
)
PPL_ROWS = {"base": ("LLaMA-2-7B", "perplexity_base"), "trained": ("AstroLLaMA-1", "perplexity_astrollama")}


# ------------------------------------------------------------------------------------------------
# published numbers


def published_ref(pub: paper.Published) -> dict[str, Any]:
    return {
        "value": pub.value,
        "source": pub.source,
        "citation": pub.cite(),
        "verified": pub.verified,
        "note": pub.note,
    }


def published_mcq(meta: dict) -> tuple[str, paper.Published] | None:
    """The published MCQ row a model sits beside: its ``paper_model`` or its recipe's row for its role."""
    if meta.get("paper_model"):
        return meta["paper_model"], paper.MCQ_SCORES[meta["paper_model"]]
    rec = meta.get("recipe")
    if rec in paper.RECIPE_SCORES:
        name = paper.RECIPE_SCORES[rec][0 if meta["role"] == "trained" else 1]
        return name, paper.MCQ_SCORES[name]
    return None


def published_basis(meta: dict) -> str | None:
    """Why a model sits beside its published row (``report.json``: ``models[].published_basis``)."""
    if meta.get("paper_model"):
        return f"paper_model {meta['paper_model']} (meta.json)"
    rec = meta.get("recipe")
    if rec in paper.RECIPE_SCORES:
        side = "trained model" if meta["role"] == "trained" else "base model"
        return f"recipe {rec}: its {side} (role {meta['role']})"
    return None


def published_ppl(meta: dict) -> tuple[str, paper.Published] | None:
    """AstroLLaMA-1's held-out perplexity for the abstracts recipe (the only one published)."""
    if meta.get("recipe") != PPL_RECIPE:
        return None
    name, key = PPL_ROWS[meta["role"]]
    return name, paper.ASTROLLAMA1[key]


def reference_table() -> list[dict[str, Any]]:
    """Every recipe's published base -> trained MCQ scores (paper scale), from astrollama.paper."""
    rows = []
    for rec, (trained, base) in paper.RECIPE_SCORES.items():
        b, t = paper.MCQ_SCORES[base], paper.MCQ_SCORES[trained]
        rows.append(
            {
                "recipe": rec,
                "base_model": base,
                "base": published_ref(b),
                "trained_model": trained,
                "trained": published_ref(t),
                "delta": round(t.value - b.value, 2),
            }
        )
    return rows


# ------------------------------------------------------------------------------------------------
# the report


def paired_delta_ci(
    base: dict[str, bool],
    trained: dict[str, bool],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    where: str = "predictions.jsonl",
) -> tuple[float, float, float, int]:
    """Accuracy difference (trained - base) on the questions both answered, with a paired
    percentile bootstrap 95% interval (questions resampled). Returns (delta, low, high, n)."""
    from astrollama.evaluation.common import EvalInputError

    ids = sorted(set(base) & set(trained))
    if not ids:
        raise EvalInputError(f"{where}: no common question ids between the two prediction files")
    diff = np.array([float(trained[i]) - float(base[i]) for i in ids])
    lo, hi = bootstrap_mean_ci(diff, n_resamples=n_resamples, seed=seed)
    return float(diff.mean()), float(lo), float(hi), len(ids)


def model_row(r: ModelResults) -> dict[str, Any]:
    pm, pp = published_mcq(r.meta), published_ppl(r.meta)
    mcq_ci = (r.mcq or {}).get("ci95") or [None, None]
    ppl_ci = (r.ppl or {}).get("ci95") or [None, None]
    return {
        "label": r.label,
        "role": r.role,
        "model": r.meta.get("model"),
        "scale": r.meta["scale"],
        "mcq_accuracy": (r.mcq or {}).get("accuracy"),
        "mcq_ci_low": mcq_ci[0],
        "mcq_ci_high": mcq_ci[1],
        "mcq_n": (r.mcq or {}).get("n"),
        "published_model": pm[0] if pm else None,
        "published_mcq": pm[1].value if pm else None,
        "published_mcq_source": pm[1].source if pm else None,
        "published_basis": published_basis(r.meta) if pm else None,
        "perplexity": (r.ppl or {}).get("perplexity"),
        "ppl_ci_low": ppl_ci[0],
        "ppl_ci_high": ppl_ci[1],
        "published_perplexity": pp[1].value if pp else None,
        "published_perplexity_source": pp[1].source if pp else None,
        "published_perplexity_model": pp[0] if pp else None,
        "stage": r.stage,
    }


def change_table(results: list[ModelResults]) -> list[dict[str, Any]]:
    """Base -> trained changes, ours (paired interval) beside the published ones."""
    bases = [r for r in results if r.role == "base"]
    if len(bases) != 1:
        return []
    b = bases[0]
    out = []
    for t in (r for r in results if r.role == "trained"):
        ch: dict[str, Any] = {"base": b.label, "trained": t.label}
        if b.correct_by_id and t.correct_by_id:
            d, lo, hi, n = paired_delta_ci(b.correct_by_id, t.correct_by_id, where=_pair(b, t))
            ch["mcq_delta"] = {"value": 100 * d, "ci95": [100 * lo, 100 * hi], "n": n, "unit": "points"}
        rec = t.meta.get("recipe")
        if rec in paper.RECIPE_SCORES:
            trained, base = paper.RECIPE_SCORES[rec]
            ch["published_mcq_delta"] = {
                "recipe": rec,
                "base_model": base,
                "trained_model": trained,
                "value": round(paper.MCQ_SCORES[trained].value - paper.MCQ_SCORES[base].value, 2),
                "base": published_ref(paper.MCQ_SCORES[base]),
                "trained": published_ref(paper.MCQ_SCORES[trained]),
            }
        if b.ppl and t.ppl:
            ch["ppl_change"] = {
                "base": b.ppl["perplexity"],
                "trained": t.ppl["perplexity"],
                "relative": t.ppl["perplexity"] / b.ppl["perplexity"] - 1,
            }
        ch["published_ppl_change"] = {
            "relative": -paper.ASTROLLAMA1["perplexity_reduction"].value,
            "reduction": published_ref(paper.ASTROLLAMA1["perplexity_reduction"]),
            "base": published_ref(paper.ASTROLLAMA1["perplexity_base"]),
            "trained": published_ref(paper.ASTROLLAMA1["perplexity_astrollama"]),
        }
        out.append(ch)
    return out


def _pair(a: ModelResults, b: ModelResults) -> str:
    return f"{a.dir / 'mcq' / 'predictions.jsonl'} and {b.dir / 'mcq' / 'predictions.jsonl'}"


def _delta(ref: ModelResults, r: ModelResults) -> dict[str, Any]:
    """Change from ``ref`` to ``r``: MCQ points with a paired interval, relative perplexity."""
    out: dict[str, Any] = {"from": ref.stage}
    if ref.correct_by_id and r.correct_by_id:
        d, lo, hi, n = paired_delta_ci(ref.correct_by_id, r.correct_by_id, where=_pair(ref, r))
        out["mcq"] = {"value": 100 * d, "ci95": [100 * lo, 100 * hi], "n": n, "unit": "points"}
    if ref.ppl and r.ppl:
        out["ppl_relative"] = r.ppl["perplexity"] / ref.ppl["perplexity"] - 1
    return out


def stage_table(results: list[ModelResults]) -> list[dict[str, Any]]:
    """Three or more models as the stages of one run, in the order given (the first is the
    reference): each stage's numbers and its change from the previous stage and from the first."""
    if len(results) < 3:
        return []
    out = []
    for i, r in enumerate(results):
        row: dict[str, Any] = {"stage": r.stage, "label": r.label, "role": r.role}
        if i:
            row["vs_previous"] = _delta(results[i - 1], r)
            row["vs_first"] = _delta(results[0], r)
        out.append(row)
    return out


def stage_reference() -> list[dict[str, Any]]:
    """The published score of each stage of each chain in ``astrollama.paper.STAGE_CHAINS``."""
    return [
        {
            "chain": chain,
            "stages": {
                s: ({"model": m, **published_ref(paper.MCQ_SCORES[m])} if m else None)
                for s, m in stages.items()
            },
        }
        for chain, stages in paper.STAGE_CHAINS.items()
    ]
