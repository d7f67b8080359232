"""Which ``checkpoint-N`` directory a run resumes from: the newest COMPLETE one.

``transformers.Trainer`` (and LMFlow, which uses it) writes a checkpoint file by file straight into
``output_dir/checkpoint-N``; a job killed while saving leaves a half-written directory that
``transformers.trainer_utils.get_last_checkpoint`` would happily pick (it only looks at the name).
Resuming from it either crashes or silently loses state. Here a checkpoint is complete when:

* ``trainer_state.json`` parses and its ``global_step`` equals N (the Trainer writes this file
  after the weights, optimizer, scheduler and RNG states of process 0);
* model weights are present and non-empty (``model.safetensors``, ``pytorch_model.bin``, their
  sharded ``*.index.json`` with every shard listed, or a LoRA ``adapter_model.*``);
* optimizer state is present: ``optimizer.pt`` (Trainer) or a DeepSpeed ``global_step*`` directory;
* ``scheduler.pt`` is present and non-empty;
* at least one RNG state (``rng_state.pth`` / ``rng_state_<rank>.pth``) exists and every one of
  them is a whole ``torch.save`` archive (other ranks write theirs concurrently with process 0's
  trainer_state.json): a zip whose central directory reads, whose members' CRCs match and which
  holds a ``data.pkl``. Nothing is unpickled: a run directory is untrusted input, and
  ``torch.load(weights_only=False)`` on a planted file would run its code.

Incomplete directories are moved OUT of the output directory, to the sibling
``<output_dir>.incomplete/checkpoint-N-<time>``, by ``quarantine_incomplete``: neither the
Trainer's checkpoint rotation nor LMFlow's own "last checkpoint" detection ever sees them, and
LMFlow, which refuses an output directory holding anything but ``checkpoint-N`` when none of them
is there, starts again after a torn first checkpoint. The resumed run re-executes the steps after the chosen
checkpoint from exactly that state, so no optimizer step is lost or applied twice.
"""

from __future__ import annotations

import logging
import os
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from astrollama.untrusted import read_json

log = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors", "adapter_model.bin")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class CheckpointCheck:
    path: Path
    step: int
    complete: bool
    reason: str  # why it is incomplete ("" when complete)


def _nonempty(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 0


def _weights_ok(d: Path) -> str:
    if any(_nonempty(d / f) for f in _WEIGHT_FILES):
        return ""
    for idx in _WEIGHT_INDEXES:
        if (d / idx).is_file():
            try:  # regular, bounded JSON (astrollama.untrusted)
                shards = set(read_json(d / idx, "config")["weight_map"].values())
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                return f"{idx} unreadable ({e})"
            missing = sorted(s for s in shards if not _nonempty(d / s))
            return f"weight shards missing: {missing}" if missing else ""
    return "no model weights"


def check_checkpoint(d: str | os.PathLike[str]) -> CheckpointCheck:
    """Say whether ``d`` (a ``checkpoint-N`` directory) is complete, and if not, why."""
    d = Path(d)
    m = CHECKPOINT_RE.match(d.name)
    step = int(m.group(1)) if m else -1

    def bad(reason: str) -> CheckpointCheck:
        return CheckpointCheck(d, step, False, reason)

    if not m:
        return bad("name is not checkpoint-<N>")
    if not os.path.lexists(d / "trainer_state.json"):
        return bad("no trainer_state.json")
    try:  # regular, bounded JSON (astrollama.untrusted); InputError is a ValueError
        state = read_json(d / "trainer_state.json", "results")
    except ValueError as e:
        return bad(f"trainer_state.json unreadable ({e})")
    if state.get("global_step") != step:
        return bad(f"trainer_state.json global_step={state.get('global_step')} != {step}")
    reason = _weights_ok(d)
    if reason:
        return bad(reason)
    if not (_nonempty(d / "optimizer.pt") or any(p.is_dir() for p in d.glob("global_step*"))):
        return bad("no optimizer state (optimizer.pt or DeepSpeed global_step*/)")
    if not _nonempty(d / "scheduler.pt"):
        return bad("no scheduler.pt")
    rngs = sorted(d.glob("rng_state*.pth"))
    if not rngs:
        return bad("no rng_state*.pth")
    for r in rngs:
        reason = _torch_archive_whole(r)
        if reason:
            return bad(f"{r.name} {reason}")
    return CheckpointCheck(d, step, True, "")


def _torch_archive_whole(p: Path) -> str:
    """ "" when ``p`` is a complete ``torch.save`` zip archive, else why not. Reads, never unpickles."""
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
            if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
                return "is not a torch.save archive (no data.pkl)"
            torn = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"is torn or not a torch.save archive ({type(e).__name__})"
    return f"is torn (CRC mismatch in {torn})" if torn else ""


def list_checkpoints(output_dir: str | os.PathLike[str]) -> list[CheckpointCheck]:
    """Every ``checkpoint-N`` in ``output_dir``, newest (highest N) first, each checked."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    dirs = [p for p in out.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name)]
    dirs.sort(key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)), reverse=True)
    return [check_checkpoint(p) for p in dirs]


def latest_complete_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint in ``output_dir``, or None; logs every one it skips."""
    for c in list_checkpoints(output_dir):
        if c.complete:
            return c.path
        log.warning("skipping %s: incomplete (%s)", c.path, c.reason)
    return None


def quarantine_incomplete(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Move incomplete ``checkpoint-N`` directories NEWER than the newest complete one out of
    ``output_dir`` into ``<output_dir>.incomplete/``.

    Older incomplete ones are left alone (the Trainer's rotation may be deleting them). Call it
    from one process only (node 0 / rank 0). Returns the new paths.
    """
    moved: list[Path] = []
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = Path(output_dir)
    aside = out.with_name(out.name + ".incomplete")
    for c in list_checkpoints(out):
        if c.complete:
            break
        aside.mkdir(exist_ok=True)
        dest = aside / f"{c.path.name}-{stamp}"
        try:
            c.path.rename(dest)
        except FileNotFoundError:  # another process got there first
            continue
        log.warning("moved incomplete %s out of %s -> %s (%s)", c.path.name, out, dest, c.reason)
        moved.append(dest)
    return moved
