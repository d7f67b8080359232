"""``astrollama train run RECIPE [key=value ...]``: what ONE node executes (``slurm/cpt.sh`` runs it).

1. Loads the recipe and reads the allocation from the environment: under Slurm the hosts come from
   ``scontrol show hostnames $SLURM_JOB_NODELIST``, this node's index from ``$SLURM_NODEID`` and the
   processes per node from ``$SLURM_GPUS_ON_NODE`` / ``$CUDA_VISIBLE_DEVICES`` / the visible CUDA
   devices. A recipe with ``trainer.use_cpu: true`` (the demo, the CPU tests) runs
   ``launch.gpus_per_node`` CPU processes; any other recipe is refused in one line (exit 2) when
   the node sees fewer GPUs than ``launch.gpus_per_node``, before anything is written.
   Outside Slurm it is one node, ``localhost``, with rendezvous port 0 (torchrun binds a free port,
   so two local runs never collide on ``launch.rdzv_port``). Each node reads its OWN environment
   here, in Python, so there is no shell variable that could expand on the wrong host.
2. Builds the launch plan (``astrollama.train.launch.build_launch``): batch arithmetic, data and
   DeepSpeed checks happen before anything starts.
3. Picks the newest COMPLETE checkpoint in the output dir (``astrollama.train.checkpoints``; node 0
   first moves half-written newer ones aside) and appends ``--resume_from_checkpoint`` to the
   command, for both engines.
4. Node 0 writes the provenance of this attempt into ``<run_dir>/provenance/attempt-NNN[-job<ID>
   -restart<K>]/`` in one atomic directory rename: resolved recipe (YAML + JSON), git SHA + dirty
   flag, ``pip freeze``, environment (SLURM_*, CUDA_*, ...), the launch plan (JSON + text), the
   batch box and the resume decision.
5. Runs this node's torchrun command (output also teed to ``<run_dir>/logs/<attempt>-node<K>.log``)
   and returns its exit status.

Signals: the first SIGUSR1/SIGTERM/SIGINT creates the stop file (``$ASTROLLAMA_STOP_FILE``, set for
the workers): every worker finishes its current optimizer step, saves a checkpoint there and exits;
the runner then returns 75 (``REQUEUE_EXIT_CODE``) unless training finished anyway (exit 0).
A rerun of a finished run resumes from its last checkpoint and ends at once. torchrun is
started in its own session with SIGUSR1 ignored, so a stray USR1 cannot kill the launcher; a second
SIGINT (Ctrl-C twice) sends SIGTERM to torchrun for a hard stop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from astrollama.io import atomic_dir, claim_dir, file_lock
from astrollama.paths import REPO_ROOT
from astrollama.provenance import PipFreeze, environment, git_info

log = logging.getLogger("astrollama.train.run")


@dataclass(frozen=True)
class Allocation:
    """Where this process runs: all hosts, this node's index, processes per node, attempt ids."""

    nodes: list[str]
    node_rank: int
    procs_per_node: int
    device: str  # "cuda" or "cpu"
    job_id: str | None
    restart: int
    rdzv_id: str


def _count_gpus() -> int:
    """GPUs this node may use: Slurm's count, else CUDA_VISIBLE_DEVICES, else what torch sees."""
    from astrollama.train.resources import visible_gpus

    return visible_gpus()[0]


def rendezvous_id(job: str | None, restart: int | str) -> str:
    """The torchrun rendezvous id of one attempt: ``slurm-<job>-<restart>`` under Slurm (every node
    of the attempt agrees, a requeued attempt gets a fresh one), else unique to this process."""
    return f"slurm-{job}-{restart}" if job else f"local-{socket.gethostname()}-{os.getpid()}"


def detect_allocation(cpu_procs_per_node: int, *, use_cpu: bool = False) -> Allocation:
    """Read the allocation from Slurm's environment, or describe the local machine.

    ``use_cpu`` (the recipe's ``trainer.use_cpu``): ``cpu_procs_per_node`` CPU processes even where
    GPUs are visible. Otherwise the visible GPUs, one process each; with none, CPU processes (the
    caller refuses that for a GPU recipe: :func:`astrollama.train.resources.require_gpus`)."""
    from astrollama.train.launch import slurm_hostnames

    job = os.environ.get("SLURM_JOB_ID")
    restart = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    hosts = slurm_hostnames() if job else None
    if hosts:
        node_rank = int(os.environ.get("SLURM_NODEID", "0"))
        nnodes = int(os.environ.get("SLURM_NNODES", str(len(hosts))))
        if nnodes != len(hosts):
            raise RuntimeError(f"SLURM_NNODES={nnodes} but the node list has {len(hosts)} hosts: {hosts}")
        rdzv_id = rendezvous_id(job, restart)
    else:
        hosts, node_rank = ["localhost"], 0
        rdzv_id = rendezvous_id(None, restart)
    gpus = 0 if use_cpu else _count_gpus()
    if gpus:
        return Allocation(hosts, node_rank, gpus, "cuda", job, restart, rdzv_id)
    return Allocation(hosts, node_rank, cpu_procs_per_node, "cpu", job, restart, rdzv_id)


