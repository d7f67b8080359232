"""Recipe + allocation -> one torchrun command per node (and the dry-run that prints them).

Every node runs the same command; torchrun's c10d rendezvous at the first host assigns ranks::

    python -m torch.distributed.run --nnodes N --nproc-per-node G --rdzv-backend c10d \\
        --rdzv-endpoint <first host>:<port> --rdzv-id <id> <entry> <finetune.py flags>

``<entry>`` is LMFlow's ``examples/finetune.py`` (engine ``lmflow``) or ``-m astrollama.train.engine``
(engine ``local``); both get the same flags from :func:`astrollama.train.lmflow.finetune_args`.
``engine: auto`` means lmflow where LMFlow is found, else local. A recipe that says ``lmflow``
never falls back: the error tells the user to pass ``launch.engine=local``.

Before a plan is returned (so before anything is launched, and before ``train run`` writes
``provenance/`` or ``logs/``) the allocation's ranges (nodes, processes per node, rendezvous port),
the batch plan, EVERY dataset shard as LMFlow will read it (``astrollama.lmflow_data.summarize_dataset``:
parsed, ``"type"`` first, ASCII, ``text_only`` with ``instances`` of ``{"text": str}`` or
``conversation`` with a ``data.conversation_template`` the engine implements), the DeepSpeed
config and, for ``train run``, the model path are checked; every failure is one
:class:`RecipeError` line naming the file and the field.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from astrollama.lmflow_data import CONVERSATION, LMFlowDataError, summarize_dataset
from astrollama.models import MODEL_REFERENCES
from astrollama.train import deepspeed
from astrollama.train.batch import BatchPlan, plan_batch
from astrollama.train.lmflow import LMFLOW_COMMIT, finetune_args
from astrollama.train.recipe import (
    MAX_GPUS_PER_NODE,
    MAX_NODES,
    Recipe,
    RecipeError,
    check_template,
)

__all__ = [
    "LMFLOW_PLACEHOLDER",
    "LaunchPlan",
    "build_launch",
    "find_lmflow_script",
    "slurm_hostnames",
    "stage_python",
]

LOCAL_ENGINE_MODULE = "astrollama.train.engine"
LMFLOW_SHIM_MODULE = "astrollama.train.lmflow_shim"
LMFLOW_ENV = "ASTROLLAMA_LMFLOW_DIR"
LMFLOW_PLACEHOLDER = f"${{{LMFLOW_ENV}}}/examples/finetune.py"


@dataclass
class LaunchPlan:
    engine: str  # "lmflow" | "local"
    batch: BatchPlan
    nodes: list[str]
    commands: list[list[str]]  # one argv per node, same order as ``nodes``
    env: dict[str, str]
    output_dir: Path  # checkpoints only (LMFlow refuses a non-empty output dir without checkpoints)
    log_dir: Path
    notes: list[str] = field(default_factory=list)  # dry-run caveats (e.g. LMFlow not found here)

    def render(self) -> str:
        """The plan as text: the batch box, then the full command for every node."""
        gpus = self.batch.world_size // max(len(self.nodes), 1)
        lines = [
            f"engine: {self.engine}",
            f"batch:  {self.batch.box(len(self.nodes), gpus)}",
            f"output: {self.output_dir} (checkpoints)",
            f"logs:   {self.log_dir}",
        ]
        lines += [f"note:   {n}" for n in self.notes]
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        for i, (host, argv) in enumerate(zip(self.nodes, self.commands, strict=True)):
            role = " (rendezvous host)" if i == 0 else ""
            lines += ["", f"# node {i}: {host}{role}", f"env {env} \\", "  " + _wrap(argv)]
        return "\n".join(lines)


def _quote(arg: str) -> str:
    return f'"{arg}"' if arg == LMFLOW_PLACEHOLDER else shlex.quote(arg)  # let the shell expand it


def _wrap(argv: list[str]) -> str:
    """Quoted argv with one ``--flag value`` per line, the entry point on its own line."""
    parts: list[list[str]] = [[]]
    for a in argv:
        new_line = a.startswith("--") or a == "-m" or a == LMFLOW_PLACEHOLDER or a.endswith(".py")
        if new_line and parts[-1] and parts[-1][-1] != "-m":
            parts.append([])
        parts[-1].append(a)
    return " \\\n    ".join(" ".join(_quote(a) for a in p) for p in parts)


def slurm_hostnames() -> list[str] | None:
    """Hostnames of the current Slurm allocation (``scontrol show hostnames``), or None outside Slurm."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not nodelist:
        return None
    out = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], check=True, capture_output=True, text=True
    ).stdout
    return out.split()


