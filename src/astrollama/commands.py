"""The wings' command groups and how one of their commands runs in this process.

``astrollama train|data|eval|merge ...`` are the wings' own groups; the commands users type inside
a wing's group that the wing cannot name itself are added here, by the roof: ``astrollama data run``
(it runs the group's own stages) and the tools' (``astrollama data bench``: no product module
imports a tool). :mod:`astrollama.cli` (the ``astrollama`` command) adds the roof's
own groups (``demo``, ``reproduce``, ``models``); :mod:`astrollama.reproduce` runs a plan's
``astrollama ...`` steps through :func:`run` (one interpreter, imports loaded once).
"""

from __future__ import annotations

import argparse
import importlib

from astrollama.cli_args import guarded

WING_GROUPS = {
    "train": "astrollama.train.cli",
    "data": "astrollama.data.cli",
    "eval": "astrollama.evaluation.cli",
    "merge": "astrollama.train.merge",
}
# commands the roof adds to a wing's group: group -> modules with register(subparsers). `data run`
# runs the data group's own stages (so the group cannot name it without a circle), `data bench` is a
# tool (corpus-stage throughput).
GROUP_EXTRAS = {"data": ("astrollama.data.pipeline", "astrollama.tools.bench_corpus")}


def group_parser(group: str, module: str) -> argparse.ArgumentParser:
    """The parser of ``astrollama <group>`` (module: the group's module), with its tools' commands."""
    mod = importlib.import_module(module)
    extra = GROUP_EXTRAS.get(group)
    return mod.build_parser(extra) if extra else mod.build_parser()


def run_group_module(group: str, module: str, argv: list[str]) -> int:
    """``astrollama <group> argv`` through the group's module ``main`` (no exit policy here)."""
    mod = importlib.import_module(module)
    extra = GROUP_EXTRAS.get(group)
    return int((mod.main(argv, extra) if extra else mod.main(argv)) or 0)


def run(argv: list[str]) -> int:
    """``astrollama <wing group> ...`` in this process, under the one exit policy; returns its code."""
    group, rest = argv[0], list(argv[1:])
    if group not in WING_GROUPS:
        raise ValueError(f"not a wing's command group: {group!r} (one of {', '.join(WING_GROUPS)})")
    return guarded(group, lambda: run_group_module(group, WING_GROUPS[group], rest))
