"""One checkpoint, every per-model metric, one load: a RESULTS directory for the report.

``astrollama eval model --model DIR --label L --role base|trained ... --out RESULTS`` writes::

    RESULTS/mcq/               scores.json, predictions.jsonl, submission.csv (astrollama.evaluation.mcq)
    RESULTS/ppl.json           held-out perplexity with a document-bootstrap interval
    RESULTS/completion.json    a seeded completion of eval/prompts/completion.txt
    RESULTS/meta.json          label, model, role, recipe / paper_model, scale (written LAST)

A RESULTS directory without ``meta.json`` is incomplete; ``astrollama eval report`` refuses it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from astrollama.benchmark import load_questions
from astrollama.cli_args import MAX_TOKENS, number, seed_arg
from astrollama.evaluation.mcq.cli import add_letter_token_option
from astrollama.evaluation.results import ROLES, SCALES, check_meta
from astrollama.evaluation.settings import ScoringSettings
from astrollama.io import Legacy, atomic_write_json, owned_dir

log = logging.getLogger(__name__)


# the RESULTS directory's owner marker (astrollama.io); a RESULTS of an earlier version holds
# nothing but what this command writes, with its meta.json, ppl.json or mcq/
OWNER = "eval model"
_RESULTS = frozenset({"mcq", "ppl.json", "completion.json", "meta.json"})
LEGACY = (
    Legacy("meta.json", check=lambda d: isinstance(d, dict) and "role" in d, only=_RESULTS),
    Legacy(
        "ppl.json", check=lambda d: isinstance(d, dict) and d.get("metric") == "perplexity", only=_RESULTS
    ),
    Legacy("mcq", only=_RESULTS),
)


def evaluate_model(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: ScoringSettings,
    *,
    label: str,
    role: str,
    recipe: str | None = None,
    paper_model: str | None = None,
    stage: str | None = None,
    prompt: str | None = None,
    prompt_file: str | None = None,
    model_and_tokenizer: tuple | None = None,
) -> Path:
    """MCQ, perplexity and a completion of one checkpoint (loaded once) into ``out_dir``.

    ``settings``: what to score on (``questions``, ``key``, ``heldout``), at what ``scale``, and how
    (:class:`~astrollama.evaluation.settings.ScoringSettings`; ``seed`` and ``max_new_tokens`` are
    the completion's). ``model_and_tokenizer`` reuses an already loaded model (the demo also embeds
    with it). ``stage`` names the model's stage in a staged run (base, CPT, SFT, merged; the
    report's stage table). ``prompt`` / ``prompt_file``: the completion's prompt (default
    eval/prompts/completion.txt). The RESULTS directory is rendered in a temporary directory and
    renamed onto ``out_dir`` when complete (an earlier RESULTS of this command is replaced,
    anything else refused first).
    """
    meta = {"label": label, "role": role, "recipe": recipe, "paper_model": paper_model, "stage": stage}
    with owned_dir(out_dir, OWNER, legacy=LEGACY) as tmp:
        _evaluate_into(
            model_dir,
            tmp,
            settings,
            meta,
            prompt=prompt,
            prompt_file=prompt_file,
            model_and_tokenizer=model_and_tokenizer,
        )
    log.info("%s (%s): results in %s", label, role, out_dir)
    return Path(out_dir)


def _evaluate_into(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    s: ScoringSettings,
    job: dict,
    *,
    prompt: str | None,
    prompt_file: str | None,
    model_and_tokenizer: tuple | None,
) -> Path:
    """The RESULTS files of one model into ``out_dir``; ``job``: its label, role, recipe,
    paper_model and stage (``meta.json``)."""
    from astrollama.evaluation.common import load_causal_lm, load_texts
    from astrollama.evaluation.completion import bundled_prompt_file, completion_report, read_prompt
    from astrollama.evaluation.mcq import score_mcq
    from astrollama.evaluation.perplexity import perplexity_report

    check_meta(
        role=job["role"],
        recipe=job["recipe"],
        paper_model=job["paper_model"],
        scale=s.scale,
        where="evaluate_model",
    )
    qs = load_questions(s.questions, key_path=s.key)
    load_texts(s.heldout, max_docs=s.max_docs)  # bad data fails before the model loads
    if prompt is None:
        prompt_file = str(prompt_file or bundled_prompt_file())
        prompt = read_prompt(prompt_file)
    out = Path(out_dir)
    model, tok = model_and_tokenizer or load_causal_lm(model_dir, base=s.base, dtype=s.dtype, device=s.device)
    t0 = time.perf_counter()
    # the MCQ (method, letter token, batch; its interval's own bootstrap_seed: seed is the completion's)
    score_mcq(model, qs, s, tokenizer=tok, progress=True).write(out / "mcq")
    perplexity_report(model_dir, s.heldout, s, out=out / "ppl.json", model_and_tokenizer=(model, tok))
    completion_report(
        model_dir,
        prompt=prompt,
        prompt_file=prompt_file,
        seed=s.seed,
        max_new_tokens=s.max_new_tokens,
        out=out / "completion.json",
        model_and_tokenizer=(model, tok),
    )
    meta = {
        "label": job["label"],
        "model": str(model_dir),
        "role": job["role"],
        "recipe": job["recipe"],
        "paper_model": job["paper_model"],
        "scale": s.scale,
        **({"stage": job["stage"]} if job["stage"] else {}),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(out / "meta.json", meta)
    return out


def add_scoring_options(p) -> None:
    """The options `eval model` and `eval models` share: questions, held-out set and how to score
    (each a field of :class:`~astrollama.evaluation.settings.ScoringSettings`, same name: the
    commands build it with ``ScoringSettings.from_args``)."""
    p.add_argument("--questions", required=True, help="MCQ file (.jsonl/.csv/.parquet)")
    p.add_argument("--key", default=None, help="separate answer key file")
    p.add_argument("--heldout", required=True, help="held-out documents (LMFlow text_only dir or JSONL)")
    p.add_argument("--block-size", type=number(int, min=2, cap=MAX_TOKENS), default=512)
    p.add_argument("--stride", type=number(int, min=1), default=None)
    p.add_argument("--max-docs", type=number(int, min=1), default=None)
    p.add_argument("--batch-size", type=number(int, min=1), default=8)
    p.add_argument("--seed", type=seed_arg(), default=0, help="completion sampling seed")
    p.add_argument("--max-new-tokens", type=number(int, min=1), default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default=None)
    add_letter_token_option(p)


def register(subparsers) -> None:
    """``astrollama eval model``: MCQ + perplexity + completion of one checkpoint -> RESULTS dir."""
    p = subparsers.add_parser(
        "model",
        help="MCQ, perplexity and a completion of one checkpoint into a RESULTS directory",
        description="Scores one checkpoint (loaded once) and writes OUT/{mcq/,ppl.json,completion.json,"
        "meta.json}; `astrollama eval report` reads these directories.",
    )
    p.add_argument("--model", required=True, help="checkpoint directory (full model or LoRA adapter)")
    p.add_argument("--base", default=None, help="base model directory for a LoRA adapter checkpoint")
    p.add_argument("--label", required=True, help="name of the model in the report")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--recipe", default=None, help="the recipe this model reproduces (astrollama.paper)")
    p.add_argument("--paper-model", default=None, help="row of astrollama.paper.MCQ_SCORES to compare with")
    p.add_argument("--scale", default="paper", choices=SCALES, help="toy: not comparable in absolute terms")
    p.add_argument(
        "--stage",
        default=None,
        help="stage name in a staged run (e.g. base, CPT, SFT, merged); "
        "`eval report` tabulates the --results in order, stage by stage",
    )
    add_scoring_options(p)
    p.add_argument("--out", required=True, help="RESULTS directory")
    p.set_defaults(func=_run)


def _run(args) -> int:
    evaluate_model(
        args.model,
        args.out,
        ScoringSettings.from_args(args),
        label=args.label,
        role=args.role,
        recipe=args.recipe,
        paper_model=args.paper_model,
        stage=args.stage,
    )
    print(f"-> {args.out}")
    return 0
