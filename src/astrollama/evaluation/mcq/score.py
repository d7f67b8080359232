"""Astronomy MCQ benchmark (AstroMLab 1): score a model, write predictions, accuracy, submission.

Two methods (AstroMLab's, see docs/eval-mcq.md):

* ``token`` (base models): the raw prompt (no chat template: base models have none, and base and
  trained checkpoints must be scored alike) of ``eval/prompts/astromlab_token.txt`` by default
  (AstroMLab's structure: question and options, instructions and output format, then a
  ``Response:`` line opening the JSON answer) ends in ``"ANSWER": "``; the model's next-token
  log-probabilities of the letters A-D (token ids by ``letter_token``: ``prompt``, the letter as it
  follows the prompt, or ``reference``, the letter encoded alone; see ``mcq.prompts``) are
  read, and the argmax is the prediction. One forward pass per question; the prefix shared by all
  prompts (their longest common token prefix: the opening sentence for the default prompt, the
  whole instruction block for ``prompt="ours"``) is computed once and its KV cache reused by every
  batch; batches are sorted by length and
  left-padded by this code (the tokenizer's ``padding_side`` plays no part); only the last
  position's logits are computed.
* ``instruct`` (chat models): the chat template around ``eval/prompts/astromlab_instruct.txt``,
  greedy generation, then the ``ANSWER`` letter parsed (JSON, then fallbacks); replies with no
  letter count as wrong and are reported (``n_unparsed``).

Backends: ``transformers`` (``mcq.hf``: CPU or GPU, batched; dtype ``auto`` = bfloat16 on CUDA,
float32 on CPU) and ``vllm`` (GPU; ``mcq.vllm``).

Context length: a prompt longer than the model's context (``config.max_position_embeddings``,
else ``n_positions``/``n_ctx``, else the tokenizer's ``model_max_length``; for ``instruct`` the
context less ``max_new_tokens``) is never scored past the window. ``context_policy="truncate"``
(default) keeps its LAST tokens, as lm-evaluation-harness does, and counts it;
``"refuse"`` stops with one line naming the question. The policy, the limit and the truncated
questions are in ``settings["context"]`` of every ``scores.json`` (``n_truncated`` beside the score).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrollama.benchmark import LETTERS, MCQInputError, Question, QuestionSet
from astrollama.evaluation.mcq.hf import hf_generate, hf_letter_logprobs, resolve_device, resolve_dtype
from astrollama.evaluation.mcq.prompts import (
    LETTER_TOKEN_RULE_TEXT,
    LETTER_TOKEN_RULES,
    PromptTemplate,
    encode_prompts,
    parse_answer,
)
from astrollama.evaluation.settings import ScoringSettings
from astrollama.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

METHODS = ("token", "instruct")
BACKENDS = ("transformers", "vllm")
CONTEXT_POLICIES = ("truncate", "refuse")


# ------------------------------------------------------------------------------------------------
# result


def bootstrap_ci(
    correct: Sequence[bool], *, n_resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy (questions resampled with replacement,
    ``n_resamples`` times, numpy ``default_rng(seed)``; see ``astrollama.evaluation.stats``)."""
    from astrollama.evaluation.stats import bootstrap_mean_ci

    return bootstrap_mean_ci(correct, n_resamples=n_resamples, seed=seed, level=level)


