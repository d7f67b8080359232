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
    if "run" in data or "slurm" in data:  # the pipeline runner's keys (astrollama.data.pipeline)
        from astrollama.data.pipeline import load_pipeline

        load_pipeline(file)
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