# ----------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------
def _precision(recipe, alloc: Allocation, engine: str) -> str:
    """How the run trains: the local engine keeps bf16 on CPU only where the CPU has bfloat16 units
    (``astrollama.train.engine.training_precision``); LMFlow takes ``--bf16`` as it is."""
    from astrollama.train.engine import training_precision

    bf16 = bool(recipe.trainer.get("bf16", False))
    use_cpu = alloc.device == "cpu" or bool(recipe.trainer.get("use_cpu", False))
    return training_precision(bf16, use_cpu and engine == "local")


def write_provenance(
    recipe, plan, alloc: Allocation, resume: Path | None, argv: list[str], freeze: PipFreeze | None = None
) -> Path:
    """Write this attempt's provenance directory atomically; return its path."""
    import yaml

    prov = Path(recipe.launch.run_dir) / "provenance"
    prov.mkdir(parents=True, exist_ok=True)
    suffix = f"-job{alloc.job_id}-restart{alloc.restart}" if alloc.job_id else ""
    git, frozen = git_info(REPO_ROOT), (freeze or PipFreeze()).text()  # slow parts outside the lock
    with file_lock(prov / ".lock"):
        n = 1 + sum(1 for p in prov.iterdir() if p.is_dir() and p.name.startswith("attempt-"))
        final = prov / f"attempt-{n:03d}{suffix}"
        with atomic_dir(final) as tmp:
            resolved = recipe.resolved_dict()
            (tmp / "recipe.yaml").write_text(
                f"# resolved recipe ({recipe.path}; overrides: {json.dumps(argv) if argv else 'none'})\n"
                + yaml.safe_dump(resolved, sort_keys=False)
            )
            (tmp / "recipe.json").write_text(json.dumps(resolved, indent=2) + "\n")
            (tmp / "git.json").write_text(json.dumps(git, indent=2) + "\n")
            (tmp / "pip-freeze.txt").write_text(frozen)
            (tmp / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
            launch = {
                "engine": plan.engine,
                "nodes": plan.nodes,
                "commands": plan.commands,
                "env": plan.env,
                "output_dir": str(plan.output_dir),
                "log_dir": str(plan.log_dir),
                "batch": asdict(plan.batch),
                "allocation": asdict(alloc),
                "resume_from_checkpoint": str(resume) if resume else None,
                "precision": _precision(recipe, alloc, plan.engine),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": socket.gethostname(),
                "python": sys.executable,
                "argv": [str(recipe.path), *argv],
            }
            (tmp / "launch.json").write_text(json.dumps(launch, indent=2) + "\n")
            (tmp / "launch.txt").write_text(plan.render() + "\n")
            gpn = plan.batch.world_size // max(len(plan.nodes), 1)
            (tmp / "batch.txt").write_text(plan.batch.box(len(plan.nodes), gpn) + "\n")
    return final


# ----------------------------------------------------------------------------------------------
# Running torchrun with signal handling
# ----------------------------------------------------------------------------------------------
class _Signals:
    """First SIGUSR1/SIGTERM/SIGINT -> stop file; a second SIGINT -> SIGTERM to torchrun."""

    def __init__(self, stop_file: Path) -> None:
        self.stop_file = stop_file
        self.proc: subprocess.Popen | None = None
        self.requested = False
        self.ints = 0

    def handle(self, signum, frame) -> None:  # noqa: ARG002
        if signum == signal.SIGINT:
            self.ints += 1
            if self.ints >= 2 and self.proc is not None and self.proc.poll() is None:
                os.write(2, b"[astrollama train run] second Ctrl-C: terminating torchrun\n")
                self.proc.send_signal(signal.SIGTERM)
                return
        if not self.requested:
            self.requested = True
            self.stop_file.parent.mkdir(parents=True, exist_ok=True)
            self.stop_file.touch()
            os.write(
                2,
                f"[astrollama train run] {signal.Signals(signum).name}: asking the workers to "
                "save a checkpoint at the end of this step and stop\n".encode(),
            )

    def install(self) -> None:
        for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self.handle)


def _child_setup() -> None:
    # torchrun: its own session (a terminal's Ctrl-C goes to the runner only) and SIGUSR1 ignored
    # (Python's default action would kill the launcher and orphan the workers).
    os.setsid()
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def _tee(src, dest_path: Path) -> None:
    with open(dest_path, "ab") as dest:
        for line in iter(src.readline, b""):
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
            dest.write(line)
            dest.flush()


# a run directory's owner marker (astrollama.io): a rerun resumes in it; a run directory of an
# earlier version holds nothing but what a run writes, with its provenance/ or checkpoints/
RUN_OWNER = "train run"
_RUN_ENTRIES = frozenset({"provenance", "checkpoints", "checkpoints.incomplete", "logs", "eval"})