def find_lmflow_script(recipe: Recipe) -> Path | None:
    """LMFlow's ``examples/finetune.py``: from ``launch.lmflow_dir``, ``$ASTROLLAMA_LMFLOW_DIR``, or
    the checkout an editable ``lmflow`` install points at. None when none of these has it."""
    candidates: list[Path] = []
    if recipe.launch.lmflow_dir:
        candidates.append(Path(recipe.launch.lmflow_dir).expanduser())
    if os.environ.get(LMFLOW_ENV):
        candidates.append(Path(os.environ[LMFLOW_ENV]).expanduser())
    spec = importlib.util.find_spec("lmflow")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).resolve().parents[2])  # <checkout>/src/lmflow/__init__.py
    for root in candidates:
        script = root / "examples" / "finetune.py"
        if script.is_file():
            return script.resolve()
    return None


def _resolve_engine(recipe: Recipe, dry_run: bool) -> tuple[str, Path | None, list[str]]:
    engine = recipe.launch.engine
    if engine == "local":
        return "local", None, []
    script = find_lmflow_script(recipe)
    if script is not None:
        return "lmflow", script, []
    if engine == "auto":
        return "local", None, ["engine auto: LMFlow not found, using the local transformers.Trainer engine"]
    where = f"launch.lmflow_dir, ${LMFLOW_ENV} or an editable lmflow install (commit {LMFLOW_COMMIT[:12]})"
    if dry_run:
        return "lmflow", None, [f"LMFlow not found here; on the cluster it comes from {where}"]
    raise RecipeError(
        recipe.path,
        "launch.engine",
        f"is 'lmflow' but LMFlow's examples/finetune.py was not found via {where}; "
        "to train with the local transformers.Trainer engine instead pass launch.engine=local",
    )


def stage_python(repo: str | os.PathLike[str] = ".", stage_venv: str = ".venv-train") -> tuple[str, str]:
    """(the Python a ``slurm/*.sh`` stage will run, why), by ``slurm/_env.sh``'s rule: the
    ``$ASTROLLAMA_VENV`` environment; else the one ``$ASTROLLAMA_ENV_SETUP`` activates (known only
    when it runs); else ``<repo>/<stage_venv>``; else ``<repo>/.venv``; else the calling one."""
    repo = Path(repo).resolve()
    env = os.environ.get("ASTROLLAMA_VENV")
    if env:
        return str(Path(env) / "bin" / "python3"), "$ASTROLLAMA_VENV"
    if os.environ.get("ASTROLLAMA_ENV_SETUP"):
        return "python3", "the environment $ASTROLLAMA_ENV_SETUP activates (its python3)"
    for venv, why in (
        (repo / stage_venv, f"{stage_venv} (the stage's environment)"),
        (repo / ".venv", ".venv"),
    ):
        if (venv / "bin" / "activate").is_file():
            return str(venv / "bin" / "python3"), why
    import shutil

    return shutil.which("python3") or sys.executable, "the calling environment (no stage environment found)"


def _check_dataset(recipe: Recipe, key: str, path: Path | None, notes: list[str] | None = None) -> None:
    """Check the dataset at ``path``; with ``notes`` (a dry-run) a directory that does not exist
    yet is skipped and the skip is noted, so the plan can be printed before the data exists."""
    if path is None:
        return
    if notes is not None and not Path(path).exists():
        notes.append(f"data check skipped: {key} {path} does not exist yet (train run checks it)")
        return
    try:
        kind = summarize_dataset(path).kind
    except LMFlowDataError as e:
        raise RecipeError(recipe.path, key, str(e)) from None
    template = recipe.data.conversation_template
    if kind == CONVERSATION and template is None:
        raise RecipeError(
            recipe.path,
            "data.conversation_template",
            f"{path} holds conversations (SFT): set the model family's template, e.g. llama3 or chatml",
        )
    if kind != CONVERSATION and template is not None:
        raise RecipeError(
            recipe.path,
            key,
            f"is a {kind} corpus, but data.conversation_template "
            f"({template!r}) says SFT: point it at LMFlow conversation files",
        )


