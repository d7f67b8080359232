"""RESULTS directories as the report reads them: ``meta.json`` and every metric file, typed.

A RESULTS directory (``astrollama eval model``, :mod:`astrollama.evaluation.suite`) holds
``meta.json`` (written last: without it the directory is incomplete), ``mcq/``, ``ppl.json`` and
``completion.json``. Every file is untrusted: each field the report uses is checked (one line naming
the file and the field), never read by truthiness.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrollama import paper
from astrollama.io import read_jsonl

ROLES = ("base", "trained")
SCALES = ("toy", "paper")
# The only published perplexities: AstroLLaMA-1 (abstracts recipe), base LLaMA-2-7B and trained.
PPL_RECIPE = "astrollama-2-7b-base_abstract"


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


def read_results_json(path: Path, root: Path | None = None) -> dict:
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
    meta = read_results_json(d / "meta.json", d)
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
        r.mcq = check_scores(read_results_json(d / "mcq" / "scores.json", d), d / "mcq" / "scores.json")
        preds = d / "mcq" / "predictions.jsonl"
        if os.path.lexists(preds):
            r.correct_by_id = _read_predictions(preds, r.mcq.get("accuracy") is not None)
    if os.path.lexists(d / "ppl.json"):
        r.ppl = check_ppl(read_results_json(d / "ppl.json", d), d / "ppl.json")
    if os.path.lexists(d / "completion.json"):
        r.completion = check_completion(read_results_json(d / "completion.json", d), d / "completion.json")
    return r
