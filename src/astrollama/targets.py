"""Reproduction targets: the schema and the loader of ``reproduce/<name>.yaml``.

A target names the data config, the training recipe(s), the evaluation config and the published
row it is compared with (the number comes from :mod:`astrollama.paper`); ``astrollama reproduce``
(:mod:`astrollama.reproduce`) turns it into a job graph. Every key is typed: an unknown key, a
missing one or a wrong type is one line naming the file and the key (:class:`TargetError`, exit 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astrollama.config import ConfigError, read_mapping
from astrollama.paths import REPO_ROOT

TARGETS = REPO_ROOT / "reproduce"


class TargetError(ConfigError):
    """A target file problem: ``<file>: <key>: <problem>`` in one line (exit 2)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SlurmResources(_Strict):
    time: str | None = Field(default=None, pattern=r"^(\d+-)?\d+(:\d\d){0,2}$")
    mem: str | None = Field(default=None, pattern=r"^\d+[KMGT]?$")
    cpus_per_task: int | None = Field(default=None, gt=0)


class DataPart(_Strict):
    config: str  # data_prep/<name>.yaml
    stages: list[str] | None = None  # the data stages this row needs (default: the config's run:)
    variant: str = Field(default="aic", pattern=r"^(abstracts|aic|summary)$")  # trained on
    heldout_variant: str = Field(default="abstracts", pattern=r"^(abstracts|aic|summary)$")
    set: list[str] = Field(default_factory=list)  # KEY=VALUE overrides of the data config


class TrainPart(_Strict):
    recipe: str
    overrides: list[str] = Field(default_factory=list)
    data: str | None = None  # dataset directory (default: the build's <variant>/train; SFT: required)
    slurm: SlurmResources = SlurmResources()


class MergePart(_Strict):
    recipe: str
    overrides: list[str] = Field(default_factory=list)
    output: str | None = None  # default: <work>/merged
    slurm: SlurmResources = SlurmResources()


class EvalPart(_Strict):
    config: str  # eval/<name>.yaml
    scale: str = Field(default="paper", pattern=r"^(paper|toy)$")
    # the recipe whose published rows stand beside base and CPT (astrollama.paper.RECIPE_SCORES);
    # default: the CPT recipe
    recipe: str | None = None
    key: str | None = None  # separate answer key (the public AstroMLab-1 questions carry none)
    # more flags of `astrollama eval models` for every model (they win), e.g. [--batch-size=16]
    model_args: list[str] = Field(default_factory=list)
    embed_args: list[str] = Field(default_factory=list)  # `eval embed` flags, given as --embed-*
    workers: int | None = Field(default=None, ge=1)  # models side by side (default: per core; 1 on GPUs)
    slurm: SlurmResources = SlurmResources()
    gpus_per_node: int = Field(default=1, ge=0)


class Target(_Strict):
    row: str  # row of astrollama.paper.MCQ_SCORES the result is compared with ("none": the toy run)
    description: str = ""
    work: str  # markers, eval results and the report
    data: DataPart
    cpt: TrainPart
    sft: TrainPart | None = None
    merge: MergePart | None = None
    eval: EvalPart
    after: dict[str, list[str]] = Field(default_factory=dict)  # stage -> the stages it waits for


def target_path(name: str) -> Path:
    """``reproduce/<name>.yaml`` for a bare name, else the path as given."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or os.sep in name:
        return p
    return TARGETS / f"{name}.yaml"


def load_target(name: str) -> tuple[Target, Path]:
    path = target_path(name)
    if not path.is_file() and not path.is_absolute() and (REPO_ROOT / path).is_file():
        path = REPO_ROOT / path
    if not path.exists() and path.parent == TARGETS:
        known = ", ".join(sorted(p.stem for p in TARGETS.glob("*.yaml")))
        raise TargetError(path, "(file)", f"no such target (known: {known})")
    data = read_mapping(path, TargetError, "a reproduction target (reproduce/<name>.yaml)")
    try:
        return Target.model_validate(data), path
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            raise TargetError(path, key, "unknown key") from None
        if err["type"] == "missing":
            raise TargetError(path, key, "missing (required)") from None
        raise TargetError(path, key, f"{err['msg']}, got {err.get('input')!r}") from None


# Published rows without an AstroMLab-1 score: row -> (table of astrollama.paper, key, what it is)
OTHER_ROWS = {
    "AstroLLaMA-2-7B-Base_Abstract": (
        "ASTROLLAMA1",
        "perplexity_reduction",
        "lower perplexity than LLaMA-2-7B on held-out abstracts (fraction)",
    ),
}


def published_number(row: str) -> Any:
    """The :class:`astrollama.paper.Published` number a target's ``row`` is compared with."""
    from astrollama import paper

    if row in OTHER_ROWS:
        table, key, _ = OTHER_ROWS[row]
        return getattr(paper, table)[key]
    return paper.MCQ_SCORES[row]


def published(row: str) -> str:
    """``'71.9 (AstroMLab 2 ...)'``: the published MCQ score of ``row`` (or, for a row in
    :data:`OTHER_ROWS`, its other published number, named) with its source."""
    from astrollama import paper

    if row == "none":
        return "none (toy run)"
    p = published_number(row)
    what = f" {OTHER_ROWS[row][2]}" if row in OTHER_ROWS else ""
    return f"{p.value}{what} ({paper.SOURCES[p.source].title})"
