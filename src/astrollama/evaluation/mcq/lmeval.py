"""Cross-check with lm-evaluation-harness: run the shipped ``astromlab_mcq`` task in-process.

The task (``eval/lm_eval_tasks/astromlab_mcq``) renders the same prompt as our token method and
scores the continuations ``A``-``D`` with ``target_delimiter: ""``, so lm-eval's per-choice
log-likelihood is the log-probability of exactly the letter token our scorer reads. For a given
question file a small task YAML is written that ``include``s the shipped one and points
``data_files`` at a JSONL copy of the questions.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrollama.benchmark import LETTERS, QuestionSet
from astrollama.io import atomic_write_text
from astrollama.paths import EVAL_DIR

log = logging.getLogger(__name__)

TASK_DIR = EVAL_DIR / "lm_eval_tasks" / "astromlab_mcq"
TASK_YAML = TASK_DIR / "astromlab_mcq.yaml"


@dataclass
class LMEvalRun:
    """lm-eval's per-question results, in question order."""

    loglikelihoods: list[list[float]]  # per question, choices A-D
    contexts: list[str]  # the prompt lm-eval scored each question with
    predictions: list[str]
    accuracy: float | None
    seconds: float  # wall time of the evaluation call (model already loaded)


def write_task(
    questions: QuestionSet, work_dir: str | os.PathLike[str], task: str = "astromlab_mcq_check"
) -> Path:
    """Write ``work_dir/<task>.yaml`` (including the shipped task) and the questions as JSONL."""
    wd = Path(work_dir).resolve()
    data = wd / f"{task}.jsonl"
    rows = []
    for q in questions:
        row: dict[str, Any] = {"id": q.id, "question": q.question, **q.options}
        if q.answer is not None:
            row["correct"] = q.answer
        rows.append(json.dumps(row, ensure_ascii=False))
    atomic_write_text(data, "\n".join(rows) + "\n")
    yaml_text = (
        f"include: {json.dumps(str(TASK_YAML))}\n"
        f"task: {task}\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        f"    test: {json.dumps(str(data))}\n"
    )
    atomic_write_text(wd / f"{task}.yaml", yaml_text)
    return wd


def run_lm_eval(
    model: Any,
    questions: QuestionSet,
    work_dir: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    batch_size: int = 8,
    device: str = "cpu",
    dtype: str = "float32",
    task: str = "astromlab_mcq_check",
) -> LMEvalRun:
    """Score ``questions`` with lm-eval's HF model (``model``: a checkpoint directory, or a loaded
    model with its ``tokenizer``; lm-eval defaults otherwise, e.g. ``logits_cache``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    wd = write_task(questions, work_dir, task)
    if isinstance(model, (str, os.PathLike)):
        lm = HFLM(pretrained=str(model), dtype=dtype, device=device, batch_size=batch_size)
    else:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    tm = TaskManager(include_path=str(wd))
    t0 = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=[task], task_manager=tm, log_samples=True, num_fewshot=0)
    seconds = time.perf_counter() - t0
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    if len(samples) != len(questions):
        raise RuntimeError(f"lm-eval returned {len(samples)} samples for {len(questions)} questions")
    lls = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    contexts = [s["arguments"][0][0] for s in samples]  # (context, continuation) of choice A
    preds = [LETTERS[max(range(4), key=lambda j, ll=ll: ll[j])] for ll in lls]
    acc = out["results"][task].get("acc,none") if questions.keyed else None
    log.info("lm-eval: %d questions in %.1f s", len(samples), seconds)
    return LMEvalRun(loglikelihoods=lls, contexts=contexts, predictions=preds, accuracy=acc, seconds=seconds)
