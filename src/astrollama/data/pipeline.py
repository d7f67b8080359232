"""``astrollama data run CONFIG``: one runner for the data pipeline of ``data_prep/<name>.yaml``.

The config's sections (``harvest``, ``download``, ``ocr``, ``aic``, ``summarize``, ``build``, ``qa``,
``sft-convert``, ``demo-sft``) are read into TYPED stage configs: one strict pydantic model per
stage (unknown keys refused, a number written as text refused, a value out of its range refused),
whose fields are the options of ``astrollama data <stage>``. The model is made from the stage's own
command-line definition (:func:`stage_model`), and a stage's command line is GENERATED from its
validated model (:meth:`StageConfig.argv`), so every setting is written once: in the stage's flag
definition (name, type, range, default, help), read from YAML once, passed on once.

Stages run in order (``run:`` in the config, else every stage section from ``harvest`` to
``build`` that the config has), on this machine (in this process, one after the other) or on Slurm
(``--slurm``): one job or job array per stage through the ONE sbatch script ``slurm/stage.sh``,
chained with ``--dependency=afterok``. Every stage resumes where it stopped (per paper, by the
manifest), so a rerun or a requeued array task redoes nothing that finished.

    astrollama data run data_prep/demo.yaml                           # the demo's chain, here
    astrollama data run data_prep/astro-ph.yaml --slurm --dry-run     # the sbatch lines
    astrollama data run data_prep/demo.yaml --stage aic --set root=/tmp/prep
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, field_validator

from astrollama.cli_args import subparsers
from astrollama.config import ConfigError, looks_like_number, number_hint, read_mapping, yaml_load
from astrollama.data.config import SECTIONS, Resources, runner_keys
from astrollama.errors import InputError
from astrollama.paths import REPO_ROOT

STAGE_SCRIPT = "slurm/stage.sh"

# every stage a pipeline config can hold, in pipeline order
STAGES = SECTIONS
HARVEST_SOURCES = ("oai", "kaggle", "json", "lookup")
# what each stage reads, and the earlier stage that makes it (for "inputs missing" messages)
MADE_BY = {
    "download": "harvest",
    "ocr": "download",
    "aic": "ocr",
    "summarize": "aic",
    "build": "aic",
    "qa": "aic",
    "sft-convert": "qa",
}
PER_RUN = {"help", "config", "shard_index", "num_shards"}  # set by the runner / the array, not the config


class PipelineError(ConfigError):
    """A pipeline config problem: ``<file>: <key>: <problem>`` in one line (exit 2)."""


# ----------------------------------------------------------------------------------------------
# typed stage configs
# ----------------------------------------------------------------------------------------------


class StageConfig(BaseModel):
    """Base of every stage model: strict, unknown keys refused, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    command: ClassVar[tuple[str, ...]] = ()
    actions: ClassVar[dict[str, argparse.Action]] = {}

    def argv(self) -> list[str]:
        """The stage's command line (``["data", "build", "--out=...", ...]``) from the set fields."""
        opts: list[list[str]] = []  # one group of tokens per option, in field order
        positionals: list[str] = []
        for key in self.model_fields:
            if key not in self.model_fields_set:
                continue
            value, action = getattr(self, key), self.actions[key]
            flag = next((o for o in action.option_strings if o.startswith("--")), None)
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                if value == isinstance(action, argparse._StoreTrueAction):
                    opts.append([flag])
            elif isinstance(action, argparse._AppendAction):
                opts += [[f"{flag}={_text(v)}"] for v in value]
            elif isinstance(value, list):
                if flag:
                    opts.append([flag, *(_text(v) for v in value)])
                else:
                    positionals += [_text(v) for v in value]
            elif flag:
                opts.append([f"{flag}={_text(value)}"])
            else:
                positionals.append(_text(value))
        return ["data", *self.command, *(t for group in opts for t in group), *positionals]


def _text(value: Any) -> str:
    return str(value)


