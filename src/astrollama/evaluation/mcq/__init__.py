"""Astronomy MCQ benchmark (AstroMLab 1): question files, prompts, scoring, peers, CLI.

The question and key files are read by :mod:`astrollama.benchmark`. Modules: ``prompts`` (templates, letter tokens,
answer parsing), ``score`` (``score_mcq``, the token and instruct methods, ``MCQResult``),
``hf`` (the transformers backend), ``vllm`` (the vLLM backend), ``lmeval`` (lm-evaluation-harness
as a peer), ``cli`` (``astrollama eval mcq`` / ``mcq-split``). Throughput against lm-eval is
measured by the tool :mod:`astrollama.tools.bench_mcq`. See docs/eval-mcq.md.
"""

from astrollama.evaluation.mcq.score import MCQResult, bootstrap_ci, score_mcq

__all__ = ["MCQResult", "bootstrap_ci", "score_mcq"]
