"""``python -m astrollama.train.lmflow_shim SCRIPT [flags]``: run LMFlow's ``examples/finetune.py``
(or any script that trains with ``transformers.Trainer``) with this project's preemption handling.

LMFlow's script cannot take callbacks from the command line, so this shim patches
``transformers.Trainer`` before running the script as ``__main__`` (``runpy``):

* every Trainer gets :class:`~astrollama.train.preempt.PreemptionCallback` and the per-step log
  line (unless it already has them, as the local engine does): SIGUSR1/SIGTERM or
  ``$ASTROLLAMA_STOP_FILE`` -> checkpoint at the end of the current step on all ranks, then stop;
* when ``Trainer.train`` returns after such a stop, the process exits with 75 at once, so the
  script does not go on to save an unfinished model as if it were final (LMFlow's finetuner calls
  ``trainer.save_model()`` right after ``train()``);
* on a machine without CUDA, ``--use_cpu True`` is added unless given (as the local engine does):
  without it accelerate forms no gloo DDP group and every torchrun process trains its own model;
* LMFlow's dataset loader gets its ``*.json`` files in sorted order: it lists them with
  ``Path.glob`` (directory order, which differs between filesystems and copies of a corpus) and
  concatenates them in that order before packing, so without this the packed blocks depend on the
  filesystem. Sorted is the order of the local engine and of ``astrollama train plan``.

The script runs as ``python SCRIPT`` would run it: ``sys.argv[0]`` is the script and its folder is
first on ``sys.path`` (LMFlow's ``examples/finetune.py`` removes that entry on its first lines).

Use it in place of the script path: ``torchrun ... -m astrollama.train.lmflow_shim
$LMFLOW/examples/finetune.py --model_name_or_path ...``.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys

log = logging.getLogger("astrollama.train")


def install() -> None:
    """Patch ``transformers.Trainer`` (idempotent)."""
    from transformers import Trainer

    from astrollama.train.preempt import (
        REQUEUE_EXIT_CODE,
        PreemptionCallback,
        StepLogCallback,
        StopRequest,
        barrier,
    )

    if getattr(Trainer, "_astrollama_patched", False):
        return
    stop = StopRequest().install()
    orig_init, orig_train = Trainer.__init__, Trainer.train

    def __init__(self, *args, **kwargs):
        orig_init(self, *args, **kwargs)
        callbacks = self.callback_handler.callbacks
        if not any(isinstance(c, PreemptionCallback) for c in callbacks):
            self.add_callback(PreemptionCallback(stop))
        if not any(isinstance(c, StepLogCallback) for c in callbacks):
            self.add_callback(StepLogCallback())

    def train(self, *args, **kwargs):
        result = orig_train(self, *args, **kwargs)
        pre = next((c for c in self.callback_handler.callbacks if isinstance(c, PreemptionCallback)), None)
        if pre is not None and pre.stopped_at is not None and self.state.global_step < self.state.max_steps:
            log.warning(
                "stopped at step %d on request: exiting %d before the script saves a final model",
                self.state.global_step,
                REQUEUE_EXIT_CODE,
            )
            barrier()
            sys.exit(REQUEUE_EXIT_CODE)
        return result

    Trainer.__init__ = __init__
    Trainer.train = train
    Trainer._astrollama_patched = True


def sort_lmflow_data_files() -> None:
    """Make LMFlow's ``Dataset`` load its data files in sorted order (no-op without LMFlow)."""
    import importlib.util

    if importlib.util.find_spec("lmflow") is None:
        return
    import lmflow.datasets.dataset as lmflow_dataset

    load = lmflow_dataset.load_dataset
    if getattr(load, "_astrollama_sorted", False):
        return

    def load_dataset(*args, **kwargs):
        files = kwargs.get("data_files")
        if isinstance(files, list):
            kwargs["data_files"] = sorted(files)
        return load(*args, **kwargs)

    load_dataset._astrollama_sorted = True
    lmflow_dataset.load_dataset = load_dataset


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m astrollama.train.lmflow_shim SCRIPT.py [script flags ...]", file=sys.stderr)
        return 2
    script = argv[0]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    from astrollama.train.engine import with_use_cpu

    install()
    sort_lmflow_data_files()
    args = argv[1:] if len(argv) == 2 and argv[1].endswith(".json") else with_use_cpu(argv[1:])
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
