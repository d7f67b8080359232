"""``astrollama reproduce TARGET``: one published row, from arXiv to the report, as one job graph.

A target (``reproduce/<name>.yaml``) names the data config, the training recipe(s), the evaluation
config and the published row it is compared with (the number comes from :mod:`astrollama.paper`).
Its stages, in order::

    harvest -> download -> ocr -> aic -> [summarize] -> build -> cpt -> [sft -> merge] -> eval -> report

(the data stages are those the target lists, from its ``data_prep/<name>.yaml``; the demo adds
``demo-sft``, its SFT conversations). Each stage calls its wing through its entry point: data
stages ``astrollama data run CONFIG --stage S`` (the data pipeline runner), training
``slurm/cpt.sh RECIPE`` (CPT and SFT), merging ``slurm/merge.sh RECIPE``, evaluation
``astrollama eval models`` (every model loaded once) then ``astrollama eval report``.

* On Slurm (``sbatch`` on PATH, no ``--local``) every stage is one job (a job array for the
  sharded data stages), submitted with ``sbatch --parsable --requeue`` and
  ``--dependency=afterok:<previous>``; training jobs ask for the recipe's nodes and GPUs. A failed
  stage holds its dependents (``--kill-on-invalid-dep=no``).
* Without Slurm (or with ``--local``) the same graph runs in order on this machine.
* ``--dry-run`` prints every sbatch line (or local command) and needs no data.
* A rerun skips the stages that are complete: a data, eval or report stage when its marker
  ``<work>/done/<stage>[.<task>-of-<n>].json`` is there (written when its command exited 0; one per
  array task), a training stage when its run directory holds the final model, a merge when its
  output holds ``config.json``. Every stage also resumes inside itself (per paper, from the newest
  complete checkpoint), so a requeued job redoes nothing that finished.
* A failed stage prints the command that resumes it: ``astrollama reproduce TARGET --from STAGE``.

Bad input (an unknown key, an unknown stage, a dependency cycle, ``--from`` after ``--until``) is one
line and exit 2 before anything is submitted.
"""

from __future__ import annotations

import argparse
import graphlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrollama.config import ConfigError
from astrollama.errors import InputError
from astrollama.paths import REPO_ROOT
from astrollama.targets import (
    OTHER_ROWS,
    TARGETS,
    MergePart,
    SlurmResources,
    Target,
    TargetError,
    TrainPart,
    load_target,
    published,
    target_path,
)

TRAIN_SCRIPT = "slurm/cpt.sh"
MERGE_SCRIPT = "slurm/merge.sh"
STAGE_SCRIPT = "slurm/stage.sh"
LATER = ("cpt", "sft", "merge", "eval", "report")


# ----------------------------------------------------------------------------------------------
# the graph
# ----------------------------------------------------------------------------------------------


class Stage:
    """One node: how it runs (locally and on Slurm), what completes it, what it needs."""

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind  # kind: data | train | merge | eval | report
        self.commands: list[list[str]] = []  # local commands, in order (a job runs them the same way)
        self.sbatch: list[str] = []  # sbatch options (resources)
        self.script: list[str] = []  # the sbatch script and its arguments
        self.outputs: list[Path] = []  # what it makes (completion of train/merge; inputs of others)
        self.array = 1
        self.after: list[str] = []


