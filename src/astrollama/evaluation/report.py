"""The reproduction report: published numbers (with citations) beside ours (with intervals).

Two steps, two commands:

* ``astrollama eval model`` (:mod:`astrollama.evaluation.suite`): every per-model metric of one
  checkpoint into a RESULTS directory::

      RESULTS/meta.json          label, model, role (base | trained), recipe / paper_model, scale
      RESULTS/mcq/               scores.json, predictions.jsonl, submission.csv (astrollama.evaluation.mcq)
      RESULTS/ppl.json           held-out perplexity with a document-bootstrap interval
      RESULTS/completion.json    a seeded completion of eval/prompts/completion.txt

  ``meta.json`` is written last: a RESULTS directory without it is incomplete.

* ``astrollama eval report --results R1 R2 ... [--embed DIR] --out OUT``: ``OUT/report.md``,
  ``OUT/report.json``, ``OUT/table.csv`` and ``OUT/report.png`` (published vs reproduced bars with
  95% error bars). Published numbers come only from :mod:`astrollama.paper`; which published row a
  model sits beside is ``meta.paper_model`` (a row of ``MCQ_SCORES``) or, from ``meta.recipe`` (or
  ``--recipe``) and the role, the trained/base row of ``RECIPE_SCORES``. A ``scale: toy`` model
  (SmolLM2 at laptop scale) is labelled as not comparable in absolute terms: the comparable
  quantity is the change from base to trained, reported with a paired bootstrap interval.

  Three or more RESULTS directories are also read as the stages of one staged run, in the order
  given (e.g. base -> CPT -> SFT -> merged; each named by ``meta.stage``, else its label): a stage
  table with every stage's change from the previous stage and from the first (paired intervals),
  the published per-stage scores of ``astrollama.paper.STAGE_CHAINS`` beside it, and ``stages.png``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astrollama import paper
from astrollama.evaluation.figures import plot_report, plot_similarity, plot_stages
from astrollama.evaluation.stats import bootstrap_mean_ci
from astrollama.io import (
    Legacy,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    owned_dir,
    read_jsonl,
)

log = logging.getLogger(__name__)

ROLES = ("base", "trained")
SCALES = ("toy", "paper")
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
# The only published perplexities: AstroLLaMA-1 (abstracts recipe), base LLaMA-2-7B and trained.
PPL_RECIPE = "astrollama-2-7b-base_abstract"
PPL_ROWS = {"base": ("LLaMA-2-7B", "perplexity_base"), "trained": ("AstroLLaMA-1", "perplexity_astrollama")}


def check_meta(*, role: str, recipe: str | None, paper_model: str | None, scale: str, where: str) -> None:
    from astrollama.evaluation.common import EvalInputError

    if role not in ROLES:
        raise EvalInputError(f"{where}: field 'role' is {role!r}, expected one of {ROLES}")
    if scale not in SCALES:
        raise EvalInputError(f"{where}: field 'scale' is {scale!r}, expected one of {SCALES}")
    if recipe is not None and recipe not in paper.RECIPE_SCORES and recipe != PPL_RECIPE:
        raise EvalInputError(
            f"{where}: field 'recipe' is {recipe!r}, expected one of "
            f"{sorted([*paper.RECIPE_SCORES, PPL_RECIPE])}"
        )
    if paper_model is not None and paper_model not in paper.MCQ_SCORES:
        raise EvalInputError(
            f"{where}: field 'paper_model' is {paper_model!r}, not a row of astrollama.paper.MCQ_SCORES"
        )


# ------------------------------------------------------------------------------------------------
# reading RESULTS directories


@dataclass
class ModelResults:
    dir: Path
    meta: dict[str, Any]
    mcq: dict[str, Any] | None = None
    correct_by_id: dict[str, bool] = field(default_factory=dict)
    ppl: dict[str, Any] | None = None
    completion: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.meta["label"]

    @property
    def role(self) -> str:
        return self.meta["role"]

    @property
    def stage(self) -> str:
        return self.meta.get("stage") or self.label


def _read_json(path: Path, root: Path | None = None) -> dict:
    """A results file: a regular JSON object file of bounded size (astrollama.untrusted)."""
    from astrollama.evaluation.common import EvalInputError
    from astrollama.untrusted import read_json

    return read_json(path, "results", root=root, error=EvalInputError)


# Every field of a results file the report uses, typed: a string where a number belongs, a
# perplexity of 0, ``"is_correct": "no"`` are refused, never read by truthiness.


def _opt_str(obj: dict, key: str, where: Path) -> None:
    from astrollama.evaluation.common import EvalInputError

    if obj.get(key) is not None and not isinstance(obj[key], str):
        raise EvalInputError(f"{where}: field {key!r} must be a string, got {type(obj[key]).__name__}")


def _opt_number(obj: dict, key: str, where: Path, **bounds: Any) -> None:
    from astrollama.evaluation.common import EvalInputError
    from astrollama.untrusted import number_in_range

    if obj.get(key) is not None:
        number_in_range(obj[key], where, f"field {key!r}", error=EvalInputError, **bounds)


def _opt_int(obj: dict, key: str, where: Path) -> None:
    from astrollama.evaluation.common import EvalInputError
    from astrollama.untrusted import int_in_range

    if obj.get(key) is not None:
        int_in_range(obj[key], where, f"field {key!r}", lo=0, error=EvalInputError)


def _opt_ci(obj: dict, key: str, where: Path, **bounds: Any) -> None:
    from astrollama.evaluation.common import EvalInputError
    from astrollama.untrusted import number_in_range

    ci = obj.get(key)
    if ci is None:
        return
    if not isinstance(ci, list) or len(ci) != 2:
        raise EvalInputError(f"{where}: field {key!r} must be a [low, high] pair, got {ci!r:.60}")
    for k, v in enumerate(ci):
        number_in_range(v, where, f"field {key}[{k}]", error=EvalInputError, **bounds)


def _opt_dict(obj: dict, key: str, where: Path) -> None:
    from astrollama.evaluation.common import EvalInputError

    if obj.get(key) is not None and not isinstance(obj[key], dict):
        raise EvalInputError(f"{where}: field {key!r} must be an object, got {type(obj[key]).__name__}")


def check_scores(obj: dict, where: Path) -> dict:
    """``mcq/scores.json``: accuracy and its interval in [0, 1], ``n`` a count."""
    _opt_number(obj, "accuracy", where, lo=0, hi=1)
    _opt_ci(obj, "ci95", where, lo=0, hi=1)
    _opt_int(obj, "n", where)
    _opt_dict(obj, "settings", where)
    return obj


def check_ppl(obj: dict, where: Path) -> dict:
    """``ppl.json``: a perplexity (finite, > 0: it divides), its interval, counts."""
    from astrollama.evaluation.common import EvalInputError

    if "perplexity" not in obj:
        raise EvalInputError(f"{where}: field 'perplexity' is missing")
    _opt_number(obj, "perplexity", where, lo=0, lo_open=True)
    if obj["perplexity"] is None:
        raise EvalInputError(f"{where}: field 'perplexity' must be a number > 0, got None")
    _opt_ci(obj, "ci95", where, lo=0, lo_open=True)
    _opt_int(obj, "n_tokens", where)
    _opt_int(obj, "n_documents", where)
    _opt_dict(obj, "settings", where)
    return obj


def check_completion(obj: dict, where: Path) -> dict:
    """``completion.json``: the prompt, the completion and the sampling settings the report prints."""
    from astrollama.evaluation.common import EvalInputError

    for key in ("prompt", "completion"):
        if not isinstance(obj.get(key), str):
            raise EvalInputError(f"{where}: field {key!r} must be a string")
    settings = obj.get("settings")
    if not isinstance(settings, dict):
        raise EvalInputError(f"{where}: field 'settings' must be an object")
    for key in ("seed", "max_new_tokens"):
        _opt_int(settings, key, where)
    for key in ("temperature", "top_p"):
        _opt_number(settings, key, where, lo=0)
    for key in ("seed", "temperature", "top_p", "max_new_tokens"):
        if key not in settings:
            raise EvalInputError(f"{where}: field 'settings.{key}' is missing")
    return obj


def check_similarity(obj: dict, where: Path) -> dict:
    """``similarity.json`` of ``eval embed``: per-model statistics and an optional plot name."""
    from astrollama.evaluation.common import EvalInputError

    _opt_int(obj, "n_documents", where)
    if obj.get("n_documents") is None:
        raise EvalInputError(f"{where}: field 'n_documents' is missing")
    models = obj.get("models")
    if not isinstance(models, dict) or not models:
        raise EvalInputError(f"{where}: field 'models' must be a non-empty object")
    for label, m in models.items():
        if not isinstance(m, dict):
            raise EvalInputError(f"{where}: field 'models.{label}' must be an object")
        for key in ("mean", "std", "p5", "p50", "p95"):
            if key not in m:
                raise EvalInputError(f"{where}: field 'models.{label}.{key}' is missing")
            _opt_number(m, key, where, lo=-1, hi=2)
        _opt_int(m, "n_pairs", where)
    _opt_str(obj, "plot", where)
    pairs = obj.get("pairs")
    if pairs is not None and (  # the kept pair similarities: a file name and the labels, in order
        not isinstance(pairs, dict)
        or not isinstance(pairs.get("file"), str)
        or not isinstance(pairs.get("labels"), list)
        or not all(isinstance(x, str) for x in pairs["labels"])
    ):
        raise EvalInputError(f"{where}: field 'pairs' must be {{'file': str, 'labels': [str, ...]}}")
    return obj


def _read_predictions(preds: Path, need: bool) -> dict[str, bool]:
    """``id -> is_correct`` of ``predictions.jsonl``: ids required (a string or an integer),
    ``is_correct`` a JSON boolean; a repeated id with the same answer is read once, with another
    answer refused."""
    from astrollama.evaluation.common import EvalInputError
    from astrollama.untrusted import strict_bool

    out: dict[str, bool] = {}
    for i, row in read_jsonl(preds, error=EvalInputError):
        if "is_correct" not in row:
            if need:
                raise EvalInputError(f"{preds}: line {i}: field 'is_correct' is missing")
            continue
        rid = row.get("id")
        if (
            isinstance(rid, bool)
            or not isinstance(rid, (str, int))
            or (isinstance(rid, str) and not rid.strip())
        ):
            raise EvalInputError(
                f"{preds}: line {i}: field 'id' must be a non-empty string or an integer, got {rid!r:.40}"
            )
        ok = strict_bool(row["is_correct"], f"{preds}: line {i}", "field 'is_correct'", error=EvalInputError)
        key = str(rid)
        if key in out and out[key] != ok:
            raise EvalInputError(
                f"{preds}: line {i}: field 'id': {key!r} appears twice with different answers"
            )
        out[key] = ok
    return out


def load_results(path: str | os.PathLike[str], *, recipe: str | None = None) -> ModelResults:
    """Read one RESULTS directory (``meta.json`` required; every metric optional)."""
    from astrollama.evaluation.common import EvalInputError

    d = Path(path)
    if not os.path.lexists(d / "meta.json"):
        raise EvalInputError(f"{d}: no meta.json (not a results directory, or its evaluation did not finish)")
    meta = _read_json(d / "meta.json", d)
    for k in ("label", "role"):
        if not isinstance(meta.get(k), str) or not meta[k].strip():
            raise EvalInputError(f"{d / 'meta.json'}: field {k!r} is missing or not a non-empty string")
    for k in ("recipe", "paper_model", "scale", "model"):
        _opt_str(meta, k, d / "meta.json")
    if meta.get("stage") is not None and not (isinstance(meta["stage"], str) and meta["stage"].strip()):
        raise EvalInputError(f"{d / 'meta.json'}: field 'stage' must be a non-empty string")
    meta.setdefault("scale", "paper")
    if recipe:
        meta["recipe"] = recipe
    check_meta(
        role=meta["role"],
        recipe=meta.get("recipe"),
        paper_model=meta.get("paper_model"),
        scale=meta["scale"],
        where=str(d / "meta.json"),
    )
    r = ModelResults(d, meta)
    if os.path.lexists(d / "mcq" / "scores.json"):
        r.mcq = check_scores(_read_json(d / "mcq" / "scores.json", d), d / "mcq" / "scores.json")
        preds = d / "mcq" / "predictions.jsonl"
        if os.path.lexists(preds):
            r.correct_by_id = _read_predictions(preds, r.mcq.get("accuracy") is not None)
    if os.path.lexists(d / "ppl.json"):
        r.ppl = check_ppl(_read_json(d / "ppl.json", d), d / "ppl.json")
    if os.path.lexists(d / "completion.json"):
        r.completion = check_completion(_read_json(d / "completion.json", d), d / "completion.json")
    return r


# ------------------------------------------------------------------------------------------------
# published numbers


def _ref(pub: paper.Published) -> dict[str, Any]:
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
                "base": _ref(b),
                "trained_model": trained,
                "trained": _ref(t),
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


def _row(r: ModelResults) -> dict[str, Any]:
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


def _changes(results: list[ModelResults]) -> list[dict[str, Any]]:
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
                "base": _ref(paper.MCQ_SCORES[base]),
                "trained": _ref(paper.MCQ_SCORES[trained]),
            }
        if b.ppl and t.ppl:
            ch["ppl_change"] = {
                "base": b.ppl["perplexity"],
                "trained": t.ppl["perplexity"],
                "relative": t.ppl["perplexity"] / b.ppl["perplexity"] - 1,
            }
        ch["published_ppl_change"] = {
            "relative": -paper.ASTROLLAMA1["perplexity_reduction"].value,
            "reduction": _ref(paper.ASTROLLAMA1["perplexity_reduction"]),
            "base": _ref(paper.ASTROLLAMA1["perplexity_base"]),
            "trained": _ref(paper.ASTROLLAMA1["perplexity_astrollama"]),
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
                s: ({"model": m, **_ref(paper.MCQ_SCORES[m])} if m else None) for s, m in stages.items()
            },
        }
        for chain, stages in paper.STAGE_CHAINS.items()
    ]


REPORT_OWNER = "eval report"  # the output's owner marker (astrollama.io)
REPORT_LEGACY = (  # a report of an earlier version: its report.json and nothing but report files
    Legacy(
        "report.json",
        check=lambda d: isinstance(d, dict) and "models" in d and "reference" in d,
        only=frozenset(
            {"report.md", "report.json", "table.csv", "report.png", "stages.png", "similarity.png"}
        ),
    ),
)


def build_report(
    results_dirs: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    recipe: str | None = None,
    embed_dir: str | os.PathLike[str] | None = None,
    command: str | None = None,
) -> Path:
    """Write ``report.md``, ``report.json``, ``table.csv`` and ``report.png`` into ``out_dir``.

    Everything is rendered in a temporary directory renamed onto ``out_dir`` at the end (an
    earlier report there is replaced; someone else's directory is refused): a refusal or a
    failure leaves ``out_dir`` as it was."""
    with owned_dir(out_dir, REPORT_OWNER, legacy=REPORT_LEGACY) as tmp:
        _render_report(results_dirs, tmp, recipe=recipe, embed_dir=embed_dir, command=command)
    log.info("report -> %s", Path(out_dir) / "report.md")
    return Path(out_dir)


def _render_report(
    results_dirs: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    recipe: str | None = None,
    embed_dir: str | os.PathLike[str] | None = None,
    command: str | None = None,
) -> Path:
    from astrollama.evaluation.common import EvalInputError

    if not results_dirs:
        raise EvalInputError("report: no --results directories given")
    results = [load_results(d, recipe=recipe) for d in results_dirs]
    labels = [r.label for r in results]
    if len(set(labels)) != len(labels):
        raise EvalInputError(f"report: duplicate labels {labels}; give each model its own label")
    embed, redraw = None, False
    if embed_dir:
        ej = Path(embed_dir) / "similarity.json"
        if not os.path.lexists(ej):
            raise EvalInputError(f"{embed_dir}: no similarity.json (run `astrollama eval embed` first)")
        embed = check_similarity(_read_json(ej, Path(embed_dir)), ej)
        redraw = embed.get("pairs") and os.path.lexists(Path(embed_dir) / embed["pairs"]["file"])
        if embed.get("plot") and not redraw:  # a file the report copies: a PNG inside the embed dir only
            from astrollama.untrusted import read_bytes

            sim_png = read_bytes(embed["plot"], "png", root=embed_dir, error=EvalInputError, field="plot")
            if not sim_png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise EvalInputError(f"{ej}: field 'plot': {embed['plot']!r} is not a PNG file")
    out = Path(out_dir)
    rows = [_row(r) for r in results]
    changes = _changes(results)
    stages = stage_table(results)
    refs = reference_table()
    cmd = command or "astrollama eval report --results " + " ".join(str(d) for d in results_dirs)
    data = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": cmd,
        "models": rows,
        "changes": changes,
        "stages": stages,
        "stage_reference": stage_reference() if stages else [],
        "reference": refs,
        "astrollama1": {k: _ref(v) for k, v in paper.ASTROLLAMA1.items()},
        "benchmark": {k: _ref(v) for k, v in paper.BENCHMARK.items()},
        "embeddings": embed,
        "completions": [{"label": r.label, **r.completion} for r in results if r.completion],
        "mcq_settings": {r.label: (r.mcq or {}).get("settings") for r in results},
        "ppl_settings": {r.label: (r.ppl or {}).get("settings") for r in results},
    }
    png = plot_report(rows, out / "report.png")
    if stages:
        plot_stages(rows, data["stage_reference"], out / "stages.png")
    if embed and redraw:
        plot_similarity(_read_pairs(Path(embed_dir), embed["pairs"]), out / "similarity.png")
    elif embed and embed.get("plot"):  # an embed directory from before the pairs were kept
        atomic_write_bytes(out / "similarity.png", sim_png)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "table.csv", buf.getvalue())
    atomic_write_json(out / "report.json", data)
    atomic_write_text(
        out / "report.md", render_markdown(data, results, png.name, "similarity.png" if embed else None)
    )
    return out


def _read_pairs(embed_dir: Path, pairs: dict) -> dict[str, np.ndarray]:
    """The per-model pair similarities kept by ``astrollama eval embed`` (``similarity_pairs.npz``)."""
    from astrollama.evaluation.common import EvalInputError
    from astrollama.untrusted import check_file

    path = check_file(pairs["file"], "results", root=embed_dir, error=EvalInputError, field="pairs.file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {label: z[f"m{i}"] for i, label in enumerate(pairs["labels"])}
    except (OSError, ValueError, KeyError) as e:
        raise EvalInputError(f"{path}: unreadable pair similarities ({e})") from e


# ------------------------------------------------------------------------------------------------
# rendering


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _cite(source: str | None) -> str:
    return f"[{source}]" if source else ""


def _unverified(*refs: dict) -> str:
    return "" if all(r["verified"] for r in refs) else " (to confirm)"


def _mcq_cell(row: dict) -> str:
    if row["mcq_accuracy"] is None:
        return "n/a (no key)" if row["mcq_n"] else "not run"
    return f"**{_pct(row['mcq_accuracy'])}** [{_pct(row['mcq_ci_low'])}, {_pct(row['mcq_ci_high'])}] (n={row['mcq_n']})"


def _ppl_cell(row: dict) -> str:
    if row["perplexity"] is None:
        return "not run"
    if row["ppl_ci_low"] is None:
        return f"**{row['perplexity']:.2f}**"
    return f"**{row['perplexity']:.2f}** [{row['ppl_ci_low']:.2f}, {row['ppl_ci_high']:.2f}]"


def _pub_mcq_cell(row: dict) -> str:
    if row["published_mcq"] is None:
        return "-"
    src = row["published_mcq_source"]
    flag = "" if paper.MCQ_SCORES[row["published_model"]].verified else " (to confirm)"
    return f"{row['published_mcq']:.1f} ({row['published_model']}) {_cite(src)}{flag}"


def _pub_ppl_cell(row: dict) -> str:
    if row["published_perplexity"] is None:
        return "-"
    return f"{row['published_perplexity']} ({row['published_perplexity_model']}) {_cite(row['published_perplexity_source'])}"


def render_markdown(data: dict, results: list[ModelResults], png: str, sim_png: str | None) -> str:
    """The human-readable report (GitHub markdown)."""
    rows = data["models"]
    toy = any(r["scale"] == "toy" for r in rows)
    L: list[str] = ["# AstroLLaMA reproduction report", ""]
    L += [f"Generated {data['generated']} by `{data['command']}`.", ""]
    L += [
        "Our numbers: accuracy in percent on the MCQ file scored (token method, next-token "
        "probabilities of A-D), with a percentile-bootstrap 95% interval over questions; held-out "
        "perplexity (token-weighted, BOS never scored) with a 95% interval from resampling "
        "documents. Published numbers come from `astrollama.paper`, each with its source (see "
        "References).",
        "",
    ]
    if toy:
        L += [
            "> **Toy scale.** The `toy` models here are small models trained on a laptop-sized corpus and "
            "scored on a small question sample. The published column is the PAPER-SCALE reference (7B-70B models, "
            f"{paper.BENCHMARK['n_questions'].value:,} questions); it is not comparable in absolute "
            "terms. Compare the direction and size of the change from base to trained.",
            "",
        ]
    L += [
        "## Reproduced beside published",
        "",
        "| model | role | scale | MCQ accuracy, ours [95% CI] | MCQ accuracy, published | "
        "held-out perplexity, ours [95% CI] | perplexity, published |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        L.append(
            f"| {r['label']} | {r['role']} | {r['scale']} | {_mcq_cell(r)} | {_pub_mcq_cell(r)} | "
            f"{_ppl_cell(r)} | {_pub_ppl_cell(r)} |"
        )
    L += ["", *_scoring_lines(data, rows), "", f"![published vs reproduced]({png})", ""]
    if data["changes"]:
        title = (
            "Change from continued pre-training"
            if len(data["changes"]) == 1
            else "Change from the base model"
        )
        L += [f"## {title}", "", "| metric | ours | published (paper scale) |", "|---|---|---|"]
        for ch in data["changes"]:
            if "mcq_delta" in ch or "published_mcq_delta" in ch:
                ours = "-"
                if "mcq_delta" in ch:
                    d = ch["mcq_delta"]
                    ours = (
                        f"{ch['base']} -> {ch['trained']}: **{d['value']:+.1f}** points "
                        f"[{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}] (paired bootstrap, n={d['n']})"
                    )
                pub = "-"
                if "published_mcq_delta" in ch:
                    p = ch["published_mcq_delta"]
                    pub = (
                        f"{p['base_model']} {p['base']['value']} {_cite(p['base']['source'])} -> "
                        f"{p['trained_model']} {p['trained']['value']} {_cite(p['trained']['source'])}: "
                        f"{p['value']:+.1f} points{_unverified(p['base'], p['trained'])}"
                    )
                L.append(f"| MCQ accuracy | {ours} | {pub} |")
            pc = ch["published_ppl_change"]
            ours = "-"
            if "ppl_change" in ch:
                c = ch["ppl_change"]
                ours = f"{c['base']:.2f} -> {c['trained']:.2f}: **{100 * c['relative']:+.1f}%**"
            pub = (
                f"LLaMA-2-7B {pc['base']['value']} -> AstroLLaMA-1 {pc['trained']['value']} "
                f"{_cite(pc['base']['source'])}{_unverified(pc['base'], pc['trained'])}; "
                f'"~{100 * pc["reduction"]["value"]:.0f}% lower" {_cite(pc["reduction"]["source"])}'
                f"{_unverified(pc['reduction'])}"
            )
            L.append(f"| held-out perplexity | {ours} | {pub} |")
        L.append("")
    if data["stages"]:
        L += _render_stages(data, rows)
    L += [
        "## Paper-scale reference (published; not comparable in absolute terms with a toy run)",
        "",
        "AstroMLab-1 benchmark accuracy (%), token method for base models.",
        "",
        "| recipe | base model | base | trained model | trained | change |",
        "|---|---|---|---|---|---|",
    ]
    for ref in data["reference"]:
        L.append(
            f"| `{ref['recipe']}` | {ref['base_model']} | {ref['base']['value']} {_cite(ref['base']['source'])}"
            f"{_unverified(ref['base'])} | {ref['trained_model']} | "
            f"{ref['trained']['value']} {_cite(ref['trained']['source'])}{_unverified(ref['trained'])} | "
            f"{ref['delta']:+.1f} |"
        )
    a1 = data["astrollama1"]
    L += [
        "",
        "AstroLLaMA-1 (LLaMA-2-7B + LoRA on astro-ph abstracts):",
        "",
        f"- held-out perplexity: LLaMA-2-7B {a1['perplexity_base']['value']} -> AstroLLaMA-1 "
        f"{a1['perplexity_astrollama']['value']} {_cite(a1['perplexity_base']['source'])}"
        f"{_unverified(a1['perplexity_base'], a1['perplexity_astrollama'])}; "
        f'"~{100 * a1["perplexity_reduction"]["value"]:.0f}% lower" {_cite(a1["perplexity_reduction"]["source"])}'
        f"{_unverified(a1['perplexity_reduction'])}",
        f"- MMLU astronomy (lm-eval, 0-shot): LLaMA-2-7B {a1['mmlu_astronomy_llama2_7b']['value']} -> "
        f"AstroLLaMA-1 {a1['mmlu_astronomy_astrollama']['value']} {_cite(a1['mmlu_astronomy_astrollama']['source'])}"
        f"{_unverified(a1['mmlu_astronomy_llama2_7b'], a1['mmlu_astronomy_astrollama'])}",
        "",
    ]
    emb = data["embeddings"]
    if emb:
        L += [
            "## Embedding similarity",
            "",
            f"Pairwise cosine similarity of mean last-layer embeddings (BOS excluded) over "
            f"{emb['n_documents']} held-out documents ({next(iter(emb['models'].values()))['n_pairs']} pairs). "
            "A wider, lower distribution separates abstracts better (AstroLLaMA-1's reading).",
            "",
            "| model | mean | std | p5 | p50 | p95 |",
            "|---|---|---|---|---|---|",
        ]
        for label, m in emb["models"].items():
            L.append(
                f"| {label} | {m['mean']:.4f} | {m['std']:.4f} | {m['p5']:.4f} | {m['p50']:.4f} | {m['p95']:.4f} |"
            )
        L += ["", f"![similarity histogram]({sim_png})", ""]
    if data["completions"]:
        c0 = data["completions"][0]
        s = c0["settings"]
        L += [
            "## Completions",
            "",
            f"Prompt (seed {s['seed']}, temperature {s['temperature']}, top-p {s['top_p']}, "
            f"{s['max_new_tokens']} new tokens at most):",
            "",
            f"> {c0['prompt']}",
            "",
        ]
        for c in data["completions"]:
            text = c["completion"].strip().replace("\n", " ")
            L += [f"**{c['label']}**: ...{text}", ""]
    L += ["## Settings", ""]
    for r in results:
        ms = (r.mcq or {}).get("settings") or {}
        ps = (r.ppl or {}).get("settings") or {}
        L.append(
            f"- **{r.label}** ({r.meta.get('model')}): MCQ template `{_template_name(ms)}`, letter token "
            f"`{_letter_rule(ms)}`, dtype "
            f"{ms.get('dtype', 'n/a')}, batch {ms.get('batch_size', 'n/a')}; perplexity block "
            f"{ps.get('block_size', 'n/a')}, stride {ps.get('stride', 'n/a')}, "
            f"{(r.ppl or {}).get('n_tokens', 'n/a')} tokens / {(r.ppl or {}).get('n_documents', 'n/a')} docs"
        )
    L += ["", "## References", ""]
    used = sorted(
        {s for r in rows for s in (r["published_mcq_source"], r["published_perplexity_source"]) if s}
        | {x[k]["source"] for x in data["reference"] for k in ("base", "trained")}
        | {v["source"] for v in data["astrollama1"].values()}
        | {x["source"] for c in data["stage_reference"] for x in c["stages"].values() if x}
    )
    for key in used:
        src = paper.SOURCES[key]
        L.append(f"- [{key}] {src.title}. {src.url}")
    return "\n".join(L) + "\n"


def _points(d: dict | None) -> str:
    if not d or "mcq" not in d:
        return "-"
    m = d["mcq"]
    return f"{m['value']:+.1f} [{m['ci95'][0]:+.1f}, {m['ci95'][1]:+.1f}]"


def _rel(d: dict | None) -> str:
    return "-" if not d or "ppl_relative" not in d else f"{100 * d['ppl_relative']:+.1f}%"


def _render_stages(data: dict, rows: list[dict]) -> list[str]:
    """The stage table (ours) and the published per-stage chains beside it."""
    first = data["stages"][0]["stage"]
    L = [
        "## Stage by stage",
        "",
        f"The models in the order given, each stage from the one before. MCQ changes in percentage points "
        f"with a paired bootstrap 95% interval over the questions both answered; perplexity changes "
        f"relative. The first stage ({first}) is the reference.",
        "",
        "| stage | model | MCQ accuracy [95% CI] | MCQ vs previous stage | MCQ vs "
        f"{first} | held-out perplexity [95% CI] | perplexity vs previous | perplexity vs {first} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for st, r in zip(data["stages"], rows, strict=True):
        L.append(
            f"| {st['stage']} | {st['label']} | {_mcq_cell(r)} | {_points(st.get('vs_previous'))} | "
            f"{_points(st.get('vs_first'))} | {_ppl_cell(r)} | {_rel(st.get('vs_previous'))} | "
            f"{_rel(st.get('vs_first'))} |"
        )
    L += [
        "",
        'Published, stage by stage (AstroMLab-1 accuracy in %, paper scale; "-": no published score '
        "for that stage; base models by the token method, chat and merged models from their answers):",
        "",
        "| chain | " + " | ".join({"cpt": "CPT", "sft": "SFT"}.get(s, s) for s in paper.STAGES) + " |",
        "|---|" + "---|" * len(paper.STAGES),
    ]
    for c in data["stage_reference"]:
        cells = [
            ("-" if x is None else f"{x['model']} {x['value']} {_cite(x['source'])}{_unverified(x)}")
            for x in (c["stages"].get(s) for s in paper.STAGES)
        ]
        L.append(f"| {c['chain']} | " + " | ".join(cells) + " |")
    L += ["", "![stage by stage](stages.png)", ""]
    return L


def _letter_rule(settings: dict | None) -> str:
    lt = (settings or {}).get("letter_token")
    if isinstance(lt, dict):
        return str(lt.get("rule"))
    return (
        "prompt (recorded before the option existed)" if (settings or {}).get("letter_token_ids") else "n/a"
    )


def _scoring_lines(data: dict, rows: list[dict]) -> list[str]:
    """How the MCQ was scored (template, letter-token rule) and which published row each model
    stands beside, and why (``published_basis``)."""
    scoring = sorted(
        {(_template_name(s or {}), _letter_rule(s)) for s in data["mcq_settings"].values() if s is not None}
    )
    out = [
        "MCQ scoring: "
        + "; ".join(f"template `{t}`, letter token `{rule}`" for t, rule in scoring)
        + " (`--letter-token`: `prompt` = the letter's token as it follows the prompt, `reference` = "
        "`tokenizer.encode(letter, add_special_tokens=False)[-1]`; docs/eval-mcq.md)."
        if scoring
        else "MCQ: not scored."
    ]
    paired = [
        f"{r['stage']} -> {r['published_model']} ({r['published_basis']})"
        for r in rows
        if r["published_model"]
    ]
    if paired:
        out.append("Published row beside each model: " + "; ".join(paired) + ".")
    return out


def _template_name(settings: dict) -> str:
    t = settings.get("template")
    if isinstance(t, dict):
        return Path(str(t.get("path") or t.get("name") or "?")).name
    return Path(str(t)).name if t else "n/a"


# ------------------------------------------------------------------------------------------------
# CLI


def register(subparsers) -> None:
    """``astrollama eval report``: the reproduction table from RESULTS directories."""
    p = subparsers.add_parser(
        "report",
        help="published vs reproduced table + bar chart from RESULTS directories",
        description="Build OUT/report.md, report.json, table.csv and report.png from the RESULTS "
        "directories written by `astrollama eval model`.",
    )
    p.add_argument("--results", nargs="+", required=True, help="RESULTS directories (one per model)")
    p.add_argument("--embed", default=None, help="output directory of `astrollama eval embed`")
    p.add_argument(
        "--recipe",
        default=None,
        help="recipe the trained models reproduce (overrides meta.json), e.g. astrollama-3-8b-base_aic",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    cmd = (
        "astrollama eval report --results "
        + " ".join(args.results)
        + (f" --embed {args.embed}" if args.embed else "")
        + (f" --recipe {args.recipe}" if args.recipe else "")
        + f" --out {args.out}"
    )
    out = build_report(args.results, args.out, recipe=args.recipe, embed_dir=args.embed, command=cmd)
    from astrollama.untrusted import read_text

    print(read_text(out / "report.md", "results"))
    return 0