def _field_type(action: argparse.Action) -> Any:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return bool
    tp = action.type
    qual = getattr(tp, "__qualname__", "")
    base: Any = str
    if tp is int or (qual.startswith("number.") and _number_kind(tp) is int):
        base = int
    elif tp is float or qual.startswith("number."):
        base = float
    if action.choices is not None and base is str:
        base = Literal[tuple(action.choices)]  # type: ignore[misc]
    if isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*"):
        return list[base]
    return base


def _number_kind(tp: Any) -> type:
    """int or float: the ``kind`` of an :func:`astrollama.cli_args.number` type."""
    import inspect

    return inspect.getclosurevars(tp).nonlocals.get("kind", float)


def stage_model(parser: argparse.ArgumentParser, command: Sequence[str]) -> type[StageConfig]:
    """A strict pydantic model whose fields are the options of ``parser`` (the stage's CLI)."""
    fields: dict[str, Any] = {}
    actions: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in PER_RUN or isinstance(action, argparse._SubParsersAction):
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        key = (
            longs[0][2:].replace("-", "_") if longs else (action.dest if not action.option_strings else None)
        )
        if not key:
            continue
        tp = _field_type(action)
        fields[key] = (tp | None, None)
        actions[key] = action

    def check_range(cls: Any, value: Any, info: Any) -> Any:
        action = actions[info.field_name]
        if action.type is None or value is None or isinstance(value, bool):
            return value
        for v in value if isinstance(value, list) else [value]:
            try:
                action.type(str(v))
            except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
                raise ValueError(str(e)) from None
        return value

    model = create_model(
        f"{''.join(p.title() for p in '-'.join(command).split('-'))}Config",
        __base__=StageConfig,
        __validators__={"range": field_validator(*fields, mode="after")(check_range)} if fields else {},
        **fields,
    )
    model.command = tuple(command)
    model.actions = actions
    return model


def _plain(value: Any) -> Any:
    """YAML dates as text (an unquoted 2023-01-01 is a date to YAML)."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _validate(model: type[StageConfig], section: Any, file: str, where: str) -> StageConfig:
    if not isinstance(section, dict):
        raise PipelineError(file, where, f"must be a mapping of options, got {type(section).__name__}")
    data = {k: _plain(v) for k, v in section.items()}
    for k, v in data.items():
        if v is None:
            raise PipelineError(
                file, f"{where}.{k}", "null is not a value here; leave the key out for the default"
            )
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        key = f"{where}.{loc}" if loc else where
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields))
            raise PipelineError(file, key, f"unknown key (allowed here: {allowed})") from None
        value = err.get("input")
        if looks_like_number(value) and err["type"] in ("int_type", "float_type"):
            raise PipelineError(file, key, number_hint(value)) from None
        msg = err["msg"].removeprefix("Value error, ")
        raise PipelineError(file, key, f"{msg}, got {value!r}") from None


# ----------------------------------------------------------------------------------------------
# the pipeline
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Pipeline:
    """A validated ``data_prep/<name>.yaml``: typed stage configs in run order."""

    file: str
    root: str | None
    stages: dict[str, StageConfig]  # every section of the file, validated
    run: tuple[str, ...]  # the stages this pipeline runs, in order
    resources: dict[str, Resources]

    def argv(self, stage: str) -> list[str]:
        if stage not in self.stages:
            raise PipelineError(self.file, stage, f"no '{stage}' section: nothing to run for this stage")
        return self.stages[stage].argv()

    def build_out(self) -> str | None:
        b = self.stages.get("build")
        return getattr(b, "out", None) if b is not None else None


def _data_parser() -> argparse.ArgumentParser:
    from astrollama.data.cli import build_parser

    return build_parser()


def _set(data: dict[str, Any], assignment: str, file: str) -> None:
    """``section.key=value`` (or ``root=value``) into the raw config; the value is read as YAML."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise PipelineError(file, "--set", f"expected KEY=VALUE, got {assignment!r}")
    value = yaml_load(text, f"--set {key}", PipelineError) if text else ""
    *path, last = key.split(".")
    node = data
    for i, part in enumerate(path):
        if part == "harvest" and i == 0 and len(path) == 1 and isinstance(node.get("harvest"), dict):
            node = node["harvest"]  # harvest.<source-key> applies to the one source
            node = next(iter(node.values())) if len(node) == 1 else node.setdefault(part, {})
            continue
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PipelineError(file, key, "not a mapping: cannot set a key under it")
    node[last] = value