class Plan:
    def __init__(self, name: str, target: Target, path: Path) -> None:
        from astrollama.data.pipeline import load_pipeline

        self.name, self.target, self.path = name, target, path
        self.work = _abs(target.work)
        from astrollama import paper

        if target.row != "none" and target.row not in paper.MCQ_SCORES and target.row not in OTHER_ROWS:
            raise TargetError(path, "row", f"{target.row!r} is not a row of astrollama.paper.MCQ_SCORES")
        try:
            self.pipeline = load_pipeline(_abs(target.data.config), target.data.set)
        except ConfigError as e:
            raise TargetError(path, "data.config", str(e)) from None
        data_stages = target.data.stages if target.data.stages is not None else list(self.pipeline.run)
        for s in data_stages:
            if s not in self.pipeline.stages:
                raise TargetError(
                    path,
                    "data.stages",
                    f"stage {s!r} is not in {target.data.config} (one of {', '.join(self.pipeline.stages)})",
                )
        out = self.pipeline.build_out()
        if out is None:
            raise TargetError(
                path, "data.config", f"{target.data.config} has no build section: nothing to train on"
            )
        self.corpus = _abs(out)
        self.stages: dict[str, Stage] = {}
        order: list[str] = []
        for s in sorted(
            data_stages, key=lambda x: self.pipeline.run.index(x) if x in self.pipeline.run else 99
        ):
            self.stages[s] = self._data_stage(s)
            order.append(s)
        self.stages["cpt"] = self._train_stage(
            "cpt", target.cpt, self.corpus / target.data.variant / "train", None
        )
        order.append("cpt")
        last_model = self.stages["cpt"].outputs[0]
        self.models: list[tuple[str, str, Path]] = [
            ("base", "base", Path(self.base_model)),
            ("cpt", "CPT", last_model),
        ]
        if target.sft is not None:
            sft_data = _abs(target.sft.data) if target.sft.data else None
            if sft_data is None:
                raise TargetError(path, "sft.data", "missing: the SFT conversations (a data stage's output)")
            self.stages["sft"] = self._train_stage("sft", target.sft, sft_data, last_model)
            order.append("sft")
            last_model = self.stages["sft"].outputs[0]
            self.models.append(("sft", "SFT", last_model))
        if target.merge is not None:
            self.stages["merge"] = self._merge_stage(target.merge, last_model)
            order.append("merge")
            self.models.append(("merged", "merged", self.stages["merge"].outputs[0]))
        self.stages["eval"] = self._eval_stage()
        self.stages["report"] = self._report_stage()
        order += ["eval", "report"]
        for a, b in zip(order, order[1:], strict=False):
            self.stages[b].after = [a]
        for stage, deps in target.after.items():
            for s in [stage, *deps]:
                if s not in self.stages:
                    raise TargetError(
                        path, f"after.{stage}", f"unknown stage {s!r} (stages: {', '.join(order)})"
                    )
            self.stages[stage].after = list(deps)
        try:
            graphlib.TopologicalSorter({s: st.after for s, st in self.stages.items()}).prepare()
        except graphlib.CycleError as e:
            raise TargetError(path, "after", f"dependency cycle: {' -> '.join(e.args[1])}") from None
        # stable: keep the pipeline order where the graph allows it
        self.order = _stable_topo(order, {s: st.after for s, st in self.stages.items()})

    # ---- stage builders
    @property
    def base_model(self) -> str:
        """The model CPT starts from (a model reference such as ``smollm2-135m`` made local)."""
        from astrollama.models import MODEL_REFERENCES, resolve_model

        name = str(self.recipe("cpt").model.name_or_path)
        return resolve_model(name) if name in MODEL_REFERENCES else name

    def recipe(self, which: str) -> Any:
        from astrollama.train.recipe import load_recipe

        part = getattr(self.target, which)
        key = f"_recipe_{which}"
        if not hasattr(self, key):
            try:
                setattr(self, key, load_recipe(_abs(part.recipe), list(self._train_overrides(which))))
            except InputError as e:
                raise TargetError(self.path, f"{which}.recipe", str(e)) from None
        return getattr(self, key)

    def _train_overrides(self, which: str) -> list[str]:
        part = getattr(self.target, which)
        data = _abs(part.data) if part.data else self.corpus / self.target.data.variant / "train"
        extra = [f"data.dataset_path={data}"]
        if which == "sft":
            extra.append(f"model.name_or_path={self._run_dir('cpt') / 'checkpoints'}")
        return [*extra, *part.overrides]

    def _run_dir(self, which: str) -> Path:
        return Path(self.recipe(which).launch.run_dir)

    def _data_stage(self, s: str) -> Stage:
        from astrollama.data.pipeline import sbatch_line

        st = Stage(s, "data")
        res = self.pipeline.resources[s]
        st.array = res.array
        st.commands = [
            [
                "astrollama",
                "data",
                "run",
                str(self.pipeline.file),
                "--stage",
                s,
                *(f"--set={x}" for x in self.target.data.set),
            ]
        ]
        out = getattr(self.pipeline.stages[s], "out", None) if s != "build" else str(self.corpus)
        st.outputs = [_abs(out) if out else _abs(self.pipeline.root or ".")]
        line = sbatch_line(self.pipeline, s)
        i = line.index(STAGE_SCRIPT)
        st.sbatch = [x for x in line[2:i] if not x.startswith(("--output", "--requeue", "--job-name"))]
        return st

    def _train_stage(self, which: str, part: TrainPart, data: Path, start: Path | None) -> Stage:
        st = Stage(which, "train")
        r = self.recipe(which)
        overrides = self._train_overrides(which)
        st.commands = [["bash", TRAIN_SCRIPT, str(_abs(part.recipe)), *overrides]]
        st.script = [TRAIN_SCRIPT, str(_abs(part.recipe)), *overrides]
        from astrollama.train.resources import slurm_request

        # nodes, GPUs (0 for a CPU recipe: it overrides slurm/cpt.sh's #SBATCH --gpus-per-node=8),
        # and the planner's time and memory estimate unless the target gives its own
        gpus = 0 if r.trainer.get("use_cpu") is True else r.launch.gpus_per_node
        time, mem = "1-00:00:00", None  # the job requeues itself at its limit: a restart, not lost work
        try:
            req = slurm_request(r, count_dataset=False)
            time, mem = req.time, f"{req.mem_gib}G"
        except (ValueError, InputError):  # a model made by an earlier stage (SFT from the CPT run):
            try:  # the estimate of the recipe's own model (the released checkpoint, same shape)
                from astrollama.train.recipe import load_recipe

                own = [o for o in overrides if not o.startswith("model.name_or_path=")]
                req = slurm_request(load_recipe(_abs(part.recipe), own), count_dataset=False)
                time, mem = req.time, f"{req.mem_gib}G"
            except (ValueError, InputError):  # no estimate before it exists
                pass
        st.sbatch = [f"--nodes={r.launch.nodes}", f"--gpus-per-node={gpus}"]
        st.sbatch += _resources(part.slurm, default_time=time)
        if mem and not part.slurm.mem:
            st.sbatch.append(f"--mem={mem}")
        st.outputs = [Path(r.launch.run_dir) / "checkpoints"]
        return st

    def _merge_stage(self, part: MergePart, sft_model: Path) -> Stage:
        st = Stage("merge", "merge")
        out = _abs(part.output) if part.output else self.work / "merged"
        args = [str(_abs(part.recipe)), f"models.sft.path={sft_model}", f"output_dir={out}", *part.overrides]
        st.commands = [["bash", MERGE_SCRIPT, *args]]
        st.script = [MERGE_SCRIPT, *args]
        st.sbatch = _resources(part.slurm, default_time="4:00:00")
        st.outputs = [out]
        return st

    def _eval_stage(self) -> Stage:
        ev = self.target.eval
        st = Stage("eval", "eval")
        heldout = self.corpus / self.target.data.heldout_variant / "validation"
        results = self.work / "eval" / "results"
        labels = self.labels()
        staged = len(self.models) > 2
        from astrollama import paper

        recipe_name = ev.recipe or self.recipe("cpt").name
        if recipe_name not in paper.RECIPE_SCORES:
            recipe_name = None
        # one command: each model loaded once for MCQ, perplexity, completion and embeddings
        # (astrollama.evaluation.pool); the files of `eval model` per model and of `eval embed`
        cmd = ["astrollama", "eval", "models", "--config", str(_abs(ev.config))]
        cmd += [f"--heldout={heldout}", f"--scale={ev.scale}", f"--embed-data={heldout}"]
        cmd.append(f"--embed-out={self.work / 'eval' / 'embeddings'}")
        if ev.key:
            cmd.append(f"--key={_abs(ev.key)}")
        if ev.workers:
            cmd.append(f"--workers={ev.workers}")
        elif ev.gpus_per_node:
            cmd.append("--workers=1")  # one model at a time on the accelerator
        for role, stage_name, model in self.models:
            cmd += ["--model", str(model), "--label", labels[role]]
            cmd += ["--role", "base" if role == "base" else "trained"]
            if staged:
                cmd.append(f"--stage={stage_name}")
            if role in ("base", "cpt") and recipe_name:
                cmd.append(f"--recipe={recipe_name}")
            cmd.append(f"--out={results / role}")
        # `eval embed` flags become --embed-*; both lists come last (they win)
        embed_args = [f"--embed-{a[2:]}" if a.startswith("--") else a for a in ev.embed_args]
        st.commands = [[*cmd, *ev.model_args, *embed_args]]
        st.sbatch = _resources(ev.slurm, default_time="8:00:00")
        if ev.gpus_per_node:
            st.sbatch.append(f"--gpus-per-node={ev.gpus_per_node}")
        st.outputs = [results]
        return st

    def labels(self) -> dict[str, str]:
        base = Path(self.base_model).name
        out = {"base": base}
        prev = base
        for role, stage_name, _ in self.models[1:]:
            prev = out[role] = f"{prev} + {stage_name}"
        return out

    def _report_stage(self) -> Stage:
        st = Stage("report", "report")
        results = [str(self.work / "eval" / "results" / role) for role, _, _ in self.models]
        st.commands = [
            [
                "astrollama",
                "eval",
                "report",
                "--config",
                str(_abs(self.target.eval.config)),
                "--results",
                *results,
                f"--embed={self.work / 'eval' / 'embeddings'}",
                f"--out={self.work / 'eval' / 'report'}",
            ]
        ]
        st.sbatch = ["--time=1:00:00", "--mem=8G"]
        st.outputs = [self.work / "eval" / "report"]
        return st

    # ---- completion
    def marker(self, stage: str, task: int = 0, tasks: int = 1) -> Path:
        suffix = f".{task:05d}-of-{tasks:05d}" if tasks > 1 else ""
        return self.work / "done" / f"{stage}{suffix}.json"

    def complete(self, stage: str) -> bool:
        st = self.stages[stage]
        if st.kind == "train":
            return _final_model(st.outputs[0])
        if st.kind == "merge":
            return (st.outputs[0] / "config.json").is_file()
        # one marker per array task, or one for the whole stage run here (every shard in one process)
        return self.marker(stage).is_file() or all(
            self.marker(stage, t, st.array).is_file() for t in range(st.array)
        )

    def inputs_missing(self, stage: str) -> list[tuple[Path, str]]:
        """(path, the earlier stage that makes it) for each missing input of ``stage``."""
        st = self.stages[stage]
        out = []
        for dep in st.after:
            if not self.complete(dep):
                out.append((self.stages[dep].outputs[0], dep))
        return out

    def resume_command(self, stage: str) -> str:
        return f"astrollama reproduce {shlex.quote(self.name)} --from {stage}"

    # ---- Slurm lines
    def sbatch_line(self, stage: str, after: Sequence[str], log_dir: str = "slurm/logs") -> list[str]:
        st = self.stages[stage]
        dep = [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=no"] if after else []
        log = f"{log_dir}/%x-%A_%a.out" if st.array > 1 else f"{log_dir}/%x-%j.out"
        script = st.script or [STAGE_SCRIPT, "reproduce", self.name, "--run-stage", stage]
        return [
            "sbatch",
            "--parsable",
            f"--job-name=astrollama-{stage}",
            *st.sbatch,
            "--requeue",
            f"--output={log}",
            *dep,
            *script,
        ]


def _stable_topo(order: list[str], deps: dict[str, list[str]]) -> list[str]:
    done: list[str] = []
    left = list(order)
    while left:
        nxt = next(s for s in left if all(d in done for d in deps[s]))
        done.append(nxt)
        left.remove(nxt)
    return done


def shown(cmd: Sequence[str]) -> list[str]:
    """``cmd`` with paths inside the repository written relative to it (jobs run from its root)."""
    return [c.replace(f"{REPO_ROOT}{os.sep}", "") for c in cmd]


def _abs(p: str | os.PathLike[str]) -> Path:
    p = Path(p)
    return p if p.is_absolute() else REPO_ROOT / p


def _resources(r: SlurmResources, default_time: str) -> list[str]:
    out = [f"--time={r.time or default_time}"]
    if r.mem:
        out.append(f"--mem={r.mem}")
    if r.cpus_per_task:
        out.append(f"--cpus-per-task={r.cpus_per_task}")
    return out


def _final_model(run_ckpt_dir: Path) -> bool:
    """The final model (not a checkpoint-N) is saved at the top of the run's checkpoints dir."""
    if not (run_ckpt_dir / "config.json").is_file():
        return False
    return any(run_ckpt_dir.glob("*.safetensors")) or any(run_ckpt_dir.glob("*.bin"))


# ----------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------


def select(plan: Plan, start: str | None, stop: str | None) -> list[str]:
    for flag, s in (("--from", start), ("--until", stop)):
        if s is not None and s not in plan.stages:
            raise InputError(f"{flag} {s}: no such stage in {plan.name} ({', '.join(plan.order)})")
    i = plan.order.index(start) if start else 0
    j = plan.order.index(stop) if stop else len(plan.order) - 1
    if i > j:
        raise InputError(f"--from {start} comes after --until {stop} ({' -> '.join(plan.order)})")
    return plan.order[i : j + 1]


def _env() -> dict[str, str]:
    """The environment of a training or merge script run here: no SLURM_* (a local run, even
    inside another stage's job), every CPU for the CPU engine unless OMP_NUM_THREADS says so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    return env


def run_stage(plan: Plan, stage: str) -> int:
    """Run one stage here (locally, or as the body of its Slurm job): skip it when complete, run its
    commands in order, then write its marker. Returns the exit code."""
    from astrollama.data.shards import shard_from_env
    from astrollama.io import atomic_write_json

    st = plan.stages[stage]
    task, tasks = shard_from_env() if st.array > 1 else (0, 1)
    marker = plan.marker(stage, task, tasks)
    if plan.complete(stage) or marker.is_file():
        print(f"[reproduce] {stage}: complete; nothing to do", flush=True)
        return 0
    t0 = time.time()
    for cmd in st.commands:
        print(f"[reproduce] {stage}: {shlex.join(cmd)}", flush=True)
        if cmd[0] == "astrollama":  # in this process: one interpreter, imports loaded once
            from astrollama.commands import run as run_command

            rc = run_command(cmd[1:])
        else:  # a training or merge script: a local run, even inside a job of another stage
            rc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env()).returncode
        if rc != 0:
            print(
                f"[reproduce] stage {stage} failed (exit {rc}); its dependents wait. "
                f"Resume with: {plan.resume_command(stage)}",
                file=sys.stderr,
                flush=True,
            )
            return rc
    if st.kind not in ("train", "merge"):
        atomic_write_json(
            marker,
            {
                "stage": stage,
                "task": task,
                "tasks": tasks,
                "job": os.environ.get("SLURM_JOB_ID"),
                "seconds": round(time.time() - t0, 1),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
    print(f"[reproduce] {stage}: done in {time.time() - t0:.0f} s", flush=True)
    return 0


def run_local(
    plan: Plan, stages: Sequence[str], dry_run: bool = False, timings: list[StageTime] | None = None
) -> int:
    """Run ``stages`` in order here; with ``timings``, append each stage's wall time to it (a
    complete stage: ``seconds`` None), with the models' parts the evaluation pool reports."""
    for stage in stages:
        if plan.complete(stage):
            print(f"# {stage}: complete, skipped")
            if timings is not None:
                timings.append(StageTime(stage, None))
            continue
        if dry_run:
            for cmd in plan.stages[stage].commands:
                print(f"{shlex.join(shown(cmd))}  # {stage}")
            continue
        missing = plan.inputs_missing(stage)
        if missing and stage == stages[0]:
            path, dep = missing[0]
            raise InputError(
                f"stage {stage}: its input {path} is not complete: stage {dep} makes it "
                f"(run `{plan.resume_command(dep)}`)"
            )
        if timings is None:
            rc = run_stage(plan, stage)
        else:
            from astrollama.evaluation.pool import listening

            row = StageTime(stage, None)
            t0 = time.perf_counter()
            with listening(lambda r, row=row: row.parts.append((r.job.stage or r.job.label, r.seconds))):
                rc = run_stage(plan, stage)
            row.seconds = time.perf_counter() - t0
            timings.append(row)
        if rc != 0:
            return rc
    if not dry_run:
        print(f"[reproduce] {plan.name}: finished; report in {plan.work / 'eval' / 'report'}")
    return 0


