"""``astrollama data manifest {summary,export,failures,compact}``: the paper manifest
(:mod:`astrollama.data.manifest`) from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from astrollama.data.manifest import Manifest


def register(sub: argparse._SubParsersAction) -> None:
    """``astrollama data manifest {summary,export,failures,compact}``."""
    p = sub.add_parser("manifest", help="inspect/export the paper manifest")
    msub = p.add_subparsers(dest="manifest_cmd", required=True)
    s = msub.add_parser("summary", help="papers and per-stage status counts")
    s.add_argument("--root", required=True, help="data root (holds manifest/)")
    s.set_defaults(func=_cli_summary)
    e = msub.add_parser("export", help="write the merged table as CSV or Parquet")
    e.add_argument("--root", required=True)
    e.add_argument("--format", choices=["csv", "parquet"], default=None, help="default: from --out suffix")
    e.add_argument("--out", required=True)
    e.set_defaults(func=_cli_export)
    f = msub.add_parser("failures", help="list failed papers of a stage with their errors")
    f.add_argument("--root", required=True)
    f.add_argument("--stage", required=True)
    f.set_defaults(func=_cli_failures)
    c = msub.add_parser("compact", help="rewrite papers.jsonl as one merged row per paper")
    c.add_argument("--root", required=True)
    c.set_defaults(func=_cli_compact)


def _cli_summary(a: argparse.Namespace) -> int:
    m = Manifest(a.root).require()
    print(f"papers: {len(m.papers())}")
    for stage, counts in m.summary().items():
        print(f"{stage}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


def _cli_export(a: argparse.Namespace) -> int:
    out = Manifest(a.root).require().export(a.out, a.format or (Path(a.out).suffix.lstrip(".") or "csv"))
    print(out)
    return 0


def _cli_failures(a: argparse.Namespace) -> int:
    fails = Manifest(a.root).require().failures(a.stage)
    for pid, err in fails.items():
        print(f"{pid}\t{err}")
    return 1 if fails else 0


def _cli_compact(a: argparse.Namespace) -> int:
    print(f"{Manifest(a.root).require().compact()} papers")
    return 0
