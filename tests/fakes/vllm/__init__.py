"""A fake of vLLM's offline API at the GPU-only boundary (``vllm`` has no CPU wheels).

It behaves like the real thing (V1 engine), errors included, and computes with a real causal LM
run by transformers on CPU. One package serves every test that crosses this boundary (the
summariser's ``chat`` path and the MCQ scorer's ``generate``/logprobs path):

* ``LLM(model, *, tokenizer=None, tensor_parallel_size=1, dtype="auto", seed=0, max_model_len=None,
  gpu_memory_utilization=0.9, max_logprobs=20, enable_prefix_caching=None, ...)``;
  ``max_model_len`` above the model's ``max_position_embeddings`` raises ``ValueError``;
  ``get_tokenizer()``;
* ``generate(prompts, sampling_params=None, use_tqdm=True)`` with prompts as text or
  ``{"prompt_token_ids": [...]}`` (one or a list) and ``chat(messages, sampling_params=None,
  use_tqdm=True, add_generation_prompt=True)`` with one conversation or a list of them; either
  takes one ``SamplingParams`` or a list of the same length (else ``ValueError``) and returns
  ``RequestOutput`` objects in input order;
* ``SamplingParams()`` defaults to ``max_tokens=16`` (vLLM's trap) and validates its arguments;
* a prompt longer than ``max_model_len`` raises ``ValueError`` ("The decoder prompt (length N) is
  longer than the maximum model length of M. ...") and fails the whole call; generation stops at
  ``max_model_len`` with ``finish_reason="length"``;
* ``logprobs``/``prompt_logprobs``: one ``dict[token_id, Logprob]`` per token, the top K of the
  *raw* distribution plus the chosen token (vLLM's default ``logprobs_mode="raw_logprobs"``);
  more than ``max_logprobs`` raises ``ValueError`` ("... greater than max allowed: N");
* sampling applies ``repetition_penalty`` and ``allowed_token_ids`` (out-of-vocabulary ids raise
  ``ValueError``), then is greedy when ``temperature == 0``, otherwise samples (temperature,
  ``top_k``, ``top_p``) seeded by the request's ``seed``; stops at EOS, ``stop_token_ids`` or
  ``stop`` strings (excluded from the text).

``LLM.calls`` keeps the ``SamplingParams`` of every ``generate``/``chat`` call (one list per call)
and ``LLM.init_kwargs`` the constructor's arguments, so tests can assert on them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

__version__ = "0.0.0+fake"

_request_ids = itertools.count()
_DTYPES = {
    "auto": "float32",
    "float": "float32",
    "float32": "float32",
    "half": "float16",
    "float16": "float16",
    "bfloat16": "bfloat16",
}


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class SamplingParams:
    def __init__(
        self,
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        max_tokens: int | None = 16,
        repetition_penalty: float = 1.0,
        stop: str | list[str] | None = None,
        stop_token_ids: list[int] | None = None,
        logprobs: int | None = None,
        prompt_logprobs: int | None = None,
        allowed_token_ids: list[int] | None = None,
        **kw: Any,
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}.")
        if temperature < 0:
            raise ValueError(f"temperature must be non-negative, got {temperature}.")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
        if top_k < -1:
            raise ValueError(f"top_k must be 0 (disable), or at least 1, got {top_k}.")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        if repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be greater than zero, got {repetition_penalty}.")
        if logprobs is not None and logprobs != -1 and logprobs < 0:
            raise ValueError(f"logprobs must be non-negative or -1, got {logprobs}.")
        if prompt_logprobs is not None and prompt_logprobs != -1 and prompt_logprobs < 0:
            raise ValueError(f"prompt_logprobs must be non-negative or -1, got {prompt_logprobs}.")
        if allowed_token_ids is not None and len(allowed_token_ids) == 0:
            raise ValueError("allowed_token_ids is not None and empty!")
        self.n, self.temperature, self.top_p, self.top_k = n, temperature, top_p, top_k
        self.seed, self.max_tokens, self.repetition_penalty = seed, max_tokens, repetition_penalty
        self.stop = [stop] if isinstance(stop, str) else list(stop or [])
        self.stop_token_ids = list(stop_token_ids or [])
        self.logprobs, self.prompt_logprobs = logprobs, prompt_logprobs
        self.allowed_token_ids = allowed_token_ids
        self.extra_args = kw

    def __repr__(self) -> str:
        return (
            f"SamplingParams(n={self.n}, temperature={self.temperature}, top_p={self.top_p}, "
            f"top_k={self.top_k}, seed={self.seed}, max_tokens={self.max_tokens}, "
            f"logprobs={self.logprobs}, allowed_token_ids={self.allowed_token_ids})"
        )


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput]
    finished: bool = True
    metrics: Any = None
    lora_request: Any = None
    encoder_prompt: Any = None
    encoder_prompt_token_ids: Any = None
    num_cached_tokens: int = 0
    kv_transfer_params: dict = field(default_factory=dict)


class LLM:
    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        seed: int = 0,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        max_logprobs: int = 20,
        enable_prefix_caching: bool | None = None,
        **kw: Any,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        if dtype not in _DTYPES:
            raise ValueError(f"Unknown dtype: {dtype!r}")
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"GPU memory utilization must be within (0, 1]. Got {gpu_memory_utilization}.")
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, _DTYPES[dtype])).eval()
        ctx = self.model.config.max_position_embeddings
        if max_model_len is not None and max_model_len > ctx:
            raise ValueError(
                f"User-specified max_model_len ({max_model_len}) is greater than the derived max_model_len "
                f"(max_position_embeddings={ctx} in model's config.json)."
            )
        self.max_model_len = max_model_len or ctx
        self.max_logprobs = max_logprobs
        self.seed = seed
        self.init_kwargs = {
            "model": model,
            "tokenizer": tokenizer,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "seed": seed,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_logprobs": max_logprobs,
            "enable_prefix_caching": enable_prefix_caching,
            **kw,
        }
        self.calls: list[list[SamplingParams]] = []

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    # -- public entry points -------------------------------------------------------------------
    def generate(
        self,
        prompts: Any,
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        use_tqdm: bool = True,
        **kw: Any,
    ) -> list[RequestOutput]:
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        encoded = []
        for p in prompts:
            if isinstance(p, dict):
                encoded.append((p.get("prompt"), list(p["prompt_token_ids"])))
            else:
                encoded.append((p, self.tokenizer(p).input_ids))
        return self._run(encoded, sampling_params)

    def chat(
        self,
        messages: Any,
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        use_tqdm: bool = True,
        add_generation_prompt: bool = True,
        **kw: Any,
    ) -> list[RequestOutput]:
        convs = [messages] if messages and isinstance(messages[0], dict) else list(messages)
        encoded = []
        for conv in convs:
            ids = self.tokenizer.apply_chat_template(
                conv, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True
            )["input_ids"]
            encoded.append((None, list(ids)))
        return self._run(encoded, sampling_params)

    # -- engine --------------------------------------------------------------------------------
    def _run(
        self,
        encoded: list[tuple[str | None, list[int]]],
        sampling_params: SamplingParams | list[SamplingParams] | None,
    ) -> list[RequestOutput]:
        if sampling_params is None:
            params = [SamplingParams()] * len(encoded)
        elif isinstance(sampling_params, list):
            if len(sampling_params) != len(encoded):
                raise ValueError("The lengths of prompts and sampling_params must be the same.")
            params = list(sampling_params)
        else:
            params = [sampling_params] * len(encoded)
        vocab = self.model.config.vocab_size
        for (_, ids), sp in zip(encoded, params, strict=True):  # validation fails the whole call
            if len(ids) > self.max_model_len:
                raise ValueError(
                    f"The decoder prompt (length {len(ids)}) is longer than the maximum model length of "
                    f"{self.max_model_len}. Make sure that `max_model_len` is no smaller than the number of "
                    "text tokens."
                )
            if sp.logprobs is not None and sp.logprobs > self.max_logprobs:
                raise ValueError(
                    f"Requested sample logprobs of {sp.logprobs}, which is greater than max allowed: "
                    f"{self.max_logprobs}"
                )
            if sp.prompt_logprobs is not None and sp.prompt_logprobs > self.max_logprobs:
                raise ValueError(
                    f"Requested prompt logprobs of {sp.prompt_logprobs}, which is greater than max "
                    f"allowed: {self.max_logprobs}"
                )
            if sp.allowed_token_ids is not None and not all(0 <= t < vocab for t in sp.allowed_token_ids):
                raise ValueError("allowed_token_ids contains out-of-vocab token id!")
        self.calls.append(params)
        outs = []
        for (text, ids), sp in zip(encoded, params, strict=True):
            completions, prompt_lps = [], None
            for i in range(sp.n):
                comp, plp = self._complete(ids, sp, i)
                completions.append(comp)
                prompt_lps = prompt_lps or plp
            outs.append(RequestOutput(str(next(_request_ids)), text, ids, prompt_lps, completions, True))
        return outs

    def _top(self, raw: Any, k: int, chosen: int) -> dict[int, Logprob]:
        import torch

        k = raw.numel() if k == -1 else k
        top = torch.topk(raw, k)
        entry = {
            int(t): Logprob(float(v), r + 1, self.tokenizer.decode([int(t)]))
            for r, (v, t) in enumerate(zip(top.values, top.indices, strict=True))
        }
        if chosen not in entry:
            entry[chosen] = Logprob(
                float(raw[chosen]), int((raw > raw[chosen]).sum()) + 1, self.tokenizer.decode([chosen])
            )
        return entry

    def _complete(self, ids: list[int], sp: SamplingParams, index: int) -> tuple[CompletionOutput, Any]:
        import torch

        eos = self.tokenizer.eos_token_id
        budget = self.max_model_len - len(ids)
        if sp.max_tokens is not None:
            budget = min(budget, sp.max_tokens)
        gen_seed = (sp.seed if sp.seed is not None else self.seed) + index
        g = torch.Generator().manual_seed(gen_seed)
        gen: list[int] = []
        lps: list[dict[int, Logprob]] = []
        cum = 0.0
        finish, stop_reason, text = "length", None, None
        prompt_lps = None
        past = None
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids]), use_cache=True)
            if sp.prompt_logprobs is not None:
                plp = torch.log_softmax(out.logits[0].float(), dim=-1)
                prompt_lps = [None] + [
                    self._top(plp[j - 1], sp.prompt_logprobs, ids[j]) for j in range(1, len(ids))
                ]
            for _ in range(budget):
                logits, past = out.logits[0, -1].float(), out.past_key_values
                raw = torch.log_softmax(logits, dim=-1)
                x = logits.clone()
                if sp.repetition_penalty != 1.0:
                    seen = torch.tensor(sorted(set(ids + gen)))
                    v = x[seen]
                    x[seen] = torch.where(v > 0, v / sp.repetition_penalty, v * sp.repetition_penalty)
                if sp.allowed_token_ids is not None:
                    keep = torch.full_like(x, float("-inf"))
                    keep[sp.allowed_token_ids] = 0.0
                    x = x + keep
                if sp.temperature == 0.0:
                    tok = int(torch.argmax(x))
                else:
                    x = x / sp.temperature
                    if sp.top_k > 0:
                        kth = torch.topk(x, min(sp.top_k, x.numel())).values[-1]
                        x = x.masked_fill(x < kth, float("-inf"))
                    probs = torch.softmax(x, -1)
                    if sp.top_p < 1.0:
                        sp_, si = torch.sort(probs, descending=True)
                        drop = torch.cumsum(sp_, 0) - sp_ > sp.top_p
                        probs[si[drop]] = 0.0
                        probs = probs / probs.sum()
                    tok = int(torch.multinomial(probs, 1, generator=g))
                gen.append(tok)
                cum += float(raw[tok])
                if sp.logprobs is not None:
                    lps.append(self._top(raw, sp.logprobs, tok))
                if tok == eos:
                    finish = "stop"
                    break
                if tok in sp.stop_token_ids:
                    finish, stop_reason = "stop", tok
                    break
                if sp.stop:
                    decoded = self.tokenizer.decode(gen, skip_special_tokens=True)
                    hit = min(((decoded.find(s), s) for s in sp.stop if s in decoded), default=None)
                    if hit is not None:
                        finish, stop_reason, text = "stop", hit[1], decoded[: hit[0]]
                        break
                if len(gen) < budget:
                    out = self.model(input_ids=torch.tensor([[tok]]), past_key_values=past, use_cache=True)
        if text is None:
            text = self.tokenizer.decode([t for t in gen if t != eos], skip_special_tokens=True)
        with_lp = sp.logprobs is not None
        comp = CompletionOutput(
            index, text, gen, cum if with_lp else None, lps if with_lp else None, finish, stop_reason
        )
        return comp, prompt_lps
