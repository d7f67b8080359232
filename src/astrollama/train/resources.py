"""What a training job needs from Slurm, and whether the job got it.

* :func:`slurm_request`: the ``sbatch`` request of a recipe - ``--nodes`` and ``--gpus-per-node``
  from ``launch.nodes`` / ``launch.gpus_per_node``, ``--time`` from the compute planner
  (:mod:`astrollama.train.planner`: wall hours x 1.2 + 30 min, rounded up to the hour) and
  ``--mem`` (host RAM per node, formula below). It works before the corpus exists: the token count
  then comes from the published corpus size of the row the recipe reproduces (``astrollama.paper``),
  and the request says so in ``basis``.
* :func:`visible_gpus` / :func:`require_gpus`: the GPUs this process may use (``SLURM_GPUS_ON_NODE``,
  else ``CUDA_VISIBLE_DEVICES``, else ``torch.cuda.device_count()``), and the one-line refusal when
  a recipe wants more than that per node, unless it trains on CPU (``trainer.use_cpu: true``).

Time (``--time``), from the first that applies: the given token count or the dataset counted with
the recipe's tokenizer (the planner); the published GPU-hours of the row (scaled to the GPU's
peak); the published corpus size (papers x block size with packing off, or the token count); else
:data:`DEFAULT_TIME`.

Host memory per node (``--mem``): every training process loads the model on the host (2 bytes per
parameter in bf16/fp16, 4 in fp32; under ZeRO-3 one checkpoint shard at a time, counted as 10
GiB), holds its share of an offloaded optimizer (12 bytes per parameter / processes), and 8 GiB
for the tokenised dataset, the data loader and CUDA/NCCL buffers; the total is rounded up to 16 GiB.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from astrollama.train.recipe import Recipe, RecipeError

__all__ = ["SlurmRequest", "require_gpus", "slurm_request", "visible_gpus", "wants_cpu"]

HOST_OVERHEAD_GIB = 8
DEFAULT_TIME = "1-00:00:00"  # when nothing can estimate the tokens (a recipe of no published row)


def wants_cpu(recipe: Recipe) -> bool:
    """The recipe trains on CPU on purpose (``trainer.use_cpu: true``: the demo, the CPU tests)."""
    return recipe.trainer.get("use_cpu") is True


def visible_gpus() -> tuple[int, str]:
    """(GPUs this node may use, where that number came from)."""
    g = os.environ.get("SLURM_GPUS_ON_NODE", "").strip()
    if g.isdigit() and int(g) > 0:
        return int(g), f"SLURM_GPUS_ON_NODE={g}"
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        devices = [d for d in cvd.split(",") if d.strip() and d.strip() != "-1"]
        if devices:
            return len(devices), f"CUDA_VISIBLE_DEVICES={cvd}"
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable torch/CUDA: a CPU node
        n = 0
    where = f"CUDA_VISIBLE_DEVICES={cvd!r}, " if cvd is not None else ""
    return n, f"{where}torch.cuda.device_count()={n}"


def require_gpus(recipe: Recipe, seen: int, source: str) -> None:
    """Refuse (one line, exit 2) a GPU recipe on a node that sees fewer GPUs than it wants."""
    want = recipe.launch.gpus_per_node
    if wants_cpu(recipe) or seen >= want:
        return
    raise RecipeError(
        recipe.path,
        "launch.gpus_per_node",
        f"the recipe wants {want} GPU(s) per node but this job sees {seen} ({source}); ask Slurm for "
        f"them (sbatch --gpus-per-node={want} slurm/cpt.sh ...), pass launch.gpus_per_node={seen} if "
        "that is enough, or trainer.use_cpu=true to train on CPU on purpose",
    )


@dataclass(frozen=True)
class SlurmRequest:
    """One training job's request: ``sbatch_args()`` gives the flags."""

    nodes: int
    gpus_per_node: int  # 0: a CPU recipe (no GPU asked for)
    time: str  # D-HH:MM:SS
    mem_gib: int
    basis: str  # where the time estimate came from
    notes: list[str] = field(default_factory=list)

    def sbatch_args(self) -> list[str]:
        # always stated: 0 for a CPU recipe overrides slurm/cpt.sh's own #SBATCH --gpus-per-node=8
        args = [f"--nodes={self.nodes}", f"--gpus-per-node={self.gpus_per_node}"]
        return [*args, f"--time={self.time}", f"--mem={self.mem_gib}G"]


