"""Shards for job arrays: which papers this Slurm array task owns, and the shard's file name.

* :func:`shard_from_env` reads the array task from the environment (Slurm, or
  ``ASTROLLAMA_SHARD_INDEX`` / ``ASTROLLAMA_NUM_SHARDS`` for other schedulers);
* :func:`shard_of` assigns each id to exactly one shard by a hash of the id (not by position), so
  the assignment is stable when the paper list grows or is reordered;
* :func:`shard_name` (``00003-of-00010``) names a shard's status log in the manifest and its
  completion marker.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping

from astrollama.errors import InputError


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(shard_index, num_shards) of this Slurm array task, or (0, 1) outside an array.

    Uses ``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` and ``SLURM_ARRAY_TASK_COUNT``, so
    ``--array=0-N`` and ``--array=1-N`` both work; the array must be contiguous (no ``:step``).
    ``ASTROLLAMA_SHARD_INDEX`` / ``ASTROLLAMA_NUM_SHARDS`` override (for other schedulers).
    """
    env = os.environ if env is None else env

    def get(name: str, default: str) -> int:
        try:
            return int(env.get(name, default))
        except ValueError:
            raise InputError(f"environment variable {name}: not an integer: {env[name]!r}") from None

    if "ASTROLLAMA_NUM_SHARDS" in env:
        return get("ASTROLLAMA_SHARD_INDEX", "0"), get("ASTROLLAMA_NUM_SHARDS", "1")
    if "SLURM_ARRAY_TASK_ID" not in env:
        return 0, 1
    task = get("SLURM_ARRAY_TASK_ID", "0")
    lo = get("SLURM_ARRAY_TASK_MIN", "0")
    count = get("SLURM_ARRAY_TASK_COUNT", "1")
    hi = get("SLURM_ARRAY_TASK_MAX", str(lo + count - 1))
    if hi - lo + 1 != count:
        raise InputError(
            f"SLURM array {lo}-{hi} has {count} tasks: use a contiguous --array=A-B (no step/list) "
            "so that every shard runs"
        )
    return task - lo, count


def shard_name(shard_index: int, num_shards: int) -> str:
    """``'00003-of-00010'``: the file name of a shard's status log and marker."""
    check_shard(shard_index, num_shards)
    return f"{shard_index:05d}-of-{num_shards:05d}"


def default_shard() -> str:
    """This process's shard name (from the Slurm array environment, else ``00000-of-00001``)."""
    return shard_name(*shard_from_env())


def check_shard(shard_index: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise InputError(f"--shard-index/--num-shards: shard index {shard_index} not in [0, {num_shards})")


def shard_key(paper_id: str) -> int:
    """A stable 64-bit hash of an id (same on every machine and Python run)."""
    return int.from_bytes(hashlib.sha1(paper_id.encode("utf-8")).digest()[:8], "big")


def shard_of(ids: Iterable[str], shard_index: int | None = None, num_shards: int | None = None) -> list[str]:
    """The ids (in input order) that belong to shard ``shard_index`` of ``num_shards``.

    Defaults come from :func:`shard_from_env`. Every id lands in exactly one shard; the
    assignment depends only on the id, so adding papers never moves existing ones.
    """
    if shard_index is None or num_shards is None:
        env_index, env_count = shard_from_env()
        shard_index = env_index if shard_index is None else shard_index
        num_shards = env_count if num_shards is None else num_shards
    check_shard(shard_index, num_shards)
    return [pid for pid in ids if shard_key(pid) % num_shards == shard_index]


__all__ = ["check_shard", "default_shard", "shard_from_env", "shard_key", "shard_name", "shard_of"]
