"""The reproduction report: published numbers (with citations) beside ours (with intervals).

Two steps, two commands:

* ``astrollama eval model`` (:mod:`astrollama.evaluation.suite`): every per-model metric of one
  checkpoint into a RESULTS directory::

      RESULTS/meta.json          label, model, role (base | trained), recipe / paper_model, scale
      RESULTS/mcq/               scores.json, predictions.jsonl, submission.csv (astrollama.evaluation.mcq)
      RESULTS/ppl.json           held-out perplexity with a document-bootstrap interval
      RESULTS/completion.json    a seeded completion of eval/prompts/completion.txt

  ``meta.json`` is written last: a RESULTS directory without it is incomplete.

* ``astrollama eval report --results R1 R2 ... [--embed DIR] --out OUT``: ``OUT/report.md``,
  ``OUT/report.json``, ``OUT/table.csv`` and ``OUT/report.png`` (published vs reproduced bars with
  95% error bars). Published numbers come only from :mod:`astrollama.paper`; which published row a
  model sits beside is ``meta.paper_model`` (a row of ``MCQ_SCORES``) or, from ``meta.recipe`` (or
  ``--recipe``) and the role, the trained/base row of ``RECIPE_SCORES``. A ``scale: toy`` model
  (SmolLM2 at laptop scale) is labelled as not comparable in absolute terms: the comparable
  quantity is the change from base to trained, reported with a paired bootstrap interval.

  Three or more RESULTS directories are also read as the stages of one staged run, in the order
  given (e.g. base -> CPT -> SFT -> merged; each named by ``meta.stage``, else its label): a stage
  table with every stage's change from the previous stage and from the first (paired intervals),
  the published per-stage scores of ``astrollama.paper.STAGE_CHAINS`` beside it, and ``stages.png``.

Rooms: :mod:`~astrollama.evaluation.results` reads and checks the RESULTS directories,
:mod:`~astrollama.evaluation.tables` builds the tables (ours beside the published numbers),
:mod:`~astrollama.evaluation.figures` draws them, :mod:`~astrollama.evaluation.markdown` writes
``report.md``; this module assembles the report and registers ``astrollama eval report``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from pathlib import Path

import numpy as np

from astrollama import paper
from astrollama.evaluation.figures import plot_report, plot_similarity, plot_stages
from astrollama.evaluation.markdown import render_markdown
from astrollama.evaluation.results import check_similarity, load_results, read_results_json
from astrollama.evaluation.tables import (
    TABLE_FIELDS,
    change_table,
    model_row,
    published_ref,
    reference_table,
    stage_reference,
    stage_table,
)
from astrollama.io import Legacy, atomic_write_bytes, atomic_write_json, atomic_write_text, owned_dir

log = logging.getLogger(__name__)

REPORT_OWNER = "eval report"  # the output's owner marker (astrollama.io)
REPORT_LEGACY = (  # a report of an earlier version: its report.json and nothing but report files
    Legacy(
        "report.json",
        check=lambda d: isinstance(d, dict) and "models" in d and "reference" in d,
        only=frozenset(
            {"report.md", "report.json", "table.csv", "report.png", "stages.png", "similarity.png"}
        ),
    ),
)


def build_report(
    results_dirs: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    recipe: str | None = None,
    embed_dir: str | os.PathLike[str] | None = None,
    command: str | None = None,
) -> Path:
    """Write ``report.md``, ``report.json``, ``table.csv`` and ``report.png`` into ``out_dir``.

    Everything is rendered in a temporary directory renamed onto ``out_dir`` at the end (an
    earlier report there is replaced; someone else's directory is refused): a refusal or a
    failure leaves ``out_dir`` as it was."""
    with owned_dir(out_dir, REPORT_OWNER, legacy=REPORT_LEGACY) as tmp:
        _render_report(results_dirs, tmp, recipe=recipe, embed_dir=embed_dir, command=command)
    log.info("report -> %s", Path(out_dir) / "report.md")
    return Path(out_dir)


def _render_report(
    results_dirs: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    recipe: str | None = None,
    embed_dir: str | os.PathLike[str] | None = None,
    command: str | None = None,
) -> Path:
    from astrollama.evaluation.common import EvalInputError

    if not results_dirs:
        raise EvalInputError("report: no --results directories given")
    results = [load_results(d, recipe=recipe) for d in results_dirs]
    labels = [r.label for r in results]
    if len(set(labels)) != len(labels):
        raise EvalInputError(f"report: duplicate labels {labels}; give each model its own label")
    embed, redraw = None, False
    if embed_dir:
        ej = Path(embed_dir) / "similarity.json"
        if not os.path.lexists(ej):
            raise EvalInputError(f"{embed_dir}: no similarity.json (run `astrollama eval embed` first)")
        embed = check_similarity(read_results_json(ej, Path(embed_dir)), ej)
        redraw = embed.get("pairs") and os.path.lexists(Path(embed_dir) / embed["pairs"]["file"])
        if embed.get("plot") and not redraw:  # a file the report copies: a PNG inside the embed dir only
            from astrollama.untrusted import read_bytes

            sim_png = read_bytes(embed["plot"], "png", root=embed_dir, error=EvalInputError, field="plot")
            if not sim_png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise EvalInputError(f"{ej}: field 'plot': {embed['plot']!r} is not a PNG file")
    out = Path(out_dir)
    rows = [model_row(r) for r in results]
    changes = change_table(results)
    stages = stage_table(results)
    refs = reference_table()
    cmd = command or "astrollama eval report --results " + " ".join(str(d) for d in results_dirs)
    data = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": cmd,
        "models": rows,
        "changes": changes,
        "stages": stages,
        "stage_reference": stage_reference() if stages else [],
        "reference": refs,
        "astrollama1": {k: published_ref(v) for k, v in paper.ASTROLLAMA1.items()},
        "benchmark": {k: published_ref(v) for k, v in paper.BENCHMARK.items()},
        "embeddings": embed,
        "completions": [{"label": r.label, **r.completion} for r in results if r.completion],
        "mcq_settings": {r.label: (r.mcq or {}).get("settings") for r in results},
        "ppl_settings": {r.label: (r.ppl or {}).get("settings") for r in results},
    }
    png = plot_report(rows, out / "report.png")
    if stages:
        plot_stages(rows, data["stage_reference"], out / "stages.png")
    if embed and redraw:
        plot_similarity(_read_pairs(Path(embed_dir), embed["pairs"]), out / "similarity.png")
    elif embed and embed.get("plot"):  # an embed directory from before the pairs were kept
        atomic_write_bytes(out / "similarity.png", sim_png)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "table.csv", buf.getvalue())
    atomic_write_json(out / "report.json", data)
    atomic_write_text(
        out / "report.md", render_markdown(data, results, png.name, "similarity.png" if embed else None)
    )
    return out


def _read_pairs(embed_dir: Path, pairs: dict) -> dict[str, np.ndarray]:
    """The per-model pair similarities kept by ``astrollama eval embed`` (``similarity_pairs.npz``)."""
    from astrollama.evaluation.common import EvalInputError
    from astrollama.untrusted import check_file

    path = check_file(pairs["file"], "results", root=embed_dir, error=EvalInputError, field="pairs.file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {label: z[f"m{i}"] for i, label in enumerate(pairs["labels"])}
    except (OSError, ValueError, KeyError) as e:
        raise EvalInputError(f"{path}: unreadable pair similarities ({e})") from e


# ------------------------------------------------------------------------------------------------
# rendering

# ------------------------------------------------------------------------------------------------
# CLI


def register(subparsers) -> None:
    """``astrollama eval report``: the reproduction table from RESULTS directories."""
    p = subparsers.add_parser(
        "report",
        help="published vs reproduced table + bar chart from RESULTS directories",
        description="Build OUT/report.md, report.json, table.csv and report.png from the RESULTS "
        "directories written by `astrollama eval model`.",
    )
    p.add_argument("--results", nargs="+", required=True, help="RESULTS directories (one per model)")
    p.add_argument("--embed", default=None, help="output directory of `astrollama eval embed`")
    p.add_argument(
        "--recipe",
        default=None,
        help="recipe the trained models reproduce (overrides meta.json), e.g. astrollama-3-8b-base_aic",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    cmd = (
        "astrollama eval report --results "
        + " ".join(args.results)
        + (f" --embed {args.embed}" if args.embed else "")
        + (f" --recipe {args.recipe}" if args.recipe else "")
        + f" --out {args.out}"
    )
    out = build_report(args.results, args.out, recipe=args.recipe, embed_dir=args.embed, command=cmd)
    from astrollama.untrusted import read_text

    print(read_text(out / "report.md", "results"))
    return 0
