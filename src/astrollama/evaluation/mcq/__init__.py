"""Astronomy MCQ benchmark (AstroMLab 1): question files, prompts, scoring, peers, CLI.

The question and key files are read by :mod:`astrollama.benchmark`. Modules: ``prompts`` (templates, letter tokens,
answer parsing), ``score`` (``score_mcq``, the token and instruct methods, ``MCQResult``),
``vllm`` (the vLLM backend), ``lmeval`` (lm-evaluation-harness as a peer), ``bench`` (throughput
against lm-eval), ``cli`` (``astrollama eval mcq`` / ``mcq-split``). See docs/eval-mcq.md.
"""

from astrollama.evaluation.mcq.score import MCQResult, bootstrap_ci, score_mcq

__all__ = ["MCQResult", "bootstrap_ci", "score_mcq"]
