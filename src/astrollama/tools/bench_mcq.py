"""MCQ measurements: throughput against lm-evaluation-harness (``throughput``) and the effect of the
prompt wording on accuracy (``prompt_effect``).

Throughput: our token method against lm-evaluation-harness, side by side in one process.

Same model object (loaded once), same questions, dtype, batch size, device and threads. Timed:
the scoring call only (lm-eval: wrapping the loaded model and ``simple_evaluate`` of the shipped
task, which includes its request building; ours: ``score_mcq``), as wall-clock seconds and as
the process's CPU seconds (``time.process_time``: the work done, less sensitive than wall time to
other jobs sharing the cores). Runs alternate (lm-eval, ours, ours without the prefix cache) for
``repeats`` rounds and each one's fastest round is reported (on a shared machine the least
disturbed run is the best estimate of the work; every round is kept in ``raw_*``). Predictions
must be identical.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from astrollama.benchmark import LETTERS, MCQInputError, load_questions
from astrollama.evaluation.mcq.lmeval import run_lm_eval
from astrollama.evaluation.mcq.prompts import PROMPT_NAMES
from astrollama.evaluation.mcq.score import score_mcq
from astrollama.evaluation.settings import ScoringSettings

log = logging.getLogger(__name__)


def throughput(
    model_dir: str | os.PathLike[str],
    questions: str | os.PathLike[str],
    *,
    batch_size: int = 8,
    dtype: str = "float32",
    device: str = "cpu",
    repeats: int = 3,
    limit: int | None = None,
) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    qs = load_questions(questions)
    if limit:
        qs = qs.head(limit)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    times: dict[str, list[float]] = {"lm_eval": [], "ours": [], "ours_no_prefix_cache": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    preds: dict[str, list[str | None]] = {}
    with tempfile.TemporaryDirectory(prefix="mcq-bench-") as wd:
        # warm-up (first-call costs: thread pools, lazy imports) on two questions, not timed
        score_mcq(model, qs.head(2), ScoringSettings(batch_size=batch_size), tokenizer=tok, progress=False)
        run_lm_eval(
            model,
            qs.head(2),
            Path(wd) / "warm",
            tokenizer=tok,
            batch_size=batch_size,
            task="astromlab_mcq_warm",
        )
        for r in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            lm = run_lm_eval(model, qs, Path(wd) / f"run{r}", tokenizer=tok, batch_size=batch_size)
            times["lm_eval"].append(time.perf_counter() - t0)
            cpu["lm_eval"].append(time.process_time() - c0)
            preds["lm_eval"] = lm.predictions
            for name, cache in (("ours", True), ("ours_no_prefix_cache", False)):
                t0, c0 = time.perf_counter(), time.process_time()
                settings = ScoringSettings(batch_size=batch_size, prefix_cache=cache)
                res = score_mcq(model, qs, settings, tokenizer=tok, progress=False)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                preds[name] = res.letters
            log.warning(
                "round %d: wall %s cpu %s",
                r,
                {k: round(v[-1], 1) for k, v in times.items()},
                {k: round(v[-1], 1) for k, v in cpu.items()},
            )
    best = {k: min(v) for k, v in times.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    n = len(qs)
    out = {
        "n_questions": n,
        "questions": str(questions),
        "model": str(model_dir),
        "dtype": dtype,
        "device": device,
        "batch_size": batch_size,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "seconds": best,
        "questions_per_s": {k: n / v for k, v in best.items()},
        "speedup_vs_lm_eval": {k: best["lm_eval"] / v for k, v in best.items() if k != "lm_eval"},
        "cpu_seconds": best_cpu,
        "speedup_vs_lm_eval_cpu": {k: best_cpu["lm_eval"] / v for k, v in best_cpu.items() if k != "lm_eval"},
        "identical_predictions": all(p == preds["lm_eval"] for p in preds.values()),
        "mismatches": [
            {"id": q.id, **{k: v[i] for k, v in preds.items()}}
            for i, q in enumerate(qs)
            if len({v[i] for v in preds.values()}) > 1
        ],
        "raw_seconds": times,
        "raw_cpu_seconds": cpu,
    }
    return out


def prompt_effect(
    model_dir: str | os.PathLike[str],
    questions: str | os.PathLike[str],
    *,
    prompts: tuple[str, ...] = PROMPT_NAMES,
    batch_size: int = 8,
    dtype: str = "float32",
    device: str = "cpu",
    n_bootstrap: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of one model under each shipped token prompt, each with its bootstrap interval, and
    the paired change against the first prompt (the same questions resampled for both; the
    interval of the mean per-question difference, ``astrollama.evaluation.stats``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from astrollama.evaluation.stats import bootstrap_mean_ci

    qs = load_questions(questions)
    if not qs.keyed:
        raise MCQInputError(f"{questions}: the prompt comparison needs keyed questions")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    runs = {
        p: score_mcq(
            model,
            qs,
            ScoringSettings(
                prompt=p, batch_size=batch_size, n_bootstrap=n_bootstrap, bootstrap_seed=seed, seed=seed
            ),
            tokenizer=tok,
            progress=False,
        )
        for p in prompts
    }
    hits = {p: [float(x["is_correct"]) for x in r.predictions] for p, r in runs.items()}
    ref = prompts[0]
    rows = []
    for p, r in runs.items():
        diff = [a - b for a, b in zip(hits[p], hits[ref], strict=True)]
        rows.append(
            {
                "prompt": p,
                "accuracy": r.accuracy,
                "ci95": list(r.ci95 or ()),
                "change_vs_" + ref: sum(diff) / len(diff),
                "change_ci95": list(bootstrap_mean_ci(diff, n_resamples=n_bootstrap, seed=seed))
                if p != ref
                else None,
                "predicted_letters": {L: r.letters.count(L) for L in LETTERS},
                "agreement_with_" + ref: sum(
                    a == b for a, b in zip(r.letters, runs[ref].letters, strict=True)
                )
                / len(qs),
                "template_sha256": r.settings["template"]["sha256"],
            }
        )
    key = {L: sum(q.answer == L for q in qs) for L in LETTERS}
    return {
        "model": str(model_dir),
        "questions": str(questions),
        "n": len(qs),
        "key_letters": key,
        "dtype": dtype,
        "device": device,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "rows": rows,
    }
