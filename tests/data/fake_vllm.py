"""A stand-in for the ``vllm`` package (GPU-only, no CPU wheels) used at that one boundary.

It behaves like vLLM's offline API where the summariser depends on it, generation included
(a real causal LM run with transformers on CPU):

* ``LLM(model, tensor_parallel_size=1, max_model_len=None, dtype="auto", seed=0, ...)``;
  ``get_tokenizer()``; ``chat(messages, sampling_params=None, use_tqdm=True)`` where ``messages``
  is one conversation or a list of them and ``sampling_params`` one ``SamplingParams`` or a list
  of the same length (else ``ValueError``), returning ``RequestOutput`` objects in input order;
* ``SamplingParams()`` defaults to ``max_tokens=16`` (vLLM's trap) and validates its arguments;
* a prompt longer than ``max_model_len`` raises ``ValueError`` ("The decoder prompt (length N)
  is longer than the maximum model length of M. ...") and fails the whole call; generation
  stops at ``max_model_len`` with ``finish_reason="length"``;
* greedy when ``temperature == 0``, otherwise sampling seeded by the request's ``seed``.

Every ``SamplingParams`` passed to ``chat`` is kept in ``LLM.calls`` so tests can assert on them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

_ids = itertools.count()


class SamplingParams:
    def __init__(self, n: int = 1, temperature: float = 1.0, top_p: float = 1.0, top_k: int = -1,
                 seed: int | None = None, max_tokens: int | None = 16, repetition_penalty: float = 1.0,
                 stop: list[str] | None = None, **kw: Any) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be non-negative, got {temperature}.")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        if repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be greater than zero, got {repetition_penalty}.")
        self.n, self.temperature, self.top_p, self.top_k = n, temperature, top_p, top_k
        self.seed, self.max_tokens, self.repetition_penalty, self.stop = seed, max_tokens, repetition_penalty, stop

    def __repr__(self) -> str:
        return f"SamplingParams(temperature={self.temperature}, max_tokens={self.max_tokens}, seed={self.seed})"


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: Any
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool
    metrics: Any = None
    lora_request: Any = None
    encoder_prompt: Any = None
    encoder_prompt_token_ids: Any = None
    num_cached_tokens: int = 0
    kv_transfer_params: dict = field(default_factory=dict)


class LLM:
    def __init__(self, model: str, *, tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 dtype: str = "auto", seed: int = 0, gpu_memory_utilization: float = 0.9, **kw: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        ctx = self.model.config.max_position_embeddings
        if max_model_len is not None and max_model_len > ctx:
            raise ValueError(
                f"User-specified max_model_len ({max_model_len}) is greater than the derived max_model_len "
                f"(max_position_embeddings={ctx} in model's config.json)."
            )
        self.max_model_len = max_model_len or ctx
        self.init_kwargs = {"model": model, "tensor_parallel_size": tensor_parallel_size,
                            "max_model_len": max_model_len, "dtype": dtype, "seed": seed,
                            "gpu_memory_utilization": gpu_memory_utilization, **kw}
        self.calls: list[list[SamplingParams]] = []

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def chat(self, messages: Any, sampling_params: SamplingParams | list[SamplingParams] | None = None,
             use_tqdm: bool = True, add_generation_prompt: bool = True, **kw: Any) -> list[RequestOutput]:
        import torch

        convs = [messages] if messages and isinstance(messages[0], dict) else list(messages)
        if sampling_params is None:
            params = [SamplingParams()] * len(convs)
        elif isinstance(sampling_params, list):
            if len(sampling_params) != len(convs):
                raise ValueError("The lengths of prompts and sampling_params must be the same.")
            params = sampling_params
        else:
            params = [sampling_params] * len(convs)
        prompts = []
        for conv in convs:
            ids = self.tokenizer.apply_chat_template(conv, add_generation_prompt=add_generation_prompt,
                                                     tokenize=True, return_dict=True)["input_ids"]
            if len(ids) > self.max_model_len:
                raise ValueError(
                    f"The decoder prompt (length {len(ids)}) is longer than the maximum model length of "
                    f"{self.max_model_len}. Make sure that `max_model_len` is no smaller than the number of "
                    "text tokens."
                )
            prompts.append(ids)
        self.calls.append(list(params))
        outs = []
        for ids, sp in zip(prompts, params, strict=True):
            budget = min(sp.max_tokens or self.max_model_len, self.max_model_len - len(ids))
            kwargs: dict[str, Any] = {"max_new_tokens": budget, "repetition_penalty": sp.repetition_penalty,
                                      "pad_token_id": self.tokenizer.eos_token_id}
            if sp.temperature > 0:
                torch.manual_seed(sp.seed if sp.seed is not None else 0)
                kwargs.update(do_sample=True, temperature=sp.temperature, top_p=sp.top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                gen = self.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                          **kwargs)[0, len(ids):].tolist()
            eos = self.tokenizer.eos_token_id
            reason = "length"
            if eos in gen:
                gen, reason = gen[: gen.index(eos) + 1], "stop"
            text = self.tokenizer.decode([t for t in gen if t != eos], skip_special_tokens=True)
            outs.append(RequestOutput(str(next(_ids)), None, ids, None,
                                      [CompletionOutput(0, text, gen, None, None, reason)], True))
        return outs