def load_pipeline(path: str | os.PathLike[str], sets: Sequence[str] = ()) -> Pipeline:
    """Read and validate ``path`` (every section, whatever will run); ``sets`` are ``KEY=VALUE``."""
    file = str(path)
    data = read_mapping(path, PipelineError, "a pipeline config (data_prep/<name>.yaml)")
    for s in sets:
        _set(data, s, file)
    allowed = ("root", "run", "slurm", *STAGES)
    for key in data:
        if key not in allowed:
            raise PipelineError(file, str(key), f"unknown section (allowed: {', '.join(allowed)})")
    root = data.get("root")
    if root is not None and not isinstance(root, str):
        raise PipelineError(file, "root", f"expected a string, got {type(root).__name__} {root!r}")
    commands = subparsers(_data_parser())
    stages: dict[str, StageConfig] = {}
    for name in STAGES:
        if name not in data:
            continue
        section = data[name]
        if section is None:
            section = {}
        parser = commands[name]
        command: list[str] = [name]
        if name == "harvest":
            if not isinstance(section, dict) or len(section) != 1:
                raise PipelineError(
                    file, "harvest", f"must hold exactly one source: one of {', '.join(HARVEST_SOURCES)}"
                )
            source = next(iter(section))
            subs = subparsers(parser)
            if source not in subs:
                raise PipelineError(
                    file, f"harvest.{source}", f"unknown harvest source (one of {', '.join(subs)})"
                )
            parser, command, section = subs[source], [name, source], section[source] or {}
            where = f"harvest.{source}"
        else:
            where = name
        has_root = any("--root" in a.option_strings for a in parser._actions)
        if isinstance(section, dict) and root is not None and "root" not in section and has_root:
            section = {"root": root, **section}
        stages[name] = _validate(stage_model(parser, command), section, file, where)
    run, resources = runner_keys(data, file, PipelineError)
    return Pipeline(file, root, stages, run, resources)


def select(
    p: Pipeline, only: Sequence[str] = (), start: str | None = None, stop: str | None = None
) -> list[str]:
    """The stages to run: ``only`` (in pipeline order), else ``start``..``stop`` of ``p.run``."""
    for s in [*only, *(x for x in (start, stop) if x)]:
        if s not in p.run:
            raise InputError(f"{p.file}: stage {s!r} is not one this pipeline runs ({', '.join(p.run)})")
    if only:
        return [s for s in p.run if s in only]
    i = p.run.index(start) if start else 0
    j = p.run.index(stop) if stop else len(p.run) - 1
    if i > j:
        raise InputError(f"--from {start} comes after --until {stop} in {', '.join(p.run)}")
    return list(p.run[i : j + 1])


def run_local(p: Pipeline, stages: Sequence[str], log: Any = print) -> None:
    """Run ``stages`` in order in this process; a failing stage stops the chain (its exit code)."""
    from astrollama.cli_args import guarded
    from astrollama.data.cli import main
    from astrollama.data.manifest import Manifest
    from astrollama.paths import from_caller

    for i, stage in enumerate(stages, 1):
        argv = p.argv(stage)
        root = getattr(p.stages[stage], "root", None)
        if i == 1 and root is not None and stage in MADE_BY and not Manifest(root).papers_path.is_file():
            raise InputError(
                f"stage {stage}: {root} has no manifest yet: stage harvest makes it "
                f"(astrollama data run {p.file} --from harvest)"
            )
        log(f"[data run {i}/{len(stages)}] {stage}: astrollama {shlex.join(argv)}")
        # the one exit policy, as ``astrollama data ...`` typed by the user would get it
        rc = guarded("data", lambda argv=argv: main(from_caller(argv[1:], _data_parser())))
        if rc != 0:
            maker = MADE_BY.get(stage)
            resume = f"astrollama data run {p.file} --from {stage}"
            if rc == 2 and maker:  # bad input: often what the stage before should have made
                resume += f" (if its input is missing: stage {maker} makes it, --from {maker})"
            raise StageFailed(stage, rc, resume)