@dataclass
class StageTime:
    """One stage's wall seconds in :func:`run_local` (None: complete, skipped), and the parts a
    stage reports (the evaluation pool: each model's load and evaluations, side by side)."""

    stage: str
    seconds: float | None
    parts: list[tuple[str, float]] = field(default_factory=list)


# the table's names of the stages (the data stages keep their own)
TIMING_NAMES = {"cpt": "CPT", "sft": "SFT", "merge": "merge", "eval": "evaluation", "report": "report"}


def timings_table(rows: Sequence[StageTime], total: float, title: str = "[demo timings]") -> str:
    """Plain lines: ``title`` first, then ``name  seconds`` per stage (``complete`` where skipped),
    each model's part of the evaluation indented below it, and the total."""
    lines = [f"{title} wall seconds per stage", f"{'stage':<34}{'seconds':>9}"]
    for r in rows:
        shown_s = f"{r.seconds:9.1f}" if r.seconds is not None else f"{'complete':>9}"
        lines.append(f"{TIMING_NAMES.get(r.stage, r.stage):<34}{shown_s}")
        for name, secs in r.parts:
            lines.append(f"{'  ' + TIMING_NAMES.get(r.stage, r.stage) + ': ' + name:<34}{secs:9.1f}")
    lines.append(f"{'total':<34}{total:9.1f}")
    return "\n".join(lines)


