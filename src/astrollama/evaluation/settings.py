"""How a model is scored: one frozen settings object passed whole, from the command to the metric.

:class:`ScoringSettings` holds what ``astrollama eval model``, ``eval models``, ``eval sweep``,
``eval mcq`` and ``eval ppl`` ask for on their command lines (the options of
:func:`astrollama.evaluation.suite.add_scoring_options` and of each command): the inputs, how the
model is loaded, how the MCQ is scored, the perplexity windows and the generation length. Each
command builds it ONCE from its parsed arguments (:meth:`ScoringSettings.from_args`; a config's
keys are parsed as those options, :mod:`astrollama.evaluation.config`) and hands it whole to
:func:`~astrollama.evaluation.suite.evaluate_model`, :func:`~astrollama.evaluation.pool.evaluate_models`,
:func:`~astrollama.evaluation.sweep.sweep`, :func:`~astrollama.evaluation.mcq.score_mcq` and
:func:`~astrollama.evaluation.perplexity.perplexity_report`; each reads the fields it uses.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoringSettings:
    """What a model is scored on, and how. The defaults are the Python API's; each command's
    option defaults are its own (e.g. ``eval mcq --dtype auto``, ``eval model --max-new-tokens 64``)."""

    # inputs: the MCQ file (with an optional separate key) and the held-out documents
    questions: str | os.PathLike[str] | None = None
    key: str | os.PathLike[str] | None = None
    heldout: str | os.PathLike[str] | None = None
    scale: str = "paper"  # toy: not comparable with paper-scale numbers in absolute terms
    # loading the model
    base: str | os.PathLike[str] | None = None  # base model of a LoRA adapter checkpoint
    dtype: str = "float32"  # score_mcq also takes auto (bfloat16 on CUDA, float32 on CPU)
    device: str | None = None
    batch_size: int = 8  # MCQ questions and perplexity windows per batch
    # the MCQ benchmark (astrollama.evaluation.mcq.score)
    method: str = "token"  # token | instruct
    backend: str = "transformers"  # transformers | vllm
    prompt: str = "astromlab"  # a shipped template by name (mcq.prompts.PROMPTS)
    template: str | os.PathLike[str] | None = None  # a template file instead of ``prompt``
    letter_token: str = "prompt"  # prompt | reference (mcq.prompts)
    prefix_cache: bool = True
    context_policy: str = "truncate"  # truncate | refuse
    vllm_logprobs: int = 20
    n_bootstrap: int = 10_000  # resamples of the accuracy's interval
    bootstrap_seed: int = 0  # their seed
    # held-out perplexity (astrollama.evaluation.perplexity)
    block_size: int = 512
    stride: int | None = None
    max_docs: int | None = None
    # generation: the completion's sampling seed (and vLLM's), the instruct method's and the
    # completion's length
    seed: int = 0
    max_new_tokens: int = 256

    @classmethod
    def from_args(cls, args: Any, **overrides: Any) -> ScoringSettings:
        """The settings a command's parsed options give: every field the command has an option
        for (same name), then ``overrides`` (an option whose name or sense differs)."""
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        return cls(**{**given, **overrides})

    def replace(self, **changes: Any) -> ScoringSettings:
        return dataclasses.replace(self, **changes)
