"""Is evaluating models side by side faster on this CPU? The demo's per-model evaluation (MCQ,
held-out perplexity, a completion, embeddings; each model loaded once) of N copies of
SmolLM2-135M-Instruct, run one after the other in this process (torch's threads: all cores) and
then in worker processes side by side (astrollama.evaluation.pool, cores / workers threads each),
back to back, with wall and CPU seconds (CPU: this process + its finished workers).

    .venv/bin/python scripts/bench_eval.py [--models 2] [--questions 24] [--heldout DIR]

--heldout defaults to the demo's held-out abstracts (work/demo/corpus/abstracts/validation: run the
demo's data stage first); --questions takes the first N of the bundled MCQ sample (0: all 68).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=2)
    p.add_argument("--questions", type=int, default=24)
    p.add_argument(
        "--heldout", type=Path, default=REPO / "work" / "demo" / "corpus" / "abstracts" / "validation"
    )
    p.add_argument("--workers", type=int, default=None, help="side-by-side workers (default: one per core)")
    a = p.parse_args(argv)

    from astrollama.evaluation.pool import ModelJob, cpu_cores, default_workers, evaluate_models
    from astrollama.evaluation.settings import ScoringSettings
    from astrollama.models import smollm2_checkpoint

    ckpt = smollm2_checkpoint()
    sample = REPO / "eval" / "data" / "astro_mcq_sample.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        questions = Path(tmp) / "questions.jsonl"
        lines = sample.read_text(encoding="utf-8").splitlines(keepends=True)
        questions.write_text("".join(lines[: a.questions] if a.questions else lines), encoding="utf-8")
        jobs = [ModelJob(f"m{i}", ckpt, f"copy {i}", "trained") for i in range(a.models)]
        settings = ScoringSettings(
            questions=questions,
            heldout=a.heldout,
            scale="toy",
            block_size=256,
            max_docs=32,
            max_new_tokens=40,
        )
        workers = a.workers or default_workers(len(jobs))
        print(
            f"{a.models} x SmolLM2-135M-Instruct, {a.questions or 68} questions, {cpu_cores()} cores",
            flush=True,
        )
        res = {}
        for name, w in (("one by one", 1), (f"side by side ({workers} workers)", workers)):
            t, c = time.perf_counter(), cpu_seconds()
            evaluate_models(jobs, settings, Path(tmp) / name.split()[0], workers=w)
            res[name] = (time.perf_counter() - t, cpu_seconds() - c)
            print(f"  {name}: {res[name][0]:6.1f} s wall, {res[name][1]:6.1f} s CPU", flush=True)
        (w1, c1), (w2, c2) = res.values()
        print(f"  side by side vs one by one: {w1 / w2:4.2f}x wall, {c1 / c2:4.2f}x CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