def slurm_request(
    recipe: Recipe,
    *,
    tokens: float | None = None,
    dataset: str | Path | None = None,
    gpu: str = "a100-80g",
    mfu: float = 0.4,
    nodes: int | None = None,
    gpus_per_node: int | None = None,
    count_dataset: bool = True,
) -> SlurmRequest:
    """The ``sbatch`` request (nodes, GPUs per node, time, host memory) of ``recipe``.

    Tokens, in order: ``tokens``; the ``dataset`` directory (or ``data.dataset_path``) counted with
    the recipe's tokenizer when it exists; the published corpus size (:func:`published_tokens`);
    else ``--time`` is :data:`DEFAULT_TIME` and ``notes`` says so. ``count_dataset=False`` (the
    dry-run: no tokenising) goes straight to the published corpus size."""
    from astrollama import paper
    from astrollama.train import deepspeed, planner
    from astrollama.train.planner import published_tokens

    nodes = recipe.launch.nodes if nodes is None else nodes
    gpn = recipe.launch.gpus_per_node if gpus_per_node is None else gpus_per_node
    notes: list[str] = []
    ds = Path(dataset) if dataset is not None else Path(recipe.data.dataset_path)
    counted = tokens is None and count_dataset and ds.exists()
    report = None
    wall: float | None = None
    if tokens is not None or counted:
        report = planner.plan(
            recipe, tokens=tokens, dataset=dataset, mfu=mfu, gpu=gpu, nodes=nodes, gpus_per_node=gpn
        )
        wall = report.wall_hours
        basis = "given token count" if tokens is not None else f"tokens counted in {ds}"
    else:
        why = f"{ds} not counted" if ds.exists() else f"{ds} does not exist yet"
        budget = planner._budget(recipe)
        hours = budget[1].get("a100_hours") if budget else None
        est = published_tokens(recipe)
        if hours is not None:  # the published compute, on this GPU at the same utilisation
            scale = paper.HARDWARE["a100_bf16_peak_flops"].value / planner.GPUS[gpu].peak_flops.value
            wall = hours.value * scale / (nodes * gpn)
            basis = f"published {hours.value:,} A100 GPU-hours ({hours.cite()})"
        elif est is not None:
            report = planner.plan(recipe, tokens=est[0], mfu=mfu, gpu=gpu, nodes=nodes, gpus_per_node=gpn)
            wall, basis = report.wall_hours, f"estimated from the {est[1]}"
        else:
            basis = "default"
            notes.append(f"no token count ({why}) and no published size or compute: --time {DEFAULT_TIME}")
        if wall is not None:
            notes.append(f"--time from the {basis} ({why})")
    time = planner.sbatch_time(wall) if wall is not None else DEFAULT_TIME
    cpu = wants_cpu(recipe)
    dtype_bytes = 4 if cpu or recipe.model.torch_dtype in ("float32", "auto") else 2
    params = report.params if report else planner.count_parameters(planner.model_config(recipe))
    stage, offload = 0, False
    if recipe.launch.deepspeed is not None:
        ds_cfg = deepspeed.load_config(recipe)
        stage, offload = deepspeed.zero_stage(ds_cfg), deepspeed.offloads_optimizer(ds_cfg)
    # ZeRO-3 builds the model partitioned: a process holds one checkpoint shard at a time (<= 10 GiB)
    weights = min(dtype_bytes * params, 10 * 2**30) if stage == 3 else dtype_bytes * params
    host_opt = 12.0 * params / (nodes * gpn) if offload else 0.0
    per_proc = weights + host_opt + HOST_OVERHEAD_GIB * 2**30
    mem = max(16, 16 * math.ceil(gpn * per_proc / 2**30 / 16))
    return SlurmRequest(nodes, 0 if cpu else gpn, time, mem, basis, notes)
