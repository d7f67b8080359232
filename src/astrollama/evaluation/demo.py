"""The evaluation stage of the toy demo: base model vs its continued pre-training, one report.

``report_demo`` scores both models (each loaded once) on the bundled MCQ sample and the held-out
documents, compares their embedding-similarity distributions, samples a completion from each, and
builds the reproduction report with the published paper-scale table beside it (labelled as not
comparable in absolute terms). With SmolLM2-135M in float32 it takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

# The seed model card's recipe: its published base and trained MCQ scores sit beside ours.
DEMO_RECIPE = "astrollama-3-8b-base_summary"


def bundled_questions() -> Path:
    """``eval/data/astro_mcq_sample.jsonl``: the project's own keyed astronomy MCQs."""
    return Path(__file__).resolve().parents[3] / "eval" / "data" / "astro_mcq_sample.jsonl"


def report_demo(
    base_model_dir: str | os.PathLike[str], trained_model_dir: str | os.PathLike[str],
    heldout_dir: str | os.PathLike[str], workdir: str | os.PathLike[str], *,
    questions: str | os.PathLike[str] | None = None, recipe: str = DEMO_RECIPE, max_docs: int = 32,
    block_size: int = 256, max_new_tokens: int = 40, seed: int = 0, batch_size: int = 8,
    base: str | os.PathLike[str] | None = None,
) -> Path:
    """Evaluate both models and write ``<workdir>/report/``; print the main table; return that dir.

    ``trained_model_dir`` may be a LoRA adapter (merged onto ``base``, default ``base_model_dir``).
    Results go to ``<workdir>/results/{base,trained}``, ``<workdir>/embeddings`` and
    ``<workdir>/report`` (report.md, report.json, table.csv, report.png, similarity.png).
    """
    from astrollama.evaluation.common import load_causal_lm
    from astrollama.evaluation.embeddings import compare_embeddings
    from astrollama.evaluation.report import build_report
    from astrollama.evaluation.suite import evaluate_model

    t0 = time.perf_counter()
    work = Path(workdir)
    questions = Path(questions) if questions else bundled_questions()
    models = {"base": Path(base_model_dir), "trained": Path(trained_model_dir)}
    labels = {"base": models["base"].name, "trained": models["trained"].name}
    if labels["trained"] in {labels["base"], "checkpoints", "output", "final"}:
        labels["trained"] = f"{labels['base']} + CPT"

    loaded = {}
    for role, path in models.items():
        loaded[role] = load_causal_lm(path, base=base or base_model_dir)
        evaluate_model(
            path, work / "results" / role, label=labels[role], role=role, questions=questions,
            heldout=heldout_dir, recipe=recipe, scale="toy", block_size=block_size, max_docs=max_docs,
            batch_size=batch_size, seed=seed, max_new_tokens=max_new_tokens, model_and_tokenizer=loaded[role],
        )
    compare_embeddings([(labels[r], models[r]) for r in models], heldout_dir, work / "embeddings",
                       max_docs=max_docs, max_length=block_size, batch_size=batch_size,
                       loaded={labels[r]: loaded[r] for r in models})
    del loaded
    out = build_report([work / "results" / r for r in models], work / "report", embed_dir=work / "embeddings",
                       command=f"astrollama.evaluation.demo.report_demo({base_model_dir}, {trained_model_dir}, "
                       f"{heldout_dir}, {workdir})")
    print(summary_table(out))
    log.info("evaluation report in %s (%.0f s)", out, time.perf_counter() - t0)
    return out


def summary_table(report_dir: str | os.PathLike[str]) -> str:
    """The main table and the change table of ``report.md``, for the terminal."""
    md = (Path(report_dir) / "report.md").read_text(encoding="utf-8")
    keep, on = [], False
    for line in md.splitlines():
        if line.startswith("## "):
            on = line.startswith(("## Reproduced beside published", "## Change from continued"))
        if on and not line.startswith("!["):
            keep.append(line)
    return "\n".join(keep).strip() + f"\n\nFull report: {Path(report_dir) / 'report.md'}\n"
