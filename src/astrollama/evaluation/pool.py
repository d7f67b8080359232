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

import argparse
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrollama.evaluation.settings import ScoringSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelJob:
    """One checkpoint to evaluate: its results go to ``out`` (default ``<results>/<key>``)."""

    key: str
    path: Path
    label: str
    role: str  # "base" or "trained" (astrollama.evaluation.results.ROLES)
    recipe: str | None = None
    stage: str | None = None
    paper_model: str | None = None
    out: Path | None = None


@dataclass(frozen=True)
class EmbedSettings:
    """The embeddings' own documents and sizes (``eval embed``'s options). ``data`` None: the
    held-out set with the scoring's max_docs, block_size and batch_size."""

    data: Path | None = None
    max_docs: int | None = None
    max_length: int | None = None
    batch_size: int | None = None

    def resolve(self, scoring: ScoringSettings) -> tuple[Path, int | None, int, int]:
        """``(documents, max_docs, max_length, batch_size)`` of the embeddings."""
        if self.data is None:
            return Path(scoring.heldout), scoring.max_docs, scoring.block_size, scoring.batch_size  # type: ignore[arg-type]
        return (
            Path(self.data),
            self.max_docs,
            self.max_length or scoring.block_size,
            self.batch_size or scoring.batch_size,
        )


@dataclass
class ModelResult:
    job: ModelJob
    results: Path
    seconds: float  # load + every evaluation of this model, in its worker
    embeddings: Any = None  # numpy [n_docs, hidden] or None
    bos_excluded: bool = False


_LISTENERS: list[Callable[[ModelResult], None]] = []


@contextmanager
def listening(fn: Callable[[ModelResult], None]) -> Iterator[None]:
    """Within the block, every model ``astrollama eval models`` finishes in this process is also
    given to ``fn`` (the runner's per-stage timings: :func:`astrollama.reproduce.run_local`)."""
    _LISTENERS.append(fn)
    try:
        yield
    finally:
        _LISTENERS.remove(fn)


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(n_models: int) -> int:
    """One worker per core, at most one per model; 1 (in process) on a single core."""
    return max(1, min(n_models, cpu_cores()))


def _evaluate_one(
    job: ModelJob,
    settings: ScoringSettings,
    embed: EmbedSettings | None,
    results: Path | None,
    threads: int | None,
) -> ModelResult:
    """Load ``job``'s model once and run every evaluation on it (in this process)."""
    import torch

    from astrollama.evaluation.common import load_causal_lm, load_texts
    from astrollama.evaluation.embeddings import embed_texts, starts_with_bos
    from astrollama.evaluation.suite import evaluate_model

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model, tok = load_causal_lm(job.path, base=settings.base, dtype=settings.dtype, device=settings.device)
    out = job.out or results / job.key  # type: ignore[operator]
    evaluate_model(
        job.path,
        out,
        settings,
        label=job.label,
        role=job.role,
        recipe=job.recipe,
        paper_model=job.paper_model,
        stage=job.stage,
        model_and_tokenizer=(model, tok),
    )
    emb, bos = None, False
    if embed is not None:
        data, max_docs, max_length, batch_size = embed.resolve(settings)
        texts = load_texts(data, max_docs=max_docs)
        emb = embed_texts(model, tok, texts, max_length=max_length, batch_size=batch_size)
        bos = starts_with_bos(tok, texts[0])
    return ModelResult(job, out, time.perf_counter() - t0, emb, bos)


def _worker_init() -> None:
    os.environ["TQDM_DISABLE"] = "1"  # several workers' bars would interleave; plain log lines stay
    logging.basicConfig(
        level=logging.INFO, format=f"[eval worker {os.getpid()}] %(name)s: %(message)s", force=True
    )


def evaluate_models(
    jobs: Sequence[ModelJob],
    settings: ScoringSettings,
    results: str | os.PathLike[str] | None = None,
    *,
    embed: EmbedSettings | None = EmbedSettings(),
    workers: int | None = None,
    on_done: Callable[[ModelResult], None] | None = None,
) -> list[ModelResult]:
    """Evaluate every job (each model loaded once) into ``job.out`` or ``<results>/<job.key>``;
    return in job order. ``settings``: what every model is evaluated on, and how (``evaluate_model``'s);
    ``embed``: the embeddings' documents and sizes (None: no embeddings).

    ``workers``: processes side by side (default :func:`default_workers`); 1 runs in this process
    with its current torch threads. ``on_done`` is called in this process as each model finishes.
    """
    results = Path(results) if results is not None else None
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"result keys must be unique, got {keys}")
    if results is None and any(j.out is None for j in jobs):
        raise ValueError("a job without its own out needs the results directory")
    workers = default_workers(len(jobs)) if workers is None else max(1, min(workers, len(jobs)))
    done: dict[str, ModelResult] = {}
    if workers == 1:
        for job in jobs:
            done[job.key] = _evaluate_one(job, settings, embed, results, None)
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
        futures = [ex.submit(_evaluate_one, job, settings, embed, results, threads) for job in jobs]
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


