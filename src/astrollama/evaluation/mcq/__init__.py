"""Astronomy MCQ benchmark (AstroMLab 1): question files, prompts, scoring, peers, CLI.

Modules: ``data`` (question and key files, validation), ``prompts`` (templates, letter tokens,
answer parsing), ``score`` (``score_mcq``, the token and instruct methods, ``MCQResult``),
``hf`` (the transformers backend), ``vllm`` (the vLLM backend), ``lmeval`` (lm-evaluation-harness
as a peer), ``cli`` (``astrollama eval mcq`` / ``mcq-split``). Throughput against lm-eval is
measured by the tool :mod:`astrollama.tools.bench_mcq`. See docs/eval-mcq.md.
"""

from astrollama.evaluation.mcq.data import (
    LETTERS,
    MCQInputError,
    Question,
    QuestionSet,
    apply_key,
    load_questions,
    write_public_and_key,
)
from astrollama.evaluation.mcq.score import MCQResult, bootstrap_ci, score_mcq

__all__ = [
    "LETTERS",
    "MCQInputError",
    "MCQResult",
    "Question",
    "QuestionSet",
    "apply_key",
    "bootstrap_ci",
    "load_questions",
    "score_mcq",
    "write_public_and_key",
]
