"""Batch arithmetic: the recipe states the global batch; the allocation decides the rest.

    global_batch_size = world_size x per_device_train_batch_size x gradient_accumulation_steps

``world_size`` is the real number of training processes (nodes x GPUs per node). The micro-batch is
the largest value not above ``batch.max_micro_batch_size`` that divides the per-process share
exactly, so accumulation is as small as memory allows. An allocation that cannot realise the global
batch exactly is refused before anything launches: changing the number of nodes never silently
changes the optimisation.

All arithmetic is O(sqrt(n)) in the per-process share (divisors by trial division up to its square
root), and the global batch is bounded by :data:`MAX_GLOBAL_BATCH`, so no value of a recipe can
make planning hang.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from astrollama.train.recipe import MAX_GLOBAL_BATCH, RecipeError

__all__ = ["BatchError", "BatchPlan", "plan_batch"]


class BatchError(RecipeError):
    """The global batch cannot be realised on this allocation (one-line message with the numbers)."""


@dataclass(frozen=True)
class BatchPlan:
    global_batch_size: int
    world_size: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int

    def box(self, nodes: int | None = None, gpus_per_node: int | None = None) -> str:
        """One line for logs and dry-runs: global = world x micro x accumulation."""
        topo = f" ({nodes} nodes x {gpus_per_node})" if nodes and gpus_per_node else ""
        return (
            f"global batch {self.global_batch_size} = {self.world_size} processes{topo}"
            f" x micro-batch {self.per_device_train_batch_size}"
            f" x gradient accumulation {self.gradient_accumulation_steps}"
        )


def plan_batch(
    global_batch_size: int, world_size: int, max_micro_batch_size: int, *, file: str = "(recipe)"
) -> BatchPlan:
    """Derive micro-batch and accumulation; raise :class:`BatchError` when impossible.

    ``file`` names the recipe in the error message (``<file>: batch.global_batch_size: ...``).
    """
    for name, value in (
        ("global_batch_size", global_batch_size),
        ("world_size", world_size),
        ("max_micro_batch_size", max_micro_batch_size),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BatchError(file, f"batch.{name}", f"must be a positive integer, got {value!r}")
    if global_batch_size > MAX_GLOBAL_BATCH:
        raise BatchError(
            file,
            "batch.global_batch_size",
            f"{global_batch_size} is above the limit {MAX_GLOBAL_BATCH} sequences per step",
        )
    if global_batch_size % world_size:
        fits = _divisors(global_batch_size)
        raise BatchError(
            file,
            "batch.global_batch_size",
            f"{global_batch_size} is not divisible by the {world_size} training processes of this "
            f"allocation ({global_batch_size} / {world_size} = {global_batch_size / world_size:g}); "
            f"process counts that work: {', '.join(map(str, fits))}",
        )
    per_process = global_batch_size // world_size
    micro = max(m for m in _divisors(per_process) if m <= max_micro_batch_size)
    return BatchPlan(global_batch_size, world_size, micro, per_process // micro)


def _divisors(n: int) -> list[int]:
    """All divisors of ``n``, ascending, by trial division up to sqrt(n)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})
