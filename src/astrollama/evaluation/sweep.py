"""Checkpoint sweeps: score the base model and every ``checkpoint-N`` of a run; learning curves.

Layout read (the training engine's, ``astrollama.train``): checkpoints live in
``<run_dir>/checkpoints/checkpoint-N/`` (``<run_dir>/output/`` and ``<run_dir>/`` itself are also
searched); the finished run's final model sits in the same directory (``config.json`` or
``adapter_config.json`` + ``trainer_state.json``). LoRA adapter checkpoints are merged onto
``--base`` (or the adapter's own ``base_model_name_or_path``) before scoring.

A checkpoint is scored when its weights are present and, if it has a ``trainer_state.json``, that
file's ``global_step`` equals N (the Trainer writes it last); a checkpoint being written is skipped
and picked up by the next sweep.

Each point (``base`` = step 0, ``checkpoint-N`` = step N, ``final`` when its step differs from every
checkpoint) gets ``OUT/points/<label>/``: the MCQ outputs (``mcq/``: predictions, scores,
submission), ``ppl.json``, and ``point.json`` written last, as the completion marker. A rerun skips
points whose ``point.json`` carries the same settings fingerprint, so the sweep is resumable (and
``slurm/eval.sh`` can be requeued). After every point ``OUT/curves.csv`` and ``OUT/curves.png``
(MCQ accuracy with its bootstrap 95% band, and perplexity, against the training step) are rebuilt.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from astrollama.benchmark import load_questions
from astrollama.cli_args import MAX_TOKENS, number
from astrollama.evaluation.mcq.cli import add_letter_token_option
from astrollama.evaluation.settings import ScoringSettings
from astrollama.io import Legacy, atomic_write_json, atomic_write_text, claim_dir, save_png
from astrollama.untrusted import read_json

log = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
CHECKPOINT_PARENTS = ("checkpoints", "output", ".")
_WEIGHTS = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)
CSV_FIELDS = (
    "label",
    "step",
    "model",
    "mcq_accuracy",
    "mcq_ci_low",
    "mcq_ci_high",
    "mcq_n",
    "perplexity",
    "ppl_ci_low",
    "ppl_ci_high",
    "ppl_tokens",
)


@dataclass(frozen=True)
class Point:
    label: str
    step: int
    path: Path


# the output's owner marker (astrollama.io); it is written in place and resumed point by point; a
# sweep of an earlier version holds nothing but points/ and the curves
OWNER = "eval sweep"
LEGACY = (Legacy("points", only=frozenset({"points", "curves.csv", "curves.png"})),)


def _has_weights(d: Path) -> bool:
    return any((d / f).is_file() and (d / f).stat().st_size > 0 for f in _WEIGHTS)


def _state_step(d: Path) -> int | None:
    if not os.path.lexists(d / "trainer_state.json"):
        return None
    try:  # regular, bounded JSON (astrollama.untrusted); InputError is a ValueError
        return int(read_json(d / "trainer_state.json", "results")["global_step"])
    except (ValueError, KeyError, TypeError):
        return None


def checkpoint_dir(run_dir: str | os.PathLike[str]) -> Path:
    """The directory of a run that holds its ``checkpoint-N`` directories (or its final model)."""
    run = Path(run_dir)
    if not run.is_dir():
        from astrollama.evaluation.common import EvalInputError

        raise EvalInputError(f"{run}: run directory does not exist")
    for sub in CHECKPOINT_PARENTS:
        d = run / sub
        if d.is_dir() and (any(CHECKPOINT_RE.match(p.name) for p in d.iterdir()) or _has_weights(d)):
            return d
    return run


def discover_points(
    run_dir: str | os.PathLike[str], base: str | os.PathLike[str] | None = None
) -> list[Point]:
    """The points to score, by step: base (step 0), complete checkpoints, and the final model."""
    ckdir = checkpoint_dir(run_dir)
    points = [Point("base", 0, Path(base))] if base else []
    steps = set()
    found = sorted(
        (int(m.group(1)), p) for p in ckdir.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()
    )
    for step, d in found:
        state = _state_step(d)
        if not _has_weights(d) or ((d / "trainer_state.json").exists() and state != step):
            log.warning("skipping %s: being written or incomplete (weights or trainer_state.json)", d)
            continue
        points.append(Point(d.name, step, d))
        steps.add(step)
    final_step = _state_step(ckdir)
    if _has_weights(ckdir) and final_step is not None and final_step not in steps:
        points.append(Point("final", final_step, ckdir))
    return points


def _sha256(path: str | os.PathLike[str] | None) -> str | None:
    if path is None:
        return None
    from astrollama.evaluation.common import EvalInputError
    from astrollama.untrusted import read_bytes, sha256_file

    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(p.glob("*.json")):
            h.update(f.name.encode())
            h.update(read_bytes(f, "shard", error=EvalInputError))
        return h.hexdigest()
    return sha256_file(p, "table", error=EvalInputError).hex()


def _fingerprint(point: Point, settings: dict) -> str:
    blob = json.dumps(
        {"label": point.label, "step": point.step, "model": str(point.path), **settings},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def score_point(point: Point, settings: ScoringSettings, *, questions, out_dir: Path) -> dict:
    """Load one checkpoint once; MCQ accuracy and held-out perplexity; returns the point summary.

    ``questions``: the loaded question set; ``settings``: the rest (held-out set, sizes, model
    loading, MCQ method and letter token)."""
    from astrollama.evaluation.common import load_causal_lm
    from astrollama.evaluation.mcq import score_mcq
    from astrollama.evaluation.perplexity import perplexity_report

    s = settings
    model, tok = load_causal_lm(point.path, base=s.base, dtype=s.dtype, device=s.device)
    res = score_mcq(model, questions, s, tokenizer=tok, progress=True)
    res.write(out_dir / "mcq")
    scores = res.scores()
    ppl = perplexity_report(
        point.path, s.heldout, s, out=out_dir / "ppl.json", model_and_tokenizer=(model, tok)
    )
    del model
    return {
        "label": point.label,
        "step": point.step,
        "model": str(point.path),
        "mcq_accuracy": scores.get("accuracy"),
        "mcq_ci95": scores.get("ci95"),
        "mcq_n": scores.get("n"),
        "perplexity": ppl["perplexity"],
        "ppl_ci95": ppl["ci95"],
        "ppl_tokens": ppl["n_tokens"],
    }


def sweep(
    run_dir: str | os.PathLike[str],
    settings: ScoringSettings,
    *,
    out: str | os.PathLike[str] | None = None,
) -> dict:
    """Score every point of a run that is not scored yet; rebuild the curves; return the summary.

    ``settings``: the questions (and key), the held-out set, ``base`` (scored as step 0 and the
    LoRA base), the perplexity windows, batch, dtype, device, MCQ ``method`` and ``letter_token``."""
    from astrollama.evaluation.common import EvalInputError, load_texts

    s = settings
    out_dir = Path(out) if out else Path(run_dir) / "eval" / "sweep"
    claim_dir(out_dir, OWNER, legacy=LEGACY)  # someone else's directory: refused before any work
    if s.base and not Path(s.base).is_dir():
        raise EvalInputError(f"{s.base}: base model directory does not exist")
    qs = load_questions(s.questions, key_path=s.key)
    load_texts(s.heldout, max_docs=s.max_docs)  # fail on bad held-out data before any model is loaded
    points = discover_points(run_dir, s.base)
    if not points:
        raise EvalInputError(f"{run_dir}: no checkpoint-N directories and no --base model to score")
    fingerprinted = {
        "questions": _sha256(s.questions),
        "key": _sha256(s.key),
        "heldout": _sha256(s.heldout),
        "block_size": s.block_size,
        "stride": s.stride,
        "max_docs": s.max_docs,
        "dtype": s.dtype,
        "mcq_method": s.method,
        "base": str(s.base) if s.base else None,
        # only when not the default, so that points scored before the option existed stay valid
        **({"letter_token": s.letter_token} if s.letter_token != "prompt" else {}),
    }
    # the model loads with base as a string (a LoRA checkpoint's base)
    s = s.replace(base=str(s.base) if s.base else None)
    from tqdm.auto import tqdm

    claim_dir(out_dir, OWNER, legacy=LEGACY, create=True)  # scored points are kept: a rerun resumes
    for point in tqdm(points, desc="sweep", unit="checkpoint"):
        pdir = out_dir / "points" / point.label
        fp = _fingerprint(point, fingerprinted)
        done = pdir / "point.json"
        if done.is_file() and read_json(done, "results").get("fingerprint") == fp:
            log.info("%s (step %d): already scored, skipping", point.label, point.step)
            continue
        log.info("scoring %s (step %d): %s", point.label, point.step, point.path)
        summary = score_point(point, s, questions=qs, out_dir=pdir)
        atomic_write_json(done, {**summary, "fingerprint": fp, "settings": fingerprinted})
        write_curves(out_dir)
    rows = write_curves(out_dir)
    return {"out": str(out_dir), "points": rows}


def read_points(out_dir: str | os.PathLike[str]) -> list[dict]:
    """Every scored point of a sweep directory, ordered by step (base first)."""
    rows = [read_json(p, "results") for p in Path(out_dir).glob("points/*/point.json")]
    return sorted(rows, key=lambda r: (r["step"], r["label"] != "base", r["label"]))


def write_curves(out_dir: str | os.PathLike[str]) -> list[dict]:
    """Rebuild ``curves.csv`` and ``curves.png`` from the points scored so far."""
    out_dir = Path(out_dir)
    rows = []
    for r in read_points(out_dir):
        ci = r.get("mcq_ci95") or [None, None]
        pci = r.get("ppl_ci95") or [None, None]
        rows.append(
            {
                "label": r["label"],
                "step": r["step"],
                "model": r["model"],
                "mcq_accuracy": r.get("mcq_accuracy"),
                "mcq_ci_low": ci[0],
                "mcq_ci_high": ci[1],
                "mcq_n": r.get("mcq_n"),
                "perplexity": r["perplexity"],
                "ppl_ci_low": pci[0],
                "ppl_ci_high": pci[1],
                "ppl_tokens": r["ppl_tokens"],
            }
        )
    if not rows:
        return rows
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "curves.csv", buf.getvalue())
    plot_curves(rows, out_dir / "curves.png")
    return rows


def plot_curves(rows: list[dict], path: str | os.PathLike[str]) -> Path:
    """Two panels against the training step: MCQ accuracy (95% band) and held-out perplexity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    keyed = [r for r in rows if r["mcq_accuracy"] is not None]
    if keyed:
        xs = [r["step"] for r in keyed]
        acc = [100 * r["mcq_accuracy"] for r in keyed]
        lo = [100 * r["mcq_ci_low"] for r in keyed]
        hi = [100 * r["mcq_ci_high"] for r in keyed]
        ax1.fill_between(xs, lo, hi, alpha=0.25, color="tab:blue", label="bootstrap 95% interval")
        ax1.plot(xs, acc, "o-", color="tab:blue", label="accuracy")
        ax1.axhline(25, color="grey", linestyle=":", linewidth=1, label="chance (25%)")
        ax1.legend(fontsize=8, loc="best")
    else:
        ax1.text(
            0.5,
            0.5,
            "no answer key: accuracy not available",
            ha="center",
            va="center",
            transform=ax1.transAxes,
        )
    ax1.set_xlabel("training step (0 = base model)")
    ax1.set_ylabel("MCQ accuracy (%)")
    ax1.set_title(f"Astronomy MCQ accuracy (n = {rows[0]['mcq_n']})")
    if all(r["ppl_ci_low"] is not None for r in rows):
        ax2.fill_between(
            steps,
            [r["ppl_ci_low"] for r in rows],
            [r["ppl_ci_high"] for r in rows],
            alpha=0.25,
            color="tab:orange",
            label="bootstrap 95% interval (documents)",
        )
    ax2.plot(steps, [r["perplexity"] for r in rows], "s-", color="tab:orange", label="perplexity")
    ax2.legend(fontsize=8)
    ax2.set_xlabel("training step (0 = base model)")
    ax2.set_ylabel("perplexity (held-out abstracts)")
    ax2.set_title(f"Held-out perplexity ({rows[0]['ppl_tokens']} tokens)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def register(subparsers) -> None:
    """``astrollama eval sweep``: score base + every checkpoint of a run; learning curves."""
    p = subparsers.add_parser(
        "sweep",
        help="score the base model and every checkpoint-N of a run (resumable); learning curves",
        description="MCQ accuracy (with bootstrap interval) and held-out perplexity for the base model "
        "and each checkpoint of RUN_DIR; writes OUT/points/*, OUT/curves.csv and OUT/curves.png. "
        "Points already scored with the same settings are skipped.",
    )
    p.add_argument("--run-dir", required=True, help="training run directory (checkpoints in RUN/checkpoints)")
    p.add_argument("--base", default=None, help="base model directory: scored as step 0, and LoRA base")
    p.add_argument("--questions", required=True, help="MCQ file (.jsonl/.csv/.parquet)")
    p.add_argument("--key", default=None, help="separate answer key file")
    p.add_argument("--heldout", required=True, help="held-out documents (LMFlow text_only dir or JSONL)")
    p.add_argument("--out", default=None, help="output directory (default RUN_DIR/eval/sweep)")
    p.add_argument("--block-size", type=number(int, min=2, cap=MAX_TOKENS), default=512)
    p.add_argument("--stride", type=number(int, min=1), default=None)
    p.add_argument("--max-docs", type=number(int, min=1), default=None)
    p.add_argument("--batch-size", type=number(int, min=1), default=8)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default=None)
    add_letter_token_option(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    rep = sweep(args.run_dir, ScoringSettings.from_args(args), out=args.out)
    for r in rep["points"]:
        acc = "n/a" if r["mcq_accuracy"] is None else f"{100 * r['mcq_accuracy']:.1f}%"
        print(f"{r['label']:>20} step {r['step']:>6}  MCQ {acc:>6}  ppl {r['perplexity']:.3f}")
    print(f"-> {Path(rep['out']) / 'curves.png'}")
    return 0
