"""Evaluation configs: ``astrollama eval <command> --config eval/<name>.yaml``.

One YAML file per evaluation setup (``eval/astromlab1.yaml`` for a cluster checkpoint,
``eval/demo.yaml`` for the toy run) holds the options of every eval command, one section per
command. A section's keys ARE that command's command-line options (``--n-bootstrap`` is
``n_bootstrap``), checked by the very parser and type/range check of the flag, so nothing is
defined twice:

.. code-block:: yaml

    model: {questions: Astrobench_MCQ_v1_Public.parquet, heldout: work/corpora/abstracts/validation,
            block_size: 512, batch_size: 16, dtype: bfloat16, device: cuda}
    sweep: {...}                 # astrollama eval sweep
    embed: {data: ..., max_docs: 200}
    report: {}
    mcq: {method: token, prompt: astromlab, n_bootstrap: 10000}
    ppl: {...}
    complete: {...}

Rules: the same as the data-prep configs (the one strict reader and per-option check of
:mod:`astrollama.config`): UTF-8, no duplicate keys, no anchors/aliases; unknown sections
and keys, values of the wrong type and values out of the flag's range are one-line errors
``<file>: <section>.<key>: <problem>`` (exit 2), and every section is checked whichever command
runs. Options that repeat on the command line (``embed --model/--label``) are per-run and not
config keys. Relative paths are relative to the current directory (the repository root, as
``eval/*.sh`` run). Flags given on the command line win: the config's options are placed before
them and argparse keeps the last value. ``eval models`` (several checkpoints, each loaded once)
reads the ``model`` section and the ``embed`` section as its ``--embed-*`` options.
"""

from __future__ import annotations

import argparse

from astrollama.cli_args import subparsers
from astrollama.config import ConfigError, config_file, get_section, read_mapping, section_tokens
from astrollama.evaluation.common import EvalInputError


class EvalConfigError(ConfigError, EvalInputError):
    """An evaluation config problem: ``<file>: <section.key>: <problem>`` in one line."""


def load_config(path: str) -> dict:
    """The mapping in ``path``, read with the project's one strict YAML reader."""
    return read_mapping(path, EvalConfigError, "a config file (eval/<name>.yaml)")


# the config's sections: the eval commands that read one
SECTIONS = ("model", "sweep", "embed", "report", "mcq", "ppl", "complete")


def config_tokens(parser: argparse.ArgumentParser, file: str, command: str) -> list[str]:
    """Validate the whole config at ``file`` against the eval parser; return ``command``'s tokens."""
    data = load_config(file)
    for key in data:
        if key not in SECTIONS:
            raise EvalConfigError(file, str(key), f"unknown section (allowed: {', '.join(SECTIONS)})")
    commands = subparsers(parser)
    out: list[str] = []
    for name in SECTIONS:
        section = get_section(data, name, file)
        sub = commands[name]
        for key in section:
            action = sub._option_string_actions.get(f"--{str(key).replace('_', '-')}")
            if isinstance(action, argparse._AppendAction):
                raise EvalConfigError(file, f"{name}.{key}", "a per-run option: give it on the command line")
        tokens = section_tokens(section, sub, file, name)
        if name == command:
            out = tokens
    return out


def models_config_tokens(parser: argparse.ArgumentParser, file: str) -> list[str]:
    """``eval models``' options from a config's ``model`` and ``embed`` sections (the whole config
    checked first, as every eval command checks it); per-model keys are refused."""
    from astrollama.evaluation.pool import PER_MODEL

    config_tokens(parser, file, "model")  # the whole file, against every command's options
    data = load_config(file)
    models = subparsers(parser)["models"]
    model = get_section(data, "model", file)
    for key in model:
        if key in PER_MODEL:
            raise EvalConfigError(
                file, f"model.{key}", "per model in `eval models`: give it after its --model"
            )
    embed = get_section(data, "embed", file)
    return [
        *section_tokens(model, models, file, "model"),
        *section_tokens({f"embed_{k}": v for k, v in embed.items()}, models, file, "embed"),
    ]


def apply_config(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with the options of ``--config FILE`` inserted after the command (flags win)."""
    file = config_file(argv, EvalInputError)
    if file is not None and argv and argv[0] == "models":  # reads 'model' and 'embed'
        return [argv[0], *models_config_tokens(parser, file), *argv[1:]]
    if file is None or not argv or argv[0] not in SECTIONS:
        return argv
    return [argv[0], *config_tokens(parser, file, argv[0]), *argv[1:]]


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` on every command that reads a section (help text only: the option is
    applied by :func:`apply_config` before parsing)."""
    commands = subparsers(parser)
    for name in SECTIONS:
        commands[name].add_argument(
            "--config",
            metavar="FILE",
            help=f"eval/<name>.yaml: options from its '{name}' section; flags given here "
            "win (eval/README.md)",
        )


__all__ = ["SECTIONS", "add_config_option", "apply_config", "config_tokens"]