def _legacy_run_dir(directory: Path) -> bool:
    names = {p.name for p in directory.iterdir() if not p.name.startswith(".")}
    if names == {"logs"}:  # another node of the same job wrote its log before node 0 claimed the run
        return all(f.is_file() and f.suffix == ".log" for f in (directory / "logs").iterdir())
    return names <= _RUN_ENTRIES and bool(names & {"provenance", "checkpoints"})


def run(recipe_path: str, overrides: list[str]) -> int:
    from astrollama.train.checkpoints import latest_complete_checkpoint, quarantine_incomplete
    from astrollama.train.launch import build_launch
    from astrollama.train.preempt import REQUEUE_EXIT_CODE, STOP_FILE_ENV
    from astrollama.train.recipe import load_recipe

    node_rank = int(os.environ.get("SLURM_NODEID", "0")) if os.environ.get("SLURM_JOB_ID") else 0
    freeze = PipFreeze() if node_rank == 0 else None  # runs while the recipe is checked
    recipe = load_recipe(recipe_path, overrides)
    from astrollama.train.resources import require_gpus, visible_gpus, wants_cpu

    alloc = detect_allocation(recipe.launch.gpus_per_node, use_cpu=wants_cpu(recipe))
    if not alloc.job_id and recipe.launch.nodes > 1:
        log.warning(
            "launch.nodes=%d but not inside a Slurm allocation: running on this machine only",
            recipe.launch.nodes,
        )
    # outside Slurm: port 0, torchrun binds a free one (two local runs never share launch.rdzv_port)
    plan = build_launch(
        recipe,
        nodes=alloc.nodes,
        gpus_per_node=alloc.procs_per_node,
        rdzv_port=None if alloc.job_id else 0,
        rdzv_id=alloc.rdzv_id,
        python=sys.executable,
        check_model=True,
    )
    if not wants_cpu(recipe):  # a GPU recipe on a node without its GPUs: refuse, never crawl on CPU
        require_gpus(recipe, *visible_gpus())
    gpn = alloc.procs_per_node
    log.info(
        "node %d/%d (%s), %d %s process(es): %s",
        alloc.node_rank,
        len(alloc.nodes),
        socket.gethostname(),
        gpn,
        alloc.device,
        plan.batch.box(len(alloc.nodes), gpn),
    )
    if alloc.node_rank == 0:  # someone else's directory: refused before anything is written there
        where = f"{recipe_path}: launch.run_dir"
        claim_dir(recipe.launch.run_dir, RUN_OWNER, legacy=(_legacy_run_dir,), what=where, create=True)
        quarantine_incomplete(plan.output_dir)
    resume = latest_complete_checkpoint(plan.output_dir)
    command = list(plan.commands[alloc.node_rank])
    if resume is not None:
        command += ["--resume_from_checkpoint", str(resume)]
        log.info("resuming from %s", resume)
    else:
        log.info("no complete checkpoint in %s: starting from step 0", plan.output_dir)
    attempt = f"restart{alloc.restart}" if alloc.job_id else time.strftime("%Y%m%dT%H%M%S")
    if alloc.node_rank == 0:
        prov = write_provenance(recipe, plan, alloc, resume, overrides, freeze)
        log.info("provenance: %s", prov)
        attempt = prov.name
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    stop_file = Path(recipe.launch.run_dir) / ".stop" / alloc.rdzv_id
    env = {**os.environ, **plan.env, STOP_FILE_ENV: str(stop_file)}
    sig = _Signals(stop_file)
    sig.install()
    log.info("exec: %s", shlex.join(command))
    proc = subprocess.Popen(
        command, env=env, preexec_fn=_child_setup, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    sig.proc = proc
    log_file = plan.log_dir / f"{attempt}-node{alloc.node_rank}.log"
    t = threading.Thread(target=_tee, args=(proc.stdout, log_file), daemon=True)
    t.start()
    rc = proc.wait()
    t.join(timeout=10)
    stopped = sig.requested or stop_file.exists()
    if alloc.node_rank == 0 and stop_file.exists():
        stop_file.unlink(missing_ok=True)
    if rc == 0:
        log.info("torchrun finished (exit 0)")
        return 0
    if stopped:  # a finished run exits 0; a stopped one resumes after a requeue/resubmission
        log.warning(
            "stopped on request; newest complete checkpoint: %s; exit %d = requeue me",
            latest_complete_checkpoint(plan.output_dir),
            REQUEUE_EXIT_CODE,
        )
        return REQUEUE_EXIT_CODE
    log.error("torchrun failed with exit status %d (log: %s)", rc, log_file)
    return rc


def register(sub: argparse._SubParsersAction) -> None:
    what = "train on this node: what slurm/cpt.sh runs on every node (resumes, writes provenance)"
    p = sub.add_parser("run", help=what, description=what)
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=lambda a: run(a.recipe, list(a.overrides)))
