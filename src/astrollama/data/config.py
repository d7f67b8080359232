"""Data-prep configs: ``astrollama data <stage> --config data_prep/<name>.yaml``.

One YAML file per corpus build (``data_prep/astro-ph.yaml``, ``data_prep/demo.yaml``) holds the
options of every stage. Its keys ARE the stage's command-line options (``--near-dup-jaccard`` is
``near_dup_jaccard``), so a key is checked by the very parser and range check of its flag and
nothing is defined twice:

.. code-block:: yaml

    root: work/data              # --root of every stage that has one (a section may set its own)
    harvest:                     # one sub-command: oai | kaggle | json | lookup
      oai: {from: "2023-01-01", until: "2024-01-31"}
    download: {kinds: [pdf, src], mirror: /bulk/arxiv}
    ocr: {backend: transformers, checkpoint: /models/nougat-small, batch_size: 8}
    aic: {source: auto}
    summarize: {backend: vllm, model: /models/Qwen2-7B-Instruct, min_tokens: 1000}
    build: {out: work/corpora, tokenizer: /models/Meta-Llama-3-8B, shingle_words: 5}

Rules (docs/data-corpus.md): the file is read by the project's one strict YAML reader
(:mod:`astrollama.config`) (UTF-8,
no duplicate keys, no anchors/aliases, ``true``/``false`` only); unknown sections and keys,
values of the wrong type (a number written as a string, a boolean for a number, a list for a
scalar) and values out of the flag's range are one-line errors ``<file>: <section>.<key>:
<problem>`` (exit 2). Every section is checked whichever stage runs, so a typo in ``build`` is
refused by ``harvest`` already. Relative paths are relative to the current directory (run from
the repository root, as ``data_prep/*.sh`` do). Flags given on the command line win over the
config: the config's options are placed before them and argparse keeps the last value.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from astrollama.cli_args import subparsers
from astrollama.config import (
    ConfigError,
    config_file,
    get_section,
    read_mapping,
    scalar,
    section_tokens,
)

# the config's sections: the data commands that read one (``harvest`` holds one sub-command)
SECTIONS = ("harvest", "download", "ocr", "aic", "summarize", "build", "qa", "sft-convert", "demo-sft")


class DataConfigError(ConfigError):
    """A data-prep config problem: ``<file>: <section.key>: <problem>`` in one line."""


# ------------------------------------------------------------------ the pipeline runner's own keys
# ``run:`` (the stages ``astrollama data run`` runs, in order) and ``slurm:`` (each stage's Slurm
# resources): checked wherever the file is read, by ``data run`` and by any stage given --config.

DEFAULT_RUN = ("harvest", "download", "ocr", "aic", "summarize", "build")


@dataclasses.dataclass(frozen=True)
class Resources:
    """Slurm resources of one data stage (``slurm:`` in the config overrides them per stage)."""

    array: int = 1  # tasks of the job array (1: a single job)
    cpus_per_task: int = 1
    mem: str = "4G"
    time: str = "12:00:00"
    gpus_per_node: int = 0

    def sbatch_args(self) -> list[str]:
        out = [f"--cpus-per-task={self.cpus_per_task}", f"--mem={self.mem}", f"--time={self.time}"]
        if self.array > 1:
            out.insert(0, f"--array=0-{self.array - 1}")
        if self.gpus_per_node:
            out.append(f"--gpus-per-node={self.gpus_per_node}")
        return out


# the defaults of the former per-stage sbatch scripts (slurm/*.sh headers; README's cluster quick start)
RESOURCES = {
    "harvest": Resources(time="72:00:00", mem="8G"),  # one process: arXiv allows one request per 3 s
    "download": Resources(array=16),
    "ocr": Resources(array=16, cpus_per_task=4, mem="32G", gpus_per_node=1),
    "aic": Resources(array=16),
    "summarize": Resources(array=32, cpus_per_task=8, mem="64G", gpus_per_node=1),
    "build": Resources(cpus_per_task=16, mem="64G"),
    "qa": Resources(array=32, cpus_per_task=8, mem="64G", gpus_per_node=1),
    "sft-convert": Resources(mem="32G"),
    "demo-sft": Resources(),
}


def runner_keys(
    data: dict[str, Any], file: str, error: type[ConfigError]
) -> tuple[tuple[str, ...], dict[str, Resources]]:
    """The ``run:`` stages (default: every stage section from harvest to build) and each stage's
    Slurm resources (``slurm:`` over :data:`RESOURCES`) of the config ``data`` read from ``file``;
    a bad key is ``error(file, key, problem)``."""
    run = data.get("run")
    if run is None:
        run = [s for s in DEFAULT_RUN if s in data]
    if not isinstance(run, list) or not all(isinstance(s, str) for s in run):
        raise error(file, "run", "expected a list of stage names")
    for s in run:
        if s not in SECTIONS:
            raise error(file, "run", f"unknown stage {s!r} (one of {', '.join(SECTIONS)})")
        if s not in data:
            raise error(file, "run", f"stage {s!r} has no section in this file")
    if sorted(run, key=SECTIONS.index) != run or len(set(run)) != len(run):
        raise error(
            file, "run", f"stages must be listed once each, in pipeline order ({', '.join(SECTIONS)})"
        )
    resources = dict(RESOURCES)
    slurm = data.get("slurm") or {}
    if not isinstance(slurm, dict):
        raise error(file, "slurm", "must be a mapping of stage -> resources")
    fields = {f.name: f.type for f in dataclasses.fields(Resources)}
    for stage, res in slurm.items():
        if stage not in SECTIONS:
            raise error(file, f"slurm.{stage}", f"unknown stage (one of {', '.join(SECTIONS)})")
        if not isinstance(res, dict):
            raise error(file, f"slurm.{stage}", "must be a mapping of resources")
        for k, v in res.items():
            want = int if fields.get(k) == "int" else str
            if k not in fields:
                raise error(file, f"slurm.{stage}.{k}", f"unknown key (allowed here: {', '.join(fields)})")
            if (
                isinstance(v, bool)
                or not isinstance(v, want)
                or (want is int and v < (0 if k == "gpus_per_node" else 1))
            ):
                raise error(
                    file,
                    f"slurm.{stage}.{k}",
                    f"expected {'a positive integer' if want is int else 'a string'}, got {v!r}",
                )
        resources[stage] = dataclasses.replace(resources[stage], **res)
    return tuple(run), resources


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in ``path``, read with the project's one strict YAML reader."""
    return read_mapping(path, DataConfigError, "a config file (data_prep/<name>.yaml)")