@dataclass
class MCQResult:
    """Per-question predictions, accuracy with a bootstrap interval (keyed sets), settings."""

    predictions: list[dict[str, Any]]
    settings: dict[str, Any]
    seconds: float = 0.0
    n_bootstrap: int = 10_000
    seed: int = 0
    accuracy: float | None = field(init=False, default=None)
    ci95: tuple[float, float] | None = field(init=False, default=None)
    n_correct: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        keyed = bool(self.predictions) and all(p["correct"] is not None for p in self.predictions)
        if keyed:
            hits = [p["prediction"] == p["correct"] for p in self.predictions]
            for p, h in zip(self.predictions, hits, strict=True):
                p["is_correct"] = h
            self.n_correct = int(sum(hits))
            self.accuracy = self.n_correct / len(hits)
            self.ci95 = bootstrap_ci(hits, n_resamples=self.n_bootstrap, seed=self.seed)

    @property
    def n(self) -> int:
        return len(self.predictions)

    @property
    def n_unparsed(self) -> int:
        return sum(p["prediction"] is None for p in self.predictions)

    @property
    def letters(self) -> list[str | None]:
        return [p["prediction"] for p in self.predictions]

    def scores(self) -> dict[str, Any]:
        """The content of ``scores.json``."""
        return {
            "accuracy": self.accuracy,
            "ci95": list(self.ci95) if self.ci95 else None,
            "ci_method": f"percentile bootstrap over questions, {self.n_bootstrap} resamples, seed {self.seed}"
            if self.ci95
            else None,
            "n": self.n,
            "n_correct": self.n_correct,
            "n_unparsed": self.n_unparsed,
            "n_truncated": (self.settings.get("context") or {}).get("n_truncated"),
            "method": self.settings.get("method"),
            "letter_token": (self.settings.get("letter_token") or {}).get("rule"),
            "model": self.settings.get("model"),
            "questions": self.settings.get("questions", {}).get("path"),
            "seconds": round(self.seconds, 3),
            "questions_per_s": round(self.n / self.seconds, 3) if self.seconds > 0 else None,
            "settings": self.settings,
        }

    def submission_csv(self) -> str:
        """``id,answer`` rows, one per question in file order; an unparsed answer is empty
        (``mcq.submission``: the format, and the check before sending it to AstroMLab)."""
        from astrollama.evaluation.mcq.submission import submission_text

        return submission_text(self.predictions)

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``predictions.jsonl``, ``scores.json`` and ``submission.csv`` (each atomically)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "predictions": atomic_write_text(
                out / "predictions.jsonl",
                "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in self.predictions),
            ),
            "submission": atomic_write_text(out / "submission.csv", self.submission_csv()),
            "scores": atomic_write_json(out / "scores.json", self.scores()),
        }
        if self.accuracy is not None:
            lo, hi = self.ci95 or (math.nan, math.nan)
            log.info(
                "accuracy %.4f (95%% CI %.4f-%.4f) on %d questions -> %s", self.accuracy, lo, hi, self.n, out
            )
        else:
            log.info("%d predictions (no key: no accuracy) -> %s", self.n, out)
        return paths


# ------------------------------------------------------------------------------------------------
# scoring


def _sha256(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    from astrollama.untrusted import sha256_file

    return sha256_file(path, "table", error=MCQInputError).hex()  # regular, bounded, chunked


def _versions(backend: str) -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    from astrollama import __version__ as ours

    v = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "astrollama": ours,
    }
    if backend == "vllm":
        from astrollama.evaluation.mcq import vllm as mcq_vllm

        v["vllm"] = mcq_vllm.version()
    return v


def chat_prompt_ids(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt as the user turn of the tokenizer's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise MCQInputError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')}: no chat template, so the instruct "
            "method cannot be used; use --method token"
        )
    out = []
    for p in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        out.append(tokenizer(text, add_special_tokens=False).input_ids)
    return out


