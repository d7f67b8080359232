"""Preemption: stop at the end of the current optimizer step, save a checkpoint, exit "requeue me".

How a stop is requested (any one is enough):

* SIGUSR1 or SIGTERM delivered to a training process (Slurm's ``--signal=USR1@secs``, ``scancel``,
  ``scontrol requeue``, a laptop's ``kill``);
* the file named by ``$ASTROLLAMA_STOP_FILE`` exists. ``astrollama train run`` sets this variable
  and creates the file when IT receives the signal: torchrun starts its workers in their own
  sessions and, on SIGTERM, gives them only 30 s before SIGKILL, so the runner does not forward
  the signal through torchrun but asks the workers directly.

At every step end each process reads its local flag, the flags are combined across processes with
one all-reduce (MAX), and if any process was asked to stop, ALL of them set ``should_save`` and
``should_training_stop``: the Trainer saves ``checkpoint-<step>`` at that same step on every rank
and leaves the training loop. The process then exits with ``REQUEUE_EXIT_CODE``.

The same callbacks are attached to LMFlow's own Trainer by ``astrollama.train.lmflow_shim``.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger("astrollama.train")

#: Exit status of a run that stopped early on request and saved a checkpoint: "requeue me".
#: 75 is EX_TEMPFAIL from sysexits.h ("temporary failure; retry"). Under torchrun the launcher
#: itself exits 1 (it reports the workers' 75 in its summary); ``astrollama train run`` maps a
#: requested stop back to 75, and ``slurm/cpt.sh`` requeues the job on 75.
REQUEUE_EXIT_CODE = 75
STOP_FILE_ENV = "ASTROLLAMA_STOP_FILE"


class StopRequest:
    """Process-wide "please stop" flag, set by a signal handler or the stop file."""

    def __init__(self) -> None:
        self.signum: int | None = None
        env = os.environ.get(STOP_FILE_ENV)
        self.stop_file = Path(env) if env else None

    def _handler(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.signum = signum  # only set a flag here: logging from a handler can deadlock

    def install(self, signums: tuple[int, ...] = (signal.SIGUSR1, signal.SIGTERM)) -> StopRequest:
        for s in signums:
            signal.signal(s, self._handler)
        return self

    def requested(self) -> bool:
        return self.signum is not None or (self.stop_file is not None and self.stop_file.exists())

    def describe(self) -> str:
        if self.signum is not None:
            return f"signal {signal.Signals(self.signum).name}"
        return f"stop file {self.stop_file}"


def _any_rank(flag: bool, device) -> bool:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    """Wait until every rank is here (after a stop checkpoint: nobody exits while others still write)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class PreemptionCallback(TrainerCallback):
    """Turn a stop request into "save a checkpoint at this step, then stop" on every rank."""

    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if _any_rank(self.stop.requested(), args.device):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
            if state.is_world_process_zero:
                why = self.stop.describe() if self.stop.requested() else "another rank"
                log.warning(
                    "stop requested (%s): saving checkpoint-%d and exiting with %d (requeue me)",
                    why,
                    state.global_step,
                    REQUEUE_EXIT_CODE,
                )
        return control


class StepLogCallback(TrainerCallback):
    """One plain log line per optimizer step (rank 0): the record the resume tests count."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            log.info("training: global_step=%d of max_steps=%d", state.global_step, state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            log.info("optimizer step %d/%d done", state.global_step, state.max_steps)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            log.info("saved checkpoint-%d", state.global_step)