class StageFailed(RuntimeError):
    def __init__(self, stage: str, rc: int, resume: str) -> None:
        self.stage, self.rc, self.resume = stage, rc, resume
        super().__init__(f"stage {stage} failed (exit {rc}); resume with: {resume}")


def sbatch_line(
    p: Pipeline, stage: str, *, sets: Sequence[str] = (), after: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """``sbatch --parsable ... slurm/stage.sh data run FILE --stage STAGE`` for one stage."""
    res = p.resources[stage]
    dep = [f"--dependency=afterok:{after}", "--kill-on-invalid-dep=no"] if after else []
    log = "slurm/logs/%x-%A_%a.out" if res.array > 1 else "slurm/logs/%x-%j.out"
    return [
        "sbatch",
        "--parsable",
        f"--job-name=astrollama-{stage}",
        *res.sbatch_args(),
        "--requeue",
        f"--output={log}",
        *dep,
        *extra,
        STAGE_SCRIPT,
        "data",
        "run",
        p.file,
        "--stage",
        stage,
        *(f"--set={s}" for s in sets),
    ]


def submit(
    p: Pipeline, stages: Sequence[str], *, sets: Sequence[str] = (), dry_run: bool = False
) -> list[str]:
    """Submit ``stages`` as dependent Slurm jobs (arrays where the stage shards); return the job ids."""
    ids: list[str] = []
    prev = None
    for n, stage in enumerate(stages, 1):
        cmd = sbatch_line(p, stage, sets=sets, after=prev)
        if dry_run:
            print(f"JOB_{n}=$({shell_line(cmd)})  # {stage}")
            prev = f"$JOB_{n}"
            ids.append(prev)
            continue
        prev = sbatch(cmd, stage)
        ids.append(prev)
    return ids


def sbatch(cmd: Sequence[str], stage: str) -> str:
    """Run one ``sbatch --parsable`` line; return the job id."""
    r = subprocess.run(list(cmd), cwd=REPO_ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"sbatch failed for stage {stage}: {r.stderr.strip() or r.stdout.strip()}")
    job = r.stdout.strip().split(";")[0]
    print(f"{stage}: job {job}  ({shell_line(cmd)})", flush=True)
    return job


_DEP = re.compile(r"^--dependency=afterok(:\$[A-Za-z0-9_]+)+$")


def shell_line(cmd: Sequence[str]) -> str:
    """``cmd`` quoted for a shell, leaving ``--dependency=afterok:$JOB_n`` to expand."""
    return " ".join(c if _DEP.match(c) else shlex.quote(c) for c in cmd)


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """``astrollama data run``."""
    p = sub.add_parser(
        "run",
        help="run a data_prep/<name>.yaml pipeline: its stages in order, here or as Slurm jobs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="data_prep/<name>.yaml")
    p.add_argument("--stage", action="append", default=[], help="run only this stage (repeatable)")
    p.add_argument("--from", dest="start", default=None, help="first stage to run")
    p.add_argument("--until", dest="stop", default=None, help="last stage to run")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. build.out=DIR",
    )
    p.add_argument("--slurm", action="store_true", help="submit one job (array) per stage, chained afterok")
    p.add_argument("--dry-run", action="store_true", help="print the commands (or sbatch lines) only")
    p.set_defaults(func=_cli)


def _cli(a: Any) -> int:
    p = load_pipeline(a.config, a.set)
    stages = select(p, a.stage, a.start, a.stop)
    if a.slurm:
        submit(p, stages, sets=a.set, dry_run=a.dry_run)
        return 0
    if a.dry_run:
        for s in stages:
            print(shlex.join(["astrollama", *p.argv(s)]))
        return 0
    try:
        run_local(p, stages)
    except StageFailed as e:
        print(f"astrollama data run: {e}", file=sys.stderr)
        return e.rc
    return 0


__all__ = [
    "STAGES",
    "Pipeline",
    "PipelineError",
    "Resources",
    "load_pipeline",
    "run_local",
    "sbatch_line",
    "select",
    "stage_model",
    "submit",
]