def chat_template_turns(tokenizer) -> dict[str, Any]:
    """What the chat template puts around the question (one user turn, generation prompt on).

    ``default_system``: the system turn the template inserts by itself when none is given (e.g.
    SmolLM2's "You are a helpful AI assistant named SmolLM, ..."), found by rendering the same
    user turn without and with an explicit system turn and reading what stands where the explicit
    one goes; None when it inserts none; ``"unknown"`` when the template refuses a system turn or
    the two renderings do not line up. ``before_question`` / ``after_question``: the exact text
    around the question (special tokens included), so a reader sees every token the model got.
    """
    user, system = "\x00QUESTION\x00", "\x00SYSTEM\x00"

    def render(messages: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    plain = render([{"role": "user", "content": user}])
    before, _, after = plain.partition(user)
    out: dict[str, Any] = {"before_question": before, "after_question": after}
    try:
        explicit = render([{"role": "system", "content": system}, {"role": "user", "content": user}])
    except Exception as e:  # a template may raise on a system turn (jinja's raise_exception)
        out["default_system"] = "unknown"
        out["system_note"] = f"the template refuses a system turn ({type(e).__name__})"
        return out
    head, sep, tail = explicit.partition(user)[0].partition(system)
    if not sep:
        out["default_system"] = "unknown"
        out["system_note"] = "the template dropped an explicit system turn"
    elif before.startswith(head) and before.endswith(tail) and len(before) >= len(head) + len(tail):
        out["default_system"] = before[len(head) : len(before) - len(tail)]
        out["system_note"] = "inserted by the chat template when no system turn is given (not ours)"
    else:
        out["default_system"] = None
        out["system_note"] = "the chat template inserts no system turn by itself"
    return out


def context_length(config: Any, tokenizer: Any) -> tuple[int | None, str]:
    """The model's context in tokens and where it came from (lm-evaluation-harness's order)."""
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        v = getattr(config, attr, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v, f"config.{attr}"
    v = getattr(tokenizer, "model_max_length", None)
    if isinstance(v, int) and 0 < v < 10_000_000:  # transformers' "no limit" is ~1e30
        return v, "tokenizer.model_max_length"
    return None, "unknown (no limit applied)"


def fit_context(
    ids: list[list[int]], qs: Sequence[Question], questions: QuestionSet, *, limit: int | None, policy: str
) -> tuple[list[list[int]], list[tuple[str, int]]]:
    """Prompts cut to their last ``limit`` tokens (``truncate``) or an error (``refuse``).

    Returns the prompts and ``(question id, tokens cut)`` for every truncated one."""
    if limit is None:
        return ids, []
    out, cut = [], []
    for q, seq in zip(qs, ids, strict=True):
        if len(seq) > limit:
            if policy == "refuse":
                raise MCQInputError(
                    f"{questions.path}: {q.where}: question {q.id!r}: the prompt is {len(seq)} tokens, above "
                    f"the {limit} the model's context allows; shorten it or use --context-policy truncate"
                )
            cut.append((q.id, len(seq) - limit))
            seq = seq[-limit:]
        out.append(seq)
    if cut:
        log.warning(
            "%d of %d prompts were longer than %d tokens: left-truncated (as lm-evaluation-harness)",
            len(cut),
            len(ids),
            limit,
        )
    return out, cut


def score_mcq(
    model: Any,
    questions: QuestionSet,
    settings: ScoringSettings = ScoringSettings(),
    *,
    tokenizer: Any = None,
    llm: Any = None,
    progress: bool = True,
) -> MCQResult:
    """Score ``questions`` with ``model`` (a checkpoint directory, full or LoRA with
    ``settings.base``, or a loaded ``PreTrainedModel`` together with ``tokenizer``).

    The fields of ``settings`` used: ``method``, ``backend``, ``batch_size``, ``dtype``, ``device``,
    ``prompt`` (a shipped template by name: ``astromlab``, the default, ``ours``, ``plain``; see
    ``mcq.prompts.PROMPTS``) or ``template`` (a template file instead), ``prefix_cache``,
    ``max_new_tokens`` (instruct), ``n_bootstrap`` and ``bootstrap_seed`` (the accuracy's
    interval), ``seed`` (vLLM), ``base``, ``vllm_logprobs``, ``context_policy`` (``truncate``: keep
    a too-long prompt's last tokens, counted; or ``refuse``) and ``letter_token`` (token method:
    ``prompt``, the letter's token as it follows the prompt, or ``reference``,
    ``tokenizer.encode(letter, add_special_tokens=False)[-1]``; recorded in ``scores.json``).
    ``llm`` (vLLM backend) reuses an existing ``vllm.LLM`` instead of building one.
    """
    s = settings
    _check_settings(s, questions)
    tpl = PromptTemplate.load(s.template) if s.template else PromptTemplate.default(s.method, s.prompt)
    model_label = (
        str(model)
        if isinstance(model, (str, os.PathLike))
        else getattr(getattr(model, "config", None), "_name_or_path", type(model).__name__)
    )
    model, tokenizer, device, dtype, (max_len, len_source) = _prepare(model, tokenizer, s)
    qs = questions.questions
    prompts = [tpl.render(q) for q in qs]
    recorded = _recorded_settings(s, tpl, questions, tokenizer, model_label, device, dtype)
    context: dict[str, Any] = {
        "max_length": max_len,
        "source": len_source,
        "policy": s.context_policy,
        "rule": "truncate: a longer prompt keeps its last tokens (left truncation, as lm-evaluation-harness); "
        "refuse: stop with an error naming the question",
    }
    recorded["context"] = context
    log.info(
        "scoring %d questions: method=%s backend=%s device=%s dtype=%s batch=%d",
        len(qs),
        s.method,
        s.backend,
        device,
        dtype,
        s.batch_size,
    )
    t0 = time.perf_counter()
    run = _score_token if s.method == "token" else _score_instruct
    records, cut = run(
        model, tokenizer, questions, prompts, s, recorded, dtype=dtype, llm=llm, progress=progress
    )
    context["n_truncated"] = len(cut)
    context["truncated"] = [{"id": i, "tokens_cut": n} for i, n in cut]
    cut_by_id = dict(cut)
    for r in records:
        r["truncated_tokens"] = cut_by_id.get(r["id"], 0)
    seconds = time.perf_counter() - t0
    return MCQResult(
        predictions=records,
        settings=recorded,
        seconds=seconds,
        n_bootstrap=s.n_bootstrap,
        seed=s.bootstrap_seed,
    )


def _check_settings(s: ScoringSettings, questions: QuestionSet) -> None:
    if s.method not in METHODS:
        raise MCQInputError(f"method {s.method!r}: use one of {METHODS}")
    if s.backend not in BACKENDS:
        raise MCQInputError(f"backend {s.backend!r}: use one of {BACKENDS}")
    if not len(questions):
        raise MCQInputError(f"{questions.path}: no questions to score")
    if s.batch_size < 1:
        raise MCQInputError(f"batch_size {s.batch_size}: must be >= 1")
    if s.context_policy not in CONTEXT_POLICIES:
        raise MCQInputError(f"context_policy {s.context_policy!r}: use one of {CONTEXT_POLICIES}")
    if s.letter_token not in LETTER_TOKEN_RULES:
        raise MCQInputError(f"letter_token {s.letter_token!r}: use one of {LETTER_TOKEN_RULES}")


def _prepare(
    model: Any, tokenizer: Any, s: ScoringSettings
) -> tuple[Any, Any, str, str, tuple[int | None, str]]:
    """``(model, tokenizer, device, dtype, (context length, its source))``: a checkpoint directory
    loaded (transformers) or its tokenizer and config read (vLLM), a loaded model taken as it is."""
    device, dtype = s.device, s.dtype
    if s.backend == "vllm":
        if not isinstance(model, (str, os.PathLike)):
            raise MCQInputError("backend 'vllm' needs a checkpoint directory, not a loaded model")
        device = device or "cuda"
        dtype = resolve_dtype(dtype, "cuda")
        from transformers import AutoConfig

        from astrollama.untrusted import check_model_dir, guard

        if tokenizer is None:
            from transformers import AutoTokenizer

            check_model_dir(model, error=MCQInputError)
            tokenizer = guard(
                lambda: AutoTokenizer.from_pretrained(model), model, "(tokenizer)", error=MCQInputError
            )
        config = guard(lambda: AutoConfig.from_pretrained(model), model, "config.json", error=MCQInputError)
        return model, tokenizer, device, dtype, context_length(config, tokenizer)
    if isinstance(model, (str, os.PathLike)):
        from astrollama.evaluation.common import load_causal_lm

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        model, tokenizer = load_causal_lm(model, base=s.base, dtype=dtype, device=device)
    else:
        if tokenizer is None:
            raise MCQInputError("a loaded model needs its tokenizer (tokenizer=...)")
        device = str(next(model.parameters()).device)
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return model, tokenizer, device, dtype, context_length(getattr(model, "config", None), tokenizer)


def _recorded_settings(
    s: ScoringSettings,
    tpl: PromptTemplate,
    questions: QuestionSet,
    tokenizer: Any,
    model_label: str,
    device: str,
    dtype: str,
) -> dict[str, Any]:
    """The start of ``scores.json``'s ``settings``: what was scored, with what, how."""
    return {
        "model": model_label,
        "method": s.method,
        "backend": s.backend,
        "device": device,
        "dtype": dtype,
        "batch_size": s.batch_size,
        "template": {"prompt": None if s.template else s.prompt, "path": str(tpl.path), "sha256": tpl.sha256},
        "questions": {
            "path": str(questions.path),
            "sha256": _sha256(questions.path),
            "n": len(questions.questions),
        },
        "key": {"path": str(questions.key_path), "sha256": _sha256(questions.key_path)}
        if questions.key_path
        else None,
        "tokenizer": {
            "class": type(tokenizer).__name__,
            "name_or_path": getattr(tokenizer, "name_or_path", None),
        },
        "versions": _versions(s.backend),
    }


def _score_token(
    model: Any,
    tokenizer: Any,
    questions: QuestionSet,
    prompts: list[str],
    s: ScoringSettings,
    recorded: dict[str, Any],
    *,
    dtype: str,
    llm: Any,
    progress: bool,
) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """The token method: next-token log-probabilities of the four letters after each prompt."""
    qs = questions.questions
    context = recorded["context"]
    encoded = encode_prompts(tokenizer, prompts, [q.id for q in qs], letter_token=s.letter_token)
    recorded["letter_token"] = {"rule": s.letter_token, "how": LETTER_TOKEN_RULE_TEXT[s.letter_token]}
    context["prompt_limit"] = context["max_length"]
    fitted, cut = fit_context(
        [e.ids for e in encoded], qs, questions, limit=context["max_length"], policy=s.context_policy
    )
    encoded = [dataclasses.replace(e, ids=i) for e, i in zip(encoded, fitted, strict=True)]
    distinct = sorted({e.letter_ids for e in encoded})
    recorded["letter_token_ids"] = [
        {L: {"id": i, "token": tokenizer.convert_ids_to_tokens(i)} for L, i in zip(LETTERS, ids, strict=True)}
        for ids in distinct
    ]
    recorded["add_special_tokens"] = "tokenizer default (e.g. BOS for LLaMA tokenizers)"
    if s.backend == "transformers":
        lps, p_len = hf_letter_logprobs(
            model, encoded, batch_size=s.batch_size, prefix_cache=s.prefix_cache, progress=progress
        )
        picks = [max(range(4), key=lambda j, lp=lp: lp[j]) for lp in lps]
        recorded["prefix_cache_tokens"] = p_len
    else:
        from astrollama.evaluation.mcq import vllm as mcq_vllm

        llm = llm or mcq_vllm.make_llm(str(model), dtype=dtype, seed=s.seed, max_logprobs=s.vllm_logprobs)
        lps, picks = mcq_vllm.letter_logprobs(llm, encoded, logprobs=s.vllm_logprobs, progress=progress)
        recorded["vllm_logprobs_top_k"] = s.vllm_logprobs
        recorded["letters_outside_top_k"] = sum(v is None for lp in lps for v in lp)
    return [_token_record(q, lp, pick) for q, lp, pick in zip(qs, lps, picks, strict=True)], cut


def _score_instruct(
    model: Any,
    tokenizer: Any,
    questions: QuestionSet,
    prompts: list[str],
    s: ScoringSettings,
    recorded: dict[str, Any],
    *,
    dtype: str,
    llm: Any,
    progress: bool,
) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """The instruct method: the chat template, greedy generation, the answer letter parsed."""
    qs = questions.questions
    context = recorded["context"]
    max_len = context["max_length"]
    ids = chat_prompt_ids(tokenizer, prompts)
    recorded["letter_token"] = {"rule": None, "how": "not used: the instruct method parses the reply"}
    recorded["chat_template"] = {
        "applied": True,
        "role": "user",
        "add_generation_prompt": True,
        "sha256": hashlib.sha256(str(tokenizer.chat_template).encode()).hexdigest(),
        **chat_template_turns(tokenizer),
    }
    limit = None if max_len is None else max_len - s.max_new_tokens
    if limit is not None and limit < 1:
        raise MCQInputError(
            f"max_new_tokens {s.max_new_tokens}: must be below the model's context of {max_len} tokens"
        )
    context["prompt_limit"] = limit
    ids, cut = fit_context(ids, qs, questions, limit=limit, policy=s.context_policy)
    recorded["max_new_tokens"] = s.max_new_tokens
    recorded["decoding"] = "greedy"
    if s.backend == "transformers":
        texts = hf_generate(
            model, tokenizer, ids, batch_size=s.batch_size, max_new_tokens=s.max_new_tokens, progress=progress
        )
    else:
        from astrollama.evaluation.mcq import vllm as mcq_vllm

        llm = llm or mcq_vllm.make_llm(str(model), dtype=dtype, seed=s.seed)
        texts = mcq_vllm.generate(llm, ids, max_new_tokens=s.max_new_tokens, progress=progress)
    records = []
    for q, text in zip(qs, texts, strict=True):
        letter, how = parse_answer(text)
        records.append(
            {"id": q.id, "prediction": letter, "correct": q.answer, "parsed_by": how, "response": text}
        )
    n_unparsed = sum(r["prediction"] is None for r in records)
    if n_unparsed:
        log.warning(
            "%d of %d replies had no parseable answer letter (counted as wrong)", n_unparsed, len(records)
        )
    return records, cut


def _token_record(q: Question, lp: Sequence[float | None], pick: int) -> dict[str, Any]:
    known = [v for v in lp if v is not None]
    top = max(known)
    z = sum(math.exp(v - top) for v in known)
    probs = {L: (math.exp(v - top) / z if v is not None else None) for L, v in zip(LETTERS, lp, strict=True)}
    return {
        "id": q.id,
        "prediction": LETTERS[pick],
        "correct": q.answer,
        "probs": probs,
        "logprobs": dict(zip(LETTERS, lp, strict=True)),
    }
