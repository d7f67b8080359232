"""``astrollama train ...``: recipes, dry-run launches, the compute planner.

  astrollama train validate RECIPE|DIR ... [key=value ...]
  astrollama train launch RECIPE [key=value ...] --nodes N --gpus-per-node G --dry-run
  astrollama train plan RECIPE [key=value ...] [--tokens N | --dataset DIR] [--mfu 0.4] [--gpu a100-80g]
  astrollama train run RECIPE [key=value ...]     (one node's share of a run; see slurm/cpt.sh)

The group follows the one registration pattern (:func:`astrollama.cli.build_group`): this module's
``register(subparsers)`` adds validate, launch and plan; ``astrollama.train.run`` registers run.
Bad input raises :class:`astrollama.errors.InputError` (``RecipeError`` and the others
subclass it); ``astrollama.cli.main`` prints it as one line
``astrollama train: error: <file>: <key>: <problem>`` and exits 2 (the one policy of every group).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path

from astrollama.cli_args import build_group, run_group
from astrollama.errors import InputError
from astrollama.paths import REPO_ROOT
from astrollama.train.recipe import MAX_NODES, RecipeError, load_recipe

log = logging.getLogger("astrollama.train")

Handler = Callable[[argparse.Namespace], int]
AddArgs = Callable[[argparse.ArgumentParser], None]


def _split_recipe_args(values: list[str]) -> tuple[list[str], list[str]]:
    """Positional words: ``key=value`` overrides vs recipe files/directories."""
    overrides = [v for v in values if "=" in v]
    return [v for v in values if "=" not in v], overrides


def _recipe_files(targets: list[str]) -> list[Path]:
    files: list[Path] = []
    for t in targets:
        p = Path(t)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*.yaml") if not f.name.startswith("_"))
        else:
            files.append(p)
    return files


# ----------------------------------------------------------------------------------------------
# validate
# ----------------------------------------------------------------------------------------------
def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "targets",
        nargs="+",
        metavar="RECIPE|DIR|key=value",
        help="recipe files or directories (searched recursively; _*.yaml are bases), then overrides",
    )


def _validate(a: argparse.Namespace) -> int:
    targets, overrides = _split_recipe_args(a.targets)
    files = _recipe_files(targets)
    if not files:
        raise RecipeError(" ".join(targets) or "(none)", "(file)", "no recipe files found")
    from astrollama.train import deepspeed
    from astrollama.train.merge import is_merge_recipe, load_merge_recipe

    for f in files:
        if is_merge_recipe(f):  # recipes/*-merge.yaml: `astrollama merge` (docs/train-merge.md)
            m = load_merge_recipe(f, overrides)
            print(
                f"ok  {f}: merge {m.method} of {len(m.models)} models "
                f"({', '.join(f'{k} {v.weight:g}' for k, v in m.models.items())}), {m.dtype}, seed {m.seed}"
            )
            continue
        r = load_recipe(f, overrides)
        if r.launch.deepspeed is not None:
            deepspeed.check(r)
        lora = f"LoRA r={r.model.lora.r}" if r.model.lora else "full"
        print(
            f"ok  {f}: {r.model.name_or_path} {lora}, block {r.data.block_size}, "
            f"packing {'on' if r.data.packing else 'off'}, global batch {r.batch.global_batch_size}, "
            f"engine {r.launch.engine}, {r.launch.nodes}x{r.launch.gpus_per_node} GPUs"
            + (f", SFT template {r.data.conversation_template}" if r.data.conversation_template else "")
        )
    return 0


# ----------------------------------------------------------------------------------------------
# launch (dry-run)
# ----------------------------------------------------------------------------------------------
def _add_launch(p: argparse.ArgumentParser) -> None:

    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="number of nodes (default: the Slurm allocation's, else launch.nodes)",
    )
    p.add_argument(
        "--gpus-per-node",
        type=int,
        default=None,
        help="training processes per node (default: launch.gpus_per_node)",
    )
    p.add_argument("--rdzv-port", type=int, default=None, help="default: launch.rdzv_port")
    p.add_argument("--dry-run", action="store_true", help="print the command for every node; run nothing")
    p.add_argument(
        "--skip-data-check",
        action="store_true",
        help="do not require data.dataset_path to exist (planning on a machine without the corpus)",
    )


def _launch(a: argparse.Namespace) -> int:
    from astrollama.train.launch import build_launch, slurm_hostnames, stage_python

    if not a.dry_run:
        raise InputError(
            "launch: only prints commands (--dry-run); to train run "
            "`sbatch slurm/cpt.sh RECIPE` or `bash slurm/cpt.sh RECIPE`"
        )
    recipe = load_recipe(a.recipe, a.overrides)
    hosts = slurm_hostnames() if a.nodes is None else None
    if hosts is None:
        n = a.nodes if a.nodes is not None else recipe.launch.nodes
        if not 1 <= n <= MAX_NODES:
            raise RecipeError(a.recipe, "launch.nodes (--nodes)", f"must be in 1..{MAX_NODES}, got {n}")
        hosts = [f"node{i:03d}" for i in range(1, n + 1)]
    from astrollama.train.resources import require_gpus, slurm_request, visible_gpus, wants_cpu
    from astrollama.train.run import rendezvous_id

    gpus = a.gpus_per_node if a.gpus_per_node is not None else recipe.launch.gpus_per_node
    job = os.environ.get("SLURM_JOB_ID") if a.nodes is None else None
    if job:  # inside the job that will train: its GPUs must be there (train run checks the same)
        if not wants_cpu(recipe):
            require_gpus(recipe, *visible_gpus())
        rdzv = rendezvous_id(job, int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0))
    else:
        rdzv = rendezvous_id("<SLURM_JOB_ID>", "<SLURM_RESTART_COUNT>")
    repo = Path.cwd() if (Path.cwd() / "slurm" / "cpt.sh").is_file() else REPO_ROOT
    python, why = stage_python(repo)
    plan = build_launch(
        recipe,
        nodes=hosts,
        gpus_per_node=gpus,
        rdzv_port=a.rdzv_port,
        rdzv_id=rdzv,
        python=python,
        dry_run=True,
        check_data=not a.skip_data_check,
    )
    if a.skip_data_check:
        plan.notes.insert(0, "data check skipped (--skip-data-check)")
    plan.notes.append(f"python: {python} ({why}; slurm/_env.sh's rule)")
    if not job:
        plan.notes.append("rendezvous id: slurm-<job id>-<restart count>, set per attempt by train run")
    try:
        req = slurm_request(recipe, nodes=len(hosts), gpus_per_node=gpus, count_dataset=False)
        plan.notes.append(
            f"sbatch: {' '.join(req.sbatch_args())} slurm/cpt.sh {a.recipe}  (time: {req.basis})"
        )
    except RecipeError as e:  # e.g. a model of unknown architecture: the launch plan still stands
        plan.notes.append(f"sbatch request not estimated: {e}")
    print(plan.render())
    return 0


# ----------------------------------------------------------------------------------------------
# plan (compute planner)
# ----------------------------------------------------------------------------------------------
def _add_plan(p: argparse.ArgumentParser) -> None:
    from astrollama.cli_args import number
    from astrollama.train.planner import GPUS

    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tokens", type=float, default=None, help="training tokens per epoch (e.g. 1.7e8)")
    src.add_argument(
        "--dataset",
        default=None,
        help="LMFlow text_only directory: count tokens with the recipe's tokenizer and packing rule",
    )
    p.add_argument("--tokenizer", default=None, help="tokenizer to count with (default: the recipe's model)")
    p.add_argument(
        "--mfu", type=number(gt=0), default=0.4, help="model FLOPs utilisation assumed (default 0.4)"
    )
    p.add_argument("--gpu", choices=sorted(GPUS), default="a100-80g")
    p.add_argument("--nodes", type=int, default=None, help="default: launch.nodes")
    p.add_argument("--gpus-per-node", type=int, default=None, help="default: launch.gpus_per_node")


def _plan(a: argparse.Namespace) -> int:
    from astrollama.train import planner

    recipe = load_recipe(a.recipe, a.overrides)
    report = planner.plan(
        recipe,
        tokens=a.tokens,
        dataset=a.dataset,
        tokenizer=a.tokenizer,
        mfu=a.mfu,
        gpu=a.gpu,
        nodes=a.nodes,
        gpus_per_node=a.gpus_per_node,
    )
    print(report.render())
    return 0


COMMANDS: dict[str, tuple[str, AddArgs, Handler]] = {
    "validate": ("check recipes (schema, trainer arguments, DeepSpeed config)", _add_validate, _validate),
    "launch": ("print the torchrun command of every node (--dry-run)", _add_launch, _launch),
    "plan": ("tokens, steps, FLOPs, GPU-hours, memory per GPU, sbatch --time", _add_plan, _plan),
}
MODULES = ("astrollama.train.cli", "astrollama.train.run")


def register(sub: argparse._SubParsersAction) -> None:
    for name, (help_, add_args, handler) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add_args(p)
        p.set_defaults(func=handler)


def build_parser() -> argparse.ArgumentParser:
    return build_group("astrollama train", __doc__.splitlines()[0], MODULES)


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; InputError propagates to ``astrollama.cli.main`` (one line, exit 2)."""
    return run_group(build_parser(), argv)
