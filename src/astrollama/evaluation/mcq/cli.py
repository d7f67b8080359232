"""``astrollama eval mcq`` (score a model on the astronomy MCQ benchmark) and ``eval mcq-split``
(turn a keyed file into the public form plus a separate key file)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from astrollama.evaluation.mcq.prompts import LETTER_TOKEN_RULES, PROMPT_NAMES
from astrollama.io import Legacy, claim_dir, claim_file, owned_dir

LETTER_TOKEN_HELP = (
    "token method: which token id stands for each letter. prompt = the letter's token as it follows "
    "the prompt (default); reference = tokenizer.encode(letter, add_special_tokens=False)[-1], the "
    "rule of public re-implementations of AstroMLab's scorer (for SentencePiece LLaMA-2: '▁A'). "
    "Recorded in scores.json"
)


def add_letter_token_option(p) -> None:
    """``--letter-token prompt|reference`` (the same option on every command that scores the MCQ)."""
    p.add_argument("--letter-token", choices=LETTER_TOKEN_RULES, default="prompt", help=LETTER_TOKEN_HELP)


def register(sub) -> None:
    from astrollama.cli_args import seed_arg

    p = sub.add_parser(
        "mcq",
        help="score a model on the AstroMLab-1 astronomy MCQ benchmark",
        description="Per-question predictions (predictions.jsonl), a submission file (submission.csv) and, "
        "with a key, accuracy and a bootstrap 95%% interval (scores.json) in --out.",
    )
    p.add_argument("--model", required=True, help="checkpoint directory (full model or LoRA adapter)")
    p.add_argument("--base", default=None, help="base model directory for a LoRA adapter")
    p.add_argument("--questions", required=True, help=".parquet (public AstroMLab file), .jsonl or .csv")
    p.add_argument("--key", default=None, help="separate answer key (.jsonl/.csv/.parquet/.txt)")
    p.add_argument(
        "--method",
        choices=["token", "instruct"],
        default="token",
        help="token: next-token letter probabilities (base models); instruct: generate + parse",
    )
    p.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16"
    )
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument(
        "--prompt",
        choices=PROMPT_NAMES,
        default="astromlab",
        help="shipped prompt: astromlab = AstroMLab's structure (question first, then instructions, "
        "'Response:' opening the JSON answer; default); ours = instructions first; plain = "
        "Question/A-D/Answer: (token method; instruct has astromlab only)",
    )
    p.add_argument("--template", default=None, help="a prompt template file instead of --prompt")
    add_letter_token_option(p)
    p.add_argument(
        "--no-prefix-cache", action="store_true", help="token method: do not reuse the shared prefix"
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=256,
        help="instruct method: generation length",
    )
    p.add_argument("--limit", type=int, default=None, help="score only the first N questions")
    p.add_argument(
        "--context-policy",
        choices=["truncate", "refuse"],
        default="truncate",
        help="a prompt longer than the model's context: truncate = keep its last tokens (as "
        "lm-evaluation-harness), counted in scores.json; refuse = stop with an error",
    )
    p.add_argument("--n-bootstrap", type=int, default=10_000)
    p.add_argument("--seed", type=seed_arg(), default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=run)

    c = sub.add_parser(
        "mcq-check",
        help="check a submission.csv against its question file before sending it to AstroMLab",
        description="Checks the header (id,answer), one row per question in file order, the ids and "
        "the letters A-D; prints the count of each letter and of blank answers (docs/eval-mcq.md).",
    )
    c.add_argument("submission", help="submission.csv written by `astrollama eval mcq`")
    c.add_argument(
        "--questions", required=True, help="the question file it answers (e.g. the public parquet)"
    )
    c.set_defaults(func=run_check)

    s = sub.add_parser("mcq-split", help="split a keyed MCQ file into the public form and a key file")
    s.add_argument("keyed", help="keyed question file (correct/answer column)")
    s.add_argument("--public", required=True, help="output: .jsonl, or .parquet (AstroMLab's public layout)")
    s.add_argument("--key", required=True, help="output: key JSONL ({id, correct} per row)")
    s.set_defaults(func=run_split)


# the output's owner marker (astrollama.io); an output of an earlier version: scores.json with
# nothing beside it but the other files `eval mcq` writes
MCQ_OWNER = "eval mcq"
MCQ_LEGACY = (
    Legacy(
        "scores.json",
        check=lambda d: isinstance(d, dict) and "settings" in d,
        only=frozenset({"scores.json", "predictions.jsonl", "submission.csv"}),
    ),
)


def run(args: argparse.Namespace) -> int:
    from astrollama.benchmark import MCQInputError, load_questions
    from astrollama.cli_args import MAX_BATCH, MAX_RESAMPLES, MAX_TOKENS
    from astrollama.evaluation.mcq import score_mcq
    from astrollama.evaluation.settings import ScoringSettings

    claim_dir(args.out, MCQ_OWNER, legacy=MCQ_LEGACY)  # before any question is read or model loaded

    for option, value, most in (
        ("--batch-size", args.batch_size, MAX_BATCH),
        ("--limit", args.limit, None),
        ("--n-bootstrap", args.n_bootstrap, MAX_RESAMPLES),
        ("--max-new-tokens", args.max_new_tokens, MAX_TOKENS),
    ):
        if value is not None and value < 1:
            raise MCQInputError(f"{option}: must be >= 1, got {value}")
        if value is not None and most is not None and value > most:
            raise MCQInputError(f"{option}: must be <= {most:,}, got {value:,}")
    qs = load_questions(args.questions, key_path=args.key)
    if args.limit:
        qs = qs.head(args.limit)
    # --seed: the bootstrap interval's seed and vLLM's; --no-prefix-cache: the cache's opposite
    settings = ScoringSettings.from_args(
        args, prefix_cache=not args.no_prefix_cache, bootstrap_seed=args.seed
    )
    result = score_mcq(args.model, qs, settings)
    with owned_dir(args.out, MCQ_OWNER, legacy=MCQ_LEGACY) as tmp:
        result.write(tmp)
    summary = {k: v for k, v in result.scores().items() if k != "settings"}
    print(json.dumps(summary, indent=2))
    return 0


def run_split(args: argparse.Namespace) -> int:
    from astrollama.benchmark import MCQInputError, load_questions, write_public_and_key

    outs = {"--public": Path(args.public), "--key": Path(args.key)}
    for option, path in outs.items():
        claim_file(path, "eval mcq-split", is_own=None, what=option)
        if path.resolve() == Path(args.keyed).resolve():
            raise MCQInputError(f"{option}: {path}: is the keyed input file; choose another path")
    if outs["--public"].resolve() == outs["--key"].resolve():
        raise MCQInputError(f"--key: {args.key}: is the same file as --public")
    pub, key = write_public_and_key(load_questions(args.keyed), args.public, args.key)
    print(f"{pub}\n{key}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from astrollama.benchmark import load_questions
    from astrollama.evaluation.mcq.submission import check_submission

    summary = check_submission(args.submission, load_questions(args.questions))
    print(json.dumps(summary, indent=2))
    if summary["n_blank"]:
        print(
            f"warning: {summary['n_blank']} questions have no answer (AstroMLab asks for one answer "
            "to every question)"
        )
    return 0
