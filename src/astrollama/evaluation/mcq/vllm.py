"""vLLM backend of the MCQ scorer (GPU only; ``vllm`` is imported lazily).

Token method: one request per question, the prompt given as token ids (the same ids as the
transformers backend), ``SamplingParams(max_tokens=1, temperature=0, logprobs=K,
allowed_token_ids=<the four letter ids>)``. Greedy sampling restricted to the letters returns the
argmax letter exactly (the prediction); vLLM (V1 engine, default ``logprobs_mode="raw_logprobs"``)
computes the returned logprobs *before* the allowed-token restriction, so they are the model's
full-vocabulary log-probabilities: the top K plus the sampled letter. A letter outside the top K
gets ``None`` (its probability is below the K-th token's; it cannot be the prediction). vLLM's
automatic prefix caching reuses the shared instruction prefix across questions.

Instruct method: the chat-templated prompt ids, greedy generation (``temperature=0``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from astrollama.evaluation.mcq.prompts import EncodedPrompt

log = logging.getLogger(__name__)

DEFAULT_LOGPROBS = 20  # vLLM's default max_logprobs


def _import_vllm():
    try:
        import vllm
    except ImportError as e:  # pragma: no cover - exercised only without the package
        raise RuntimeError(
            "backend 'vllm' needs the vllm package (GPU machines: pip install -r envs/vllm.txt)"
        ) from e
    return vllm


def make_llm(
    model_path: str, *, dtype: str, seed: int = 0, max_logprobs: int = DEFAULT_LOGPROBS, **llm_kwargs: Any
):
    """A ``vllm.LLM`` for scoring: prefix caching on, ``max_logprobs`` large enough for K."""
    vllm = _import_vllm()
    kwargs = {
        "model": model_path,
        "dtype": dtype,
        "seed": seed,
        "max_logprobs": max_logprobs,
        "enable_prefix_caching": True,
        **llm_kwargs,
    }
    log.info("vLLM %s: LLM(%s)", getattr(vllm, "__version__", "?"), kwargs)
    return vllm.LLM(**kwargs)


def letter_logprobs(
    llm, encoded: Sequence[EncodedPrompt], *, logprobs: int = DEFAULT_LOGPROBS, progress: bool = True
) -> tuple[list[list[float | None]], list[int]]:
    """Per question: the four letters' full-vocabulary logprobs (None outside the top K) and the
    index (0-3) of the greedy letter."""
    vllm = _import_vllm()

    def params(letter_ids: Sequence[int]):
        return vllm.SamplingParams(
            max_tokens=1, temperature=0.0, logprobs=logprobs, allowed_token_ids=list(letter_ids)
        )

    distinct = {e.letter_ids for e in encoded}
    sp = params(next(iter(distinct))) if len(distinct) == 1 else [params(e.letter_ids) for e in encoded]
    prompts = [{"prompt_token_ids": list(e.ids)} for e in encoded]
    outputs = llm.generate(prompts, sp, use_tqdm=progress)
    if len(outputs) != len(encoded):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(encoded)} prompts")
    all_lp: list[list[float | None]] = []
    picks: list[int] = []
    for e, out in zip(encoded, outputs, strict=True):
        comp = out.outputs[0]
        sampled = comp.token_ids[0]
        if sampled not in e.letter_ids:
            raise RuntimeError(f"vLLM sampled token {sampled}, not one of the letter ids {e.letter_ids}")
        top = comp.logprobs[0]
        all_lp.append([top[t].logprob if t in top else None for t in e.letter_ids])
        picks.append(e.letter_ids.index(sampled))
    return all_lp, picks


def generate(
    llm, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int, progress: bool = True
) -> list[str]:
    """Greedy completions of chat-templated prompts."""
    vllm = _import_vllm()
    sp = vllm.SamplingParams(max_tokens=max_new_tokens, temperature=0.0)
    outputs = llm.generate([{"prompt_token_ids": list(p)} for p in prompt_ids], sp, use_tqdm=progress)
    return [out.outputs[0].text for out in outputs]


def version() -> str:
    return getattr(_import_vllm(), "__version__", "unknown")
