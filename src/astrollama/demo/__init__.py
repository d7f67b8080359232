"""``astrollama demo``: the toy pipeline end to end on a laptop (2 CPU cores, no GPU, no network).

The demo IS the toy reproduction target ``reproduce/demo.yaml``, run in order on this machine by
:mod:`astrollama.reproduce` (the same graph a cluster runs as Slurm jobs: ``astrollama reproduce
demo``):

1. data: ``data_prep/demo.yaml`` through the data pipeline runner (:mod:`astrollama.data.pipeline`):
   the bundled paper texts (``data/demo/papers``) -> generated PDFs -> OCR (PDF text layer: real
   Nougat weights are not reachable offline) -> AIC -> summaries (SmolLM2-135M-Instruct on CPU, a
   few papers) -> build (clean, dedup, decontaminate, split by paper id, shard) into LMFlow
   ``text_only`` corpora, and the SFT conversations we write (:mod:`astrollama.data.demo_sft`).
   Training uses ``aic/train``; the held-out set is ``abstracts/validation``.
2. CPT of SmolLM2-135M-Instruct through ``bash slurm/cpt.sh recipes/demo-smollm2-135m.yaml``.
3. SFT of the result through ``bash slurm/cpt.sh recipes/demo-smollm2-135m-sft.yaml``.
4. merge with SmolLM2-135M-Instruct through ``bash slurm/merge.sh recipes/demo-smollm2-135m-merge.yaml``.
5. evaluation with ``eval/demo.yaml``: one ``astrollama eval models`` loads each of the four models
   once for the MCQ, perplexity, a completion and the embeddings (side by side on the cores), then
   the report (``astrollama eval report``): base -> CPT -> SFT -> merged beside the published
   tables; fails loudly unless held-out perplexity dropped with CPT.

``--timings`` prints each stage's wall seconds at the end (``[demo timings]``, with each model's
part of the evaluation; scripts/bench_demo.sh passes it through).

Work files go under ``work/demo/`` (gitignored). The data stages resume (a rerun redoes nothing).
Each ``astrollama demo`` trains FRESH (the previous runs, merge and evaluation are removed) so that
before/after is measured again; ``--resume`` instead continues an interrupted run from its newest
complete checkpoint and skips every stage that is complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from astrollama.io import atomic_write_json
from astrollama.paths import REPO_ROOT

DEFAULT_WORKDIR = REPO_ROOT / "work" / "demo"
TARGET = REPO_ROOT / "reproduce" / "demo.yaml"


OWNER = "demo"
_WORK_ENTRIES = frozenset(
    {"prep", "corpus", "run", "sft", "sft-run", "merged", "eval", "perplexity.json", "run.incomplete"}
)


def _legacy_workdir(directory: Path) -> bool:
    """A work directory of an earlier version: nothing but the demo's own files, with its prep/."""
    names = {p.name for p in directory.iterdir() if not p.name.startswith(".")}
    return "prep" in names and names <= _WORK_ENTRIES


class DemoError(RuntimeError):
    """A demo stage failed; the message says which and why."""


def demo_target(
    workdir: Path = DEFAULT_WORKDIR,
    *,
    cpt: Sequence[str] = (),
    sft: Sequence[str] = (),
    eval_args: Sequence[str] = (),
    embed_args: Sequence[str] = (),
    target: Path = TARGET,
) -> dict:
    """``reproduce/demo.yaml`` as a mapping, with every output under ``workdir`` and extra
    overrides (``cpt``/``sft``: recipe keys; ``eval_args``/``embed_args``: eval flags)."""
    from astrollama.config import read_mapping

    t = read_mapping(target)
    work = Path(workdir).resolve()
    t["work"] = str(work)
    t["data"]["set"] = [
        f"root={work / 'prep'}",
        f"build.out={work / 'corpus'}",
        f"demo-sft.out={work / 'sft'}",
    ]
    t["cpt"]["overrides"] = [*_with(t["cpt"]["overrides"], "launch.run_dir", work / "run"), *cpt]
    t["sft"]["data"] = str(work / "sft" / "train")
    t["sft"]["overrides"] = [*_with(t["sft"]["overrides"], "launch.run_dir", work / "sft-run"), *sft]
    t["merge"]["output"] = str(work / "merged")
    t["eval"]["model_args"] = [*t["eval"].get("model_args", []), *eval_args]
    t["eval"]["embed_args"] = [*t["eval"].get("embed_args", []), *embed_args]
    return t


def _with(overrides: list[str], key: str, value: Path) -> list[str]:
    return [o for o in overrides if not o.startswith(f"{key}=")] + [f"{key}={value}"]


def run(
    workdir: Path, *, resume: bool = False, overrides: Sequence[str] = (), timings: list | None = None
) -> dict:
    """Run the toy target here; return the perplexity summary (raise DemoError on a failure).
    ``timings``: each stage's :class:`astrollama.reproduce.StageTime` is appended to it."""
    from astrollama.reproduce import Plan, run_local
    from astrollama.targets import Target

    target = Target.model_validate(demo_target(workdir, cpt=overrides))
    plan = Plan(str(TARGET), target, TARGET)
    if not resume:  # train fresh: before/after is measured again
        for stage in ("cpt", "sft", "merge"):
            out = plan.stages[stage].outputs[0]
            shutil.rmtree(out.parent if stage != "merge" else out, ignore_errors=True)
        for stage in ("eval", "report"):
            plan.marker(stage).unlink(missing_ok=True)
    rc = run_local(plan, plan.order, timings=timings)
    if rc != 0:
        raise DemoError(f"stage failed (exit {rc}); see above")
    results = plan.work / "eval" / "results"
    ppl = {
        role: json.loads((results / role / "ppl.json").read_text())["perplexity"]
        for role, _, _ in plan.models
    }
    summary = {
        "heldout": str(plan.corpus / "abstracts" / "validation"),
        "report": str(plan.work / "eval" / "report"),
        "perplexity": ppl,
        "relative_change": ppl["cpt"] / ppl["base"] - 1.0,
    }
    atomic_write_json(plan.work / "perplexity.json", summary)
    print(
        f"held-out perplexity: {ppl['base']:.3f} before -> {ppl['cpt']:.3f} after training "
        f"({summary['relative_change']:+.1%}); SFT {ppl['sft']:.3f}; merged {ppl['merged']:.3f}",
        flush=True,
    )
    if not ppl["cpt"] < ppl["base"]:
        raise DemoError(f"held-out perplexity did not drop: {ppl['base']:.3f} -> {ppl['cpt']:.3f}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``astrollama demo``."""
    from astrollama.cli_args import CommandParser

    p = CommandParser(prog="astrollama demo", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="work files (default: work/demo)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run; skip complete stages")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="CPT recipe overrides, e.g. trainer.max_steps=10"
    )
    p.add_argument("--timings", action="store_true", help="print each stage's wall seconds at the end")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from astrollama.io import claim_dir

    # the work directory is the demo's (owner marker, astrollama.io): it removes and rewrites runs
    # there, so someone else's directory is refused before anything is written
    claim_dir(a.workdir.resolve(), OWNER, legacy=(_legacy_workdir,), what="--workdir", create=True)
    timings: list | None = [] if a.timings else None
    t0 = time.perf_counter()
    try:
        summary = run(a.workdir, resume=a.resume, overrides=a.overrides, timings=timings)
    except DemoError as e:
        print(f"demo FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if timings is not None:  # the stages that ran, also when one failed
            from astrollama.reproduce import timings_table

            print(timings_table(timings, time.perf_counter() - t0), flush=True)
    print(f"demo OK: report in {summary['report']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
