"""The evaluation stage of the toy demo: base model vs its continued pre-training, one report.

``report_demo`` scores both models (each loaded once) on the bundled MCQ sample and the held-out
documents, compares their embedding-similarity distributions, samples a completion from each, and
builds the reproduction report with the published paper-scale table beside it (labelled as not
comparable in absolute terms). With SmolLM2-135M in float32 it takes about a minute on 2 CPU cores.
:func:`evaluate` wraps it for ``astrollama demo`` and fails loudly unless held-out perplexity dropped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from astrollama.demo import REPO, DemoError
from astrollama.io import atomic_write_json

log = logging.getLogger(__name__)

# The seed model card's recipe: its published base and trained MCQ scores sit beside ours.
DEMO_RECIPE = "astrollama-3-8b-base_summary"


def bundled_questions() -> Path:
    """``eval/data/astro_mcq_sample.jsonl``: the project's own keyed astronomy MCQs."""
    return REPO / "eval" / "data" / "astro_mcq_sample.jsonl"


def report_demo(
    base_model_dir: str | os.PathLike[str],
    trained_model_dir: str | os.PathLike[str],
    heldout_dir: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    *,
    questions: str | os.PathLike[str] | None = None,
    recipe: str = DEMO_RECIPE,
    max_docs: int = 32,
    block_size: int = 256,
    max_new_tokens: int = 40,
    seed: int = 0,
    batch_size: int = 8,
    base: str | os.PathLike[str] | None = None,
    later: dict[str, str | os.PathLike[str]] | None = None,
    workers: int | None = None,
    timings: dict[str, float] | None = None,
) -> Path:
    """Evaluate both models and write ``<workdir>/report/``; print the main table; return that dir.

    ``trained_model_dir`` may be a LoRA adapter (merged onto ``base``, default ``base_model_dir``).
    Results go to ``<workdir>/results/{base,trained}``, ``<workdir>/embeddings`` and
    ``<workdir>/report`` (report.md, report.json, table.csv, report.png, similarity.png).
    ``later`` adds the stages after CPT in order, ``{"SFT": dir, "merged": dir}``: each is scored on
    the same questions and documents (``<workdir>/results/<stage>``, without the CPT recipe's
    published row) and the report gains its stage table (base -> CPT -> ...) and ``stages.png``.
    Each model is loaded once for all its evaluations, and the models are evaluated side by side
    in ``workers`` processes (default: one per core; :mod:`astrollama.evaluation.pool`).
    ``timings`` (a dict) receives the seconds of each model's evaluation and of the report.
    """
    from astrollama.evaluation.embeddings import compare_embeddings
    from astrollama.evaluation.pool import ModelJob, ModelResult, Settings, evaluate_models
    from astrollama.evaluation.report import build_report

    t0 = time.perf_counter()
    timings = {} if timings is None else timings
    work = Path(workdir)
    questions = Path(questions) if questions else bundled_questions()
    models = {"base": Path(base_model_dir), "trained": Path(trained_model_dir)}
    labels = {"base": models["base"].name, "trained": models["trained"].name}
    if labels["trained"] in {labels["base"], "checkpoints", "output", "final"}:
        labels["trained"] = f"{labels['base']} + CPT"
    stages = {"base": "base", "trained": "CPT"} if later else {}
    for name, path in (later or {}).items():
        key = name.lower()
        models[key], stages[key] = Path(path), name
        labels[key] = f"{labels[list(labels)[-1]]} + {name}"

    jobs = [
        ModelJob(
            role,
            path,
            labels[role],
            role if role == "base" else "trained",
            recipe=recipe if role in ("base", "trained") else None,
            stage=stages.get(role),
        )
        for role, path in models.items()
    ]
    settings = Settings(
        questions=questions,
        heldout=Path(heldout_dir),
        base=Path(base or base_model_dir),
        block_size=block_size,
        max_docs=max_docs,
        batch_size=batch_size,
        seed=seed,
        max_new_tokens=max_new_tokens,
    )

    def done(r: ModelResult) -> None:
        timings[f"evaluation: {r.job.key}"] = r.seconds
        print(f"[eval] {r.job.label}: evaluated in {r.seconds:.1f} s", flush=True)

    ran = evaluate_models(jobs, settings, work / "results", workers=workers, on_done=done)
    t_report = time.perf_counter()
    compare_embeddings(
        [(labels[r], models[r]) for r in models],
        heldout_dir,
        work / "embeddings",
        max_docs=max_docs,
        max_length=block_size,
        batch_size=batch_size,
        embedded={r.job.label: (r.embeddings, r.bos_excluded) for r in ran},
    )
    out = build_report(
        [work / "results" / r for r in models],
        work / "report",
        embed_dir=work / "embeddings",
        command=f"astrollama.demo.evaluate.report_demo({base_model_dir}, {trained_model_dir}, "
        f"{heldout_dir}, {workdir})",
    )
    timings["evaluation: report"] = time.perf_counter() - t_report
    print(summary_table(out))
    log.info("evaluation report in %s (%.0f s)", out, time.perf_counter() - t0)
    return out


def summary_table(report_dir: str | os.PathLike[str]) -> str:
    """The main table and the change table of ``report.md``, for the terminal."""
    md = (Path(report_dir) / "report.md").read_text(encoding="utf-8")
    keep, on = [], False
    for line in md.splitlines():
        if line.startswith("## "):
            on = line.startswith(("## Reproduced beside published", "## Change from", "## Stage by stage"))
        if on and not line.startswith("!["):
            keep.append(line)
    return "\n".join(keep).strip() + f"\n\nFull report: {Path(report_dir) / 'report.md'}\n"


def evaluate(
    base: Path,
    trained: Path,
    heldout_dir: Path,
    workdir: Path,
    *,
    later: dict[str, Path] | None = None,
    timings: dict[str, float] | None = None,
) -> dict:
    """The evaluation report for base vs trained (and the ``later`` stages, as :func:`report_demo`
    says); raise DemoError unless held-out perplexity dropped from base to trained."""
    report_dir = report_demo(base, trained, heldout_dir, workdir / "eval", later=later, timings=timings)
    ppl = {
        role: json.loads((workdir / "eval" / "results" / role / "ppl.json").read_text())["perplexity"]
        for role in ("base", "trained", *(k.lower() for k in later or {}))
    }
    summary = {
        "heldout": str(heldout_dir),
        "report": str(report_dir),
        "perplexity": ppl,
        "relative_change": ppl["trained"] / ppl["base"] - 1.0,
    }
    atomic_write_json(workdir / "perplexity.json", summary)
    print(
        f"held-out perplexity: {ppl['base']:.3f} before -> {ppl['trained']:.3f} after training "
        f"({summary['relative_change']:+.1%})" + "".join(f"; {k} {ppl[k.lower()]:.3f}" for k in later or {}),
        flush=True,
    )
    if not ppl["trained"] < ppl["base"]:
        raise DemoError(
            f"held-out perplexity did not drop: {ppl['base']:.3f} -> {ppl['trained']:.3f} "
            f"(report: {report_dir})"
        )
    return summary