def _with_root(section: dict[str, Any], parser: argparse.ArgumentParser, root: Any) -> dict[str, Any]:
    has_root = any("--root" in a.option_strings for a in parser._actions)
    return {"root": root, **section} if root is not None and has_root and "root" not in section else section


def config_tokens(parser: argparse.ArgumentParser, file: str, command: Sequence[str]) -> list[str]:
    """Validate the whole config at ``file`` against the data parser; return the tokens of
    ``command`` (``["build"]``, ``["harvest", "oai"]``)."""
    data = load_config(file)
    commands = subparsers(parser)
    runner_keys(data, file, DataConfigError)  # the pipeline runner's keys (run:, slurm:)
    for key in data:
        if key in ("run", "slurm"):
            continue
        if key != "root" and key not in SECTIONS:
            raise DataConfigError(file, str(key), f"unknown section (allowed: root, {', '.join(SECTIONS)})")
    root = data.get("root")
    if root is not None:
        scalar(root, commands["build"]._option_string_actions["--root"], file, "root")
    out: list[str] = []
    for name in SECTIONS:
        sub = commands[name]
        section = get_section(data, name, file)
        if name == "harvest":
            subs = subparsers(sub)
            for key in section:
                if key not in subs:
                    raise DataConfigError(
                        file, f"harvest.{key}", f"unknown harvest source (one of {', '.join(subs)})"
                    )
            for key in subs:
                tokens = section_tokens(
                    _with_root(get_section(section, key, file), subs[key], root),
                    subs[key],
                    file,
                    f"harvest.{key}",
                )
                if list(command) == ["harvest", key]:
                    out = tokens
        else:
            tokens = section_tokens(_with_root(section, sub, root), sub, file, name)
            if list(command) == [name]:
                out = tokens
    return out


def apply_config(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with the options of ``--config FILE`` inserted after the command (flags win)."""
    file = config_file(argv)
    if file is None or not argv or argv[0] not in SECTIONS:
        return argv
    command = [argv[0]]
    if argv[0] == "harvest":
        subs = subparsers(subparsers(parser)["harvest"])
        if len(argv) > 1 and argv[1] in subs:
            command.append(argv[1])
        else:  # `harvest --config F`: the source is the config's one harvest section
            section = get_section(load_config(file), "harvest", file)
            if len(section) != 1:
                raise DataConfigError(
                    file,
                    "harvest",
                    f"must hold exactly one of {', '.join(subs)} when the command line names none",
                )
            command.append(next(iter(section)))
            argv = [argv[0], command[1], *argv[1:]]
    tokens = config_tokens(parser, file, command)
    return [*command, *tokens, *argv[len(command) :]]


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` on every command that reads a config section (help text only: the option
    is applied by :func:`apply_config` before parsing)."""
    for name in SECTIONS:
        sub = subparsers(parser)[name]
        targets = subparsers(sub).values() if name == "harvest" else [sub]
        for target in targets:
            target.add_argument(
                "--config",
                metavar="FILE",
                help=f"data_prep/<name>.yaml: options from its '{name}' section; flags given "
                "here win (docs/data-corpus.md)",
            )


__all__ = ["SECTIONS", "DataConfigError", "add_config_option", "apply_config", "config_tokens", "load_config"]
