"""Several checkpoints, every per-model evaluation, each model loaded ONCE: side by side on the cores.

:func:`evaluate_models` gives each model one load for all of its evaluations: the MCQ benchmark,
held-out perplexity and a completion (:func:`astrollama.evaluation.suite.evaluate_model`) and the
embeddings of the held-out documents, which :func:`astrollama.evaluation.embeddings.compare_embeddings`
then compares across models. With ``workers > 1`` the models are spread over that many worker
processes (spawned, each with ``cores // workers`` torch threads), in the given order; they write
the same files a sequential run writes, returned in the given order. Worker logs go to the
console as plain lines (progress bars off: several at once would interleave).

Why processes: at these sizes (a 135M model, batches of 8 questions) two torch threads on one model
leave time on the table (small operations, token-by-token generation, loading), while two models
on one thread each keep both cores busy. Measured with scripts/bench_eval.py (README, "Timing the
demo"): 1.74x on a loaded 2-core machine, where a descheduled thread stalls its partner; less is
expected on an idle one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelJob:
    """One checkpoint to evaluate: its results go to ``<results>/<key>``."""

    key: str
    path: Path
    label: str
    role: str  # "base" or "trained" (astrollama.evaluation.report.ROLES)
    recipe: str | None = None
    stage: str | None = None


@dataclass(frozen=True)
class Settings:
    """What every model is evaluated on, and how (the arguments of ``evaluate_model``)."""

    questions: Path
    heldout: Path
    scale: str = "toy"
    base: Path | None = None
    block_size: int = 512
    max_docs: int | None = None
    batch_size: int = 8
    seed: int = 0
    max_new_tokens: int = 64
    embed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelResult:
    job: ModelJob
    results: Path
    seconds: float  # load + every evaluation of this model, in its worker
    embeddings: Any = None  # numpy [n_docs, hidden] or None
    bos_excluded: bool = False


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(n_models: int) -> int:
    """One worker per core, at most one per model; 1 (in process) on a single core."""
    return max(1, min(n_models, cpu_cores()))


def _evaluate_one(job: ModelJob, settings: Settings, results: Path, threads: int | None) -> ModelResult:
    """Load ``job``'s model once and run every evaluation on it (in this process)."""
    import torch

    from astrollama.evaluation.common import load_causal_lm, load_texts
    from astrollama.evaluation.embeddings import embed_texts, starts_with_bos
    from astrollama.evaluation.suite import evaluate_model

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model, tok = load_causal_lm(job.path, base=settings.base)
    out = results / job.key
    evaluate_model(
        job.path,
        out,
        label=job.label,
        role=job.role,
        questions=settings.questions,
        heldout=settings.heldout,
        recipe=job.recipe,
        scale=settings.scale,
        block_size=settings.block_size,
        max_docs=settings.max_docs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        max_new_tokens=settings.max_new_tokens,
        model_and_tokenizer=(model, tok),
        stage=job.stage,
        **settings.extra,
    )
    emb, bos = None, False
    if settings.embed:
        texts = load_texts(settings.heldout, max_docs=settings.max_docs)
        emb = embed_texts(model, tok, texts, max_length=settings.block_size, batch_size=settings.batch_size)
        bos = starts_with_bos(tok, texts[0])
    return ModelResult(job, out, time.perf_counter() - t0, emb, bos)


def _worker_init() -> None:
    os.environ["TQDM_DISABLE"] = "1"  # several workers' bars would interleave; plain log lines stay
    logging.basicConfig(
        level=logging.INFO, format=f"[eval worker {os.getpid()}] %(name)s: %(message)s", force=True
    )


def evaluate_models(
    jobs: Sequence[ModelJob],
    settings: Settings,
    results: str | os.PathLike[str],
    *,
    workers: int | None = None,
    on_done: Callable[[ModelResult], None] | None = None,
) -> list[ModelResult]:
    """Evaluate every job (each model loaded once) into ``<results>/<job.key>``; return in job order.

    ``workers``: processes side by side (default :func:`default_workers`); 1 runs in this process
    with its current torch threads. ``on_done`` is called in this process as each model finishes.
    """
    results = Path(results)
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"result keys must be unique, got {keys}")
    workers = default_workers(len(jobs)) if workers is None else max(1, min(workers, len(jobs)))
    done: dict[str, ModelResult] = {}
    if workers == 1:
        for job in jobs:
            done[job.key] = _evaluate_one(job, settings, results, None)
            if on_done:
                on_done(done[job.key])
        return [done[k] for k in keys]

    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, cpu_cores() // workers)
    log.info(
        "evaluating %d models in %d worker processes, %d torch thread(s) each", len(jobs), workers, threads
    )
    # spawn, not fork: a forked child of a process that already ran torch's OpenMP pool can hang
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init) as ex:
        futures = [ex.submit(_evaluate_one, job, settings, results, threads) for job in jobs]
        for fut in as_completed(futures):
            try:
                r = fut.result()  # a worker's exception is raised here, with its traceback
            except BaseException:
                ex.shutdown(wait=True, cancel_futures=True)  # models not started yet are dropped
                raise
            done[r.job.key] = r
            if on_done:
                on_done(r)
    return [done[k] for k in keys]