# ---------------------------------------------------------------- astrollama eval models

# options that belong to one model: each follows its --model (the flags of `eval model`)
PER_MODEL = ("model", "label", "role", "stage", "recipe", "paper_model", "out")


class _PerModel(argparse.Action):
    """``--model`` opens a model's group; ``--label``/``--role``/... set that model's value."""

    def __call__(self, parser, namespace, values, option_string=None):
        jobs = list(getattr(namespace, "jobs", None) or [])
        if self.dest == "model":
            jobs.append({"model": values})
        elif not jobs:
            raise argparse.ArgumentError(self, "a per-model option: give it after its --model")
        elif self.dest in jobs[-1]:
            raise argparse.ArgumentError(self, f"given twice for --model {jobs[-1]['model']}")
        else:
            jobs[-1][self.dest] = values
        namespace.jobs = jobs
        setattr(namespace, self.dest, values)


def register(subparsers) -> None:
    """``astrollama eval models``: `eval model` of several checkpoints + `eval embed` over them,
    each model loaded once."""
    from astrollama.cli_args import number
    from astrollama.evaluation.results import ROLES, SCALES
    from astrollama.evaluation.suite import add_scoring_options

    p = subparsers.add_parser(
        "models",
        help="`eval model` of several checkpoints and `eval embed` over them, each model loaded once",
        description="Writes what `astrollama eval model` writes for each --model (its --out) and what "
        "`astrollama eval embed` writes over all of them (--embed-out), loading each model once; "
        "models run side by side in worker processes. Each model's options follow its --model: "
        "--model DIR --label L --role base|trained [--stage S] [--recipe R] [--paper-model P] --out "
        "RESULTS. Options: the config's 'model' section, and its 'embed' section as --embed-*.",
    )
    per = p.add_argument_group("per model (after its --model, in this order or any)")
    per.add_argument("--model", action=_PerModel, required=True, help="checkpoint directory (repeat)")
    per.add_argument("--label", action=_PerModel, required=True, help="name of the model in the report")
    per.add_argument("--role", action=_PerModel, required=True, choices=ROLES)
    per.add_argument("--stage", action=_PerModel, help="stage name in a staged run (base, CPT, SFT, merged)")
    per.add_argument("--recipe", action=_PerModel, help="the recipe this model reproduces (astrollama.paper)")
    per.add_argument("--paper-model", action=_PerModel, help="row of astrollama.paper.MCQ_SCORES")
    per.add_argument("--out", action=_PerModel, required=True, help="this model's RESULTS directory")
    p.add_argument("--base", default=None, help="base model directory for LoRA adapter checkpoints")
    p.add_argument("--scale", default="paper", choices=SCALES, help="toy: not comparable in absolute terms")
    add_scoring_options(p)
    emb = p.add_argument_group("embeddings (the options of `eval embed`)")
    emb.add_argument("--embed-data", default=None, help="documents to embed (default: --heldout)")
    emb.add_argument("--embed-max-docs", type=number(int, min=2), default=200)
    emb.add_argument("--embed-max-length", type=number(int, min=2), default=512)
    emb.add_argument("--embed-batch-size", type=number(int, min=1), default=8)
    emb.add_argument("--embed-dtype", default=None, choices=["float32", "bfloat16", "float16"])
    emb.add_argument("--embed-device", default=None, help="must equal --device (one load per model)")
    emb.add_argument("--embed-base", default=None, help="must equal --base (one load per model)")
    emb.add_argument("--embed-out", required=True, help="the `eval embed` output directory")
    p.add_argument(
        "--workers",
        type=number(int, min=1),
        default=None,
        help="models side by side in this many processes (default: one per core, at most one per model)",
    )
    p.add_argument("--config", metavar="FILE", help="eval/<name>.yaml: its 'model' and 'embed' sections")
    p.set_defaults(func=_run, jobs=None)