def submit(
    plan: Plan, stages: Sequence[str], dry_run: bool = False, log_dir: str = "slurm/logs"
) -> dict[str, str]:
    """Submit ``stages`` as dependent jobs; returns stage -> job id (dry run: ``$JOB_n``)."""
    from astrollama.data.pipeline import sbatch, shell_line

    ids: dict[str, str] = {}
    first = True
    for n, stage in enumerate(stages, 1):
        if plan.complete(stage):
            print(f"# {stage}: complete, skipped")
            continue
        after = [ids[d] for d in plan.stages[stage].after if d in ids]
        if first and not dry_run:
            missing = [m for m in plan.inputs_missing(stage) if m[1] not in ids]
            if missing:
                path, dep = missing[0]
                raise InputError(
                    f"stage {stage}: its input {path} is not complete: stage {dep} makes it "
                    f"(run `{plan.resume_command(dep)}`)"
                )
        first = False
        cmd = plan.sbatch_line(stage, after, log_dir)
        if dry_run:
            print(f"JOB_{n}=$({shell_line(shown(cmd))})  # {stage}")
            ids[stage] = f"$JOB_{n}"
        else:
            ids[stage] = sbatch(cmd, stage)
    if not dry_run and ids:
        print(
            f"[reproduce] {len(ids)} jobs submitted; a failed stage holds its dependents "
            f"(resume: astrollama reproduce {plan.name} --from STAGE); report in {plan.work / 'eval' / 'report'}"
        )
    return ids


