"""A CPU stand-in for vLLM's offline API, for tests of the GPU-only vLLM path.

It mirrors the parts of vLLM (V1 engine) that ``astrollama.evaluation.mcq_vllm`` uses, computing
with transformers: ``LLM(model, dtype, seed, max_logprobs, ...)``, ``LLM.generate(prompts,
sampling_params, use_tqdm)`` with prompts as text or ``{"prompt_token_ids": [...]}``,
``SamplingParams(max_tokens, temperature, logprobs, allowed_token_ids, ...)``, and
``RequestOutput.outputs[0]`` with ``token_ids``, ``text`` and ``logprobs`` (one
``dict[token_id, Logprob]`` per generated token: the top ``logprobs`` tokens of the *raw*
distribution plus the sampled token, as vLLM's default ``logprobs_mode="raw_logprobs"``).
Sampling applies ``allowed_token_ids`` before the greedy argmax. Errors follow vLLM's: too many
logprobs, out-of-vocabulary allowed ids, a parameter list of the wrong length, bad arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__version__ = "0.0.0+fake"


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class SamplingParams:
    def __init__(self, n: int = 1, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 seed: int | None = None, max_tokens: int | None = 16, logprobs: int | None = None,
                 prompt_logprobs: int | None = None, allowed_token_ids: list[int] | None = None,
                 stop_token_ids: list[int] | None = None):
        if n != 1:
            raise ValueError("fake vllm supports n=1 only")
        if temperature < 0.0:
            raise ValueError(f"temperature must be non-negative, got {temperature}.")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        if logprobs is not None and logprobs != -1 and logprobs < 0:
            raise ValueError(f"logprobs must be non-negative or -1, got {logprobs}.")
        if allowed_token_ids is not None and len(allowed_token_ids) == 0:
            raise ValueError("allowed_token_ids is not None and empty!")
        self.temperature, self.seed, self.max_tokens = temperature, seed, max_tokens
        self.logprobs, self.prompt_logprobs = logprobs, prompt_logprobs
        self.allowed_token_ids = allowed_token_ids
        self.stop_token_ids = stop_token_ids or []


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True


class LLM:
    def __init__(self, model: str, dtype: str = "auto", seed: int = 0, max_logprobs: int = 20,
                 enable_prefix_caching: bool | None = None, tokenizer: str | None = None, **kwargs):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = torch.float32 if dtype in ("auto", "float32") else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        self.max_logprobs = max_logprobs
        self.calls = 0

    def generate(self, prompts, sampling_params=None, use_tqdm: bool = True):
        import torch

        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        if sampling_params is None:
            sampling_params = SamplingParams()
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        vocab = self.model.config.vocab_size
        outputs = []
        self.calls += 1
        for rid, (prompt, sp) in enumerate(zip(prompts, params, strict=False)):
            if sp.logprobs is not None and sp.logprobs > self.max_logprobs:
                raise ValueError(f"Requested sample logprobs of {sp.logprobs}, which is greater than max allowed: "
                                 f"{self.max_logprobs}")
            if sp.allowed_token_ids is not None and not all(0 <= t < vocab for t in sp.allowed_token_ids):
                raise ValueError("allowed_token_ids contains out-of-vocab token id!")
            ids = list(prompt["prompt_token_ids"]) if isinstance(prompt, dict) else self.tokenizer(prompt).input_ids
            gen: list[int] = []
            lps: list[dict[int, Logprob]] = []
            cum = 0.0
            finish = "length"
            with torch.inference_mode():
                for _ in range(sp.max_tokens or 16):
                    logits = self.model(input_ids=torch.tensor([ids + gen])).logits[0, -1].float()
                    raw = torch.log_softmax(logits, dim=-1)
                    masked = logits.clone()
                    if sp.allowed_token_ids is not None:
                        keep = torch.full_like(masked, float("-inf"))
                        keep[sp.allowed_token_ids] = 0.0
                        masked = masked + keep
                    if sp.temperature == 0.0:
                        tok = int(torch.argmax(masked))
                    else:
                        g = torch.Generator().manual_seed(sp.seed or 0)
                        tok = int(torch.multinomial(torch.softmax(masked / sp.temperature, -1), 1, generator=g))
                    gen.append(tok)
                    cum += float(raw[tok])
                    if sp.logprobs is not None:
                        k = vocab if sp.logprobs == -1 else sp.logprobs
                        top = torch.topk(raw, k)
                        entry = {int(t): Logprob(float(v), r + 1) for r, (v, t) in enumerate(zip(top.values, top.indices, strict=False))}
                        if tok not in entry:
                            entry[tok] = Logprob(float(raw[tok]), int((raw > raw[tok]).sum()) + 1)
                        lps.append(entry)
                    if tok == self.tokenizer.eos_token_id or tok in sp.stop_token_ids:
                        finish = "stop"
                        break
            text = self.tokenizer.decode(gen, skip_special_tokens=True)
            outputs.append(RequestOutput(
                request_id=str(rid), prompt=prompt if isinstance(prompt, str) else None, prompt_token_ids=ids,
                outputs=[CompletionOutput(0, text, gen, cum if sp.logprobs is not None else None,
                                          lps if sp.logprobs is not None else None, finish)],
            ))
        return outputs