def _jobs(args) -> list[ModelJob]:
    from astrollama.evaluation.common import EvalInputError

    groups = args.jobs or []
    for g in groups:
        missing = [f"--{k}" for k in ("label", "role", "out") if k not in g]
        if missing:
            raise EvalInputError(f"--model {g['model']}: missing {', '.join(missing)} (give them after it)")
    outs = [Path(g["out"]).resolve() for g in groups]
    for i, o in enumerate(outs):
        if o in outs[:i]:
            raise EvalInputError(f"--out {groups[i]['out']}: given for two models")
        if o == Path(args.embed_out).resolve():
            raise EvalInputError(f"--out {groups[i]['out']}: also the --embed-out")
    return [
        ModelJob(
            key=str(i),
            path=Path(g["model"]),
            label=g["label"],
            role=g["role"],
            recipe=g.get("recipe"),
            stage=g.get("stage"),
            paper_model=g.get("paper_model"),
            out=Path(g["out"]),
        )
        for i, g in enumerate(groups)
    ]


def _run(args) -> int:
    from astrollama.benchmark import load_questions
    from astrollama.evaluation import embeddings, suite
    from astrollama.evaluation.common import EvalInputError, check_device, load_texts
    from astrollama.evaluation.completion import bundled_prompt_file, read_prompt
    from astrollama.evaluation.results import check_meta
    from astrollama.io import claim_dir
    from astrollama.untrusted import check_model_dir

    for opt, mine, theirs in (
        ("--embed-dtype", args.embed_dtype, args.dtype),
        ("--embed-device", args.embed_device, args.device),
        ("--embed-base", args.embed_base, args.base),
    ):
        if mine is not None and mine != theirs:
            raise EvalInputError(
                f"{opt} {mine}: each model is loaded once, as --{opt[8:]} {theirs} says "
                "(give the two the same value)"
            )
    jobs = _jobs(args)
    # every input and output checked before a model loads (what `eval model` / `eval embed` check)
    for job in jobs:
        check_meta(
            role=job.role, recipe=job.recipe, paper_model=job.paper_model, scale=args.scale, where=job.label
        )
    load_questions(args.questions, key_path=args.key)
    load_texts(args.heldout, max_docs=args.max_docs)
    data = args.embed_data or args.heldout
    if len(load_texts(data, max_docs=args.embed_max_docs)) < 2:
        raise EvalInputError(f"{data}: need at least 2 documents for pairwise similarities")
    read_prompt(str(bundled_prompt_file()))
    check_device(args.device)
    for job in jobs:
        if not job.path.is_dir():
            raise EvalInputError(f"{job.path}: model directory does not exist")
        check_model_dir(job.path, error=EvalInputError)
    for job in jobs:
        claim_dir(job.out, suite.OWNER, legacy=suite.LEGACY)  # type: ignore[arg-type]
    claim_dir(args.embed_out, embeddings.OWNER, legacy=embeddings.LEGACY, what="--embed-out")
    settings = ScoringSettings.from_args(args, questions=Path(args.questions), heldout=Path(args.heldout))
    embed = EmbedSettings(
        data=Path(data),
        max_docs=args.embed_max_docs,
        max_length=args.embed_max_length,
        batch_size=args.embed_batch_size,
    )

    def done(r: ModelResult) -> None:
        print(f"[eval model] {r.job.label}: {r.seconds:.1f} s -> {r.results}", flush=True)
        for fn in _LISTENERS:
            fn(r)

    res = evaluate_models(jobs, settings, embed=embed, workers=args.workers, on_done=done)
    labels = embeddings.unique_labels([r.job.label for r in res])  # as `eval embed` names them
    rep = embeddings.compare_embeddings(
        [(label, g["model"]) for label, g in zip(labels, args.jobs, strict=True)],
        data,
        args.embed_out,
        max_docs=args.embed_max_docs,
        max_length=args.embed_max_length,
        batch_size=args.embed_batch_size,
        base=args.base,
        dtype=args.dtype,
        device=args.device,
        embedded={label: (r.embeddings, r.bos_excluded) for label, r in zip(labels, res, strict=True)},
    )
    for label, m in rep["models"].items():
        print(f"{label}: mean {m['mean']:.4f} std {m['std']:.4f} p5 {m['p5']:.4f} p95 {m['p95']:.4f}")
    print(f"-> {Path(args.embed_out) / 'similarity.png'}")
    return 0