def header(plan: Plan, mode: str) -> str:
    r = plan.recipe("cpt")
    return (
        f"# {plan.name}: {plan.target.description or plan.target.row}\n"
        f"# published: {plan.target.row} = {published(plan.target.row)}\n"
        f"# recipe {r.name}: {r.launch.nodes} node(s) x {r.launch.gpus_per_node} GPU(s), run dir "
        f"{shown([str(r.launch.run_dir)])[0]}\n"
        f"# stages: {' -> '.join(plan.order)}; {mode}"
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``astrollama reproduce``."""
    from astrollama.cli_args import CommandParser

    p = CommandParser(prog="astrollama reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("target", help="reproduce/<name>.yaml, by name or path")
    p.add_argument(
        "--dry-run", action="store_true", help="print the sbatch lines (or commands); needs no data"
    )
    p.add_argument("--from", dest="start", default=None, metavar="STAGE", help="first stage")
    p.add_argument("--until", dest="stop", default=None, metavar="STAGE", help="last stage")
    p.add_argument("--local", action="store_true", help="run the graph in order here, even with Slurm")
    p.add_argument("--log-dir", default="slurm/logs", help="job logs (Slurm: %%x-%%j.out) [slurm/logs]")
    p.add_argument("--run-stage", default=None, metavar="STAGE", help=argparse.SUPPRESS)  # a job's body
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    target, path = load_target(a.target)
    # jobs run from the repository root: a target given by path is passed on absolute
    name = a.target if target_path(a.target).parent == TARGETS else str(path.resolve())
    plan = Plan(name, target, path)
    if a.run_stage:
        if a.run_stage not in plan.stages:
            raise InputError(f"--run-stage {a.run_stage}: no such stage ({', '.join(plan.order)})")
        return run_stage(plan, a.run_stage)
    stages = select(plan, a.start, a.stop)
    slurm = not a.local and shutil.which("sbatch") is not None
    print(
        header(plan, "Slurm jobs" if slurm or (a.dry_run and not a.local) else "this machine, in order"),
        flush=True,
    )
    if slurm or (a.dry_run and not a.local):
        submit(plan, stages, dry_run=a.dry_run, log_dir=a.log_dir)
        return 0
    return run_local(plan, stages, dry_run=a.dry_run)