def _check_model(recipe: Recipe) -> None:
    """A real launch needs the model: a local directory with config.json, a model reference, or a
    hub name (offline: already in the Hugging Face cache). Checked here, before any file is written."""
    name = recipe.model.name_or_path
    if name in MODEL_REFERENCES:
        return
    p = Path(name).expanduser()
    looks_local = p.is_absolute() or name.startswith((".", "~")) or p.exists() or name.count("/") != 1
    if looks_local:
        if not p.is_dir():
            raise RecipeError(recipe.path, "model.name_or_path", f"{p} is not a directory")
        if not (p / "config.json").is_file():
            raise RecipeError(recipe.path, "model.name_or_path", f"{p} has no config.json (not a checkpoint)")
        return
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ) not in ("", "0"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise RecipeError(
                recipe.path,
                "model.name_or_path",
                f"{name!r} is neither a local directory nor in the Hugging Face cache (offline)",
            )


def _check_ranges(recipe: Recipe, nodes: list[str], gpus_per_node: int, port: int) -> None:
    if not nodes:
        raise RecipeError(recipe.path, "launch.nodes", "the allocation has no nodes")
    if len(nodes) > MAX_NODES:
        raise RecipeError(recipe.path, "launch.nodes", f"must be <= {MAX_NODES}, got {len(nodes)}")
    if not 1 <= gpus_per_node <= MAX_GPUS_PER_NODE:
        raise RecipeError(
            recipe.path, "launch.gpus_per_node", f"must be in 1..{MAX_GPUS_PER_NODE}, got {gpus_per_node}"
        )
    if not (port == 0 and len(nodes) == 1) and not 1 <= port <= 65535:  # 0: one node, torchrun picks
        raise RecipeError(recipe.path, "launch.rdzv_port", f"must be a TCP port in 1..65535, got {port}")


def build_launch(
    recipe: Recipe,
    *,
    nodes: list[str],
    gpus_per_node: int,
    rdzv_port: int | None = None,
    rdzv_id: str = "astrollama",
    python: str = sys.executable,
    dry_run: bool = False,
    check_data: bool = True,
    check_model: bool = False,
) -> LaunchPlan:
    """Check everything that can be checked before launch, then build the per-node commands.

    ``nodes`` are hostnames, the first being the rendezvous host; ``gpus_per_node`` is the number
    of training processes per node (1 on a CPU machine). ``rdzv_port`` defaults to
    ``launch.rdzv_port``. ``dry_run`` only relaxes finding LMFlow (the command then shows
    ``$ASTROLLAMA_LMFLOW_DIR/examples/finetune.py``) and skips a dataset directory that does not
    exist yet, with a note; ``check_data=False`` skips the dataset
    directory check (for planning on a machine without the corpus); ``check_model=True`` (``train
    run``) requires the model to be loadable here (:func:`_check_model`).
    """
    port = recipe.launch.rdzv_port if rdzv_port is None else rdzv_port
    _check_ranges(recipe, nodes, gpus_per_node, port)
    plan = plan_batch(
        recipe.batch.global_batch_size,
        len(nodes) * gpus_per_node,
        recipe.batch.max_micro_batch_size,
        file=str(recipe.path),
    )
    data_notes: list[str] | None = [] if dry_run else None
    if check_data:
        _check_dataset(recipe, "data.dataset_path", recipe.data.dataset_path, data_notes)
        _check_dataset(recipe, "data.eval_dataset_path", recipe.data.eval_dataset_path, data_notes)
    if recipe.launch.deepspeed is not None:
        deepspeed.check(recipe, plan=plan)
    engine, script, notes = _resolve_engine(recipe, dry_run)
    notes = [*(data_notes or []), *notes]
    check_template(recipe, engine)
    if check_model:
        _check_model(recipe)
    run_dir = Path(recipe.launch.run_dir)
    output_dir, log_dir = run_dir / "checkpoints", run_dir / "logs"
    flags = finetune_args(recipe, plan, output_dir=output_dir)
    # LMFlow runs under the shim so that the pre-timeout signal saves a checkpoint there too
    entry = (
        ["-m", LOCAL_ENGINE_MODULE]
        if engine == "local"
        else ["-m", LMFLOW_SHIM_MODULE, str(script or LMFLOW_PLACEHOLDER)]
    )
    torchrun = [
        python,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(len(nodes)),
        "--nproc-per-node",
        str(gpus_per_node),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"{nodes[0]}:{port}",
        "--rdzv-id",
        rdzv_id,
        "--monitor-interval",
        "1",  # the default 5 s poll adds ~5 s to the end of every run
    ]
    command = [*torchrun, *entry, *flags]
    env = {"TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    return LaunchPlan(
        engine, plan, list(nodes), [list(command) for _ in nodes], env, output_dir, log_dir, notes
    )
