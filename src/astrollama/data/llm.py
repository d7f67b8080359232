"""Writing with a language model, shared by the stages that do (summaries, SFT question-answer
pairs): the backends behind one interface (:class:`Backend`), the command-line options that choose
one, the prompt file reader and the per-request seeds.

Backends: ``transformers`` (CPU; one request at a time, so results do not depend on batch
composition) and ``vllm`` (offline batch inference, imported lazily; every request carries an
explicit ``max_tokens``; a batch that fails is retried request by request so one bad paper never
fails the others).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from astrollama.config import check_keys, check_template, read_mapping
from astrollama.errors import InputError

log = logging.getLogger(__name__)


class SummaryError(InputError):
    """A paper that cannot be summarised (empty after dropping back matter, prompt too long...);
    also what the ``transformers`` backend returns for a prompt too long for its context, in
    whichever stage asked (the name is recorded with the paper's failure)."""


# ------------------------------------------------------------------------------------- prompts


def read_prompt(
    path: str | os.PathLike[str] | None,
    default: Path,
    placeholders: tuple[str, ...],
    error: type[InputError],
    *,
    allowed: tuple[str, ...] | None = None,
    keys: tuple[str, ...] = ("name", "system", "user"),
) -> tuple[Path, dict[str, Any], str]:
    """A prompt YAML (``name``, ``system``, ``user`` strings, and the optional ``keys``; ``user``
    holds ``placeholders`` and no other than ``allowed``), read with the project's one strict YAML
    reader and checked whole now (astrollama.config: unknown keys, misspelt placeholders), not per
    paper: its path, mapping and SHA-256 (recorded per paper)."""
    p = Path(path) if path else default
    if not p.is_file():
        raise error(f"{p}: (file): prompt file not found (pass --prompt)")
    d = read_mapping(p, what="a prompt file")

    def err(file: Any, key: str, problem: str) -> InputError:  # the stage's own error class
        return error(f"{file}: {key}: {problem}")

    check_keys(d, keys, p, error=err)  # type: ignore[arg-type]
    for key in keys:
        if key in d and not isinstance(d[key], str):
            raise error(f"{p}: {key}: must be a string, got {type(d[key]).__name__}")
    for key in ("name", "system", "user"):
        if not isinstance(d.get(key), str):
            raise error(f"{p}: {key}: missing or not a string")
    check_template(d["user"], allowed or placeholders, p, "user", required=placeholders, error=err)  # type: ignore[arg-type]
    from astrollama.untrusted import sha256_file

    return p, d, sha256_file(p, "config", error=error).hex()


def request_seed(base: int, paper_id: str, part: int) -> int:
    h = hashlib.sha256(f"{base}:{paper_id}:{part}".encode()).digest()
    return int.from_bytes(h[:4], "big")


# ------------------------------------------------------------------------------------ backends


@dataclass
class Generation:
    text: str
    n_tokens: int
    finish_reason: str  # "stop" | "length"


class Backend(Protocol):
    """What the summariser needs from a model runtime."""

    model_id: str
    max_model_len: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def prompt_length(self, conversation: list[dict[str, str]]) -> int: ...
    def generate(
        self, conversations: list[list[dict[str, str]]], max_tokens: list[int], seeds: list[int]
    ) -> list[Generation | Exception]: ...


class _TokenizerMixin:
    tokenizer: Any

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def prompt_length(self, conversation: list[dict[str, str]]) -> int:
        enc = self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return len(enc["input_ids"])


class TransformersBackend(_TokenizerMixin):
    """A Hugging Face causal LM on CPU (or any torch device), one request at a time.

    Greedy when ``temperature == 0``; otherwise sampling seeded per request, so a rerun (or a
    resumed run) reproduces every summary exactly.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        max_model_len: int | None = None,
        device: str = "cpu",
        model_id: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = model_id or str(model)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).to(device).eval()
        ctx = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.max_model_len = min(max_model_len or ctx, ctx)
        self.temperature, self.top_p, self.repetition_penalty = temperature, top_p, repetition_penalty
        self.device = device

    def generate(
        self, conversations: list[list[dict[str, str]]], max_tokens: list[int], seeds: list[int]
    ) -> list[Generation | Exception]:
        import torch

        out: list[Generation | Exception] = []
        for conv, mt, seed in zip(conversations, max_tokens, seeds, strict=True):
            enc = self.tokenizer.apply_chat_template(
                conv, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
            n_prompt = enc["input_ids"].shape[1]
            if n_prompt + mt > self.max_model_len:
                out.append(
                    SummaryError(
                        f"prompt ({n_prompt} tokens) + max_tokens ({mt}) exceeds max_model_len {self.max_model_len}"
                    )
                )
                continue
            kw: dict[str, Any] = {
                "max_new_tokens": mt,
                "repetition_penalty": self.repetition_penalty,
                "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            }
            if self.temperature > 0:
                torch.manual_seed(seed)
                kw.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
            else:
                kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                ids = self.model.generate(**{k: v.to(self.device) for k, v in enc.items()}, **kw)
            new = ids[0, n_prompt:].tolist()
            eos = self.tokenizer.eos_token_id
            stopped = eos in new
            if stopped:
                new = new[: new.index(eos)]
            out.append(Generation(self.decode(new).strip(), len(new), "stop" if stopped else "length"))
        return out


class VLLMBackend(_TokenizerMixin):
    """vLLM offline batch inference (GPU clusters; ``envs/vllm.txt``). ``vllm`` is imported here,
    lazily, so the rest of the project never needs it."""

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int = 8192,
        dtype: str = "bfloat16",
        temperature: float = 0.0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        model_id: str | None = None,
    ) -> None:
        import vllm  # lazy: GPU-only dependency

        self._vllm = vllm
        self.model_id = model_id or str(model)
        self.llm = vllm.LLM(
            model=str(model),
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = max_model_len
        self.temperature, self.top_p, self.repetition_penalty = temperature, top_p, repetition_penalty

    def _params(self, mt: int, seed: int) -> Any:
        return self._vllm.SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=mt,
            seed=seed,
            repetition_penalty=self.repetition_penalty,
        )

    def generate(
        self, conversations: list[list[dict[str, str]]], max_tokens: list[int], seeds: list[int]
    ) -> list[Generation | Exception]:
        params = [self._params(mt, s) for mt, s in zip(max_tokens, seeds, strict=True)]
        try:
            outs = self.llm.chat(conversations, params, use_tqdm=True)
        except ValueError as e:  # one overlong prompt fails the whole batch: isolate it
            if len(conversations) == 1:
                return [e]
            log.warning("vLLM batch of %d failed (%s); retrying request by request", len(conversations), e)
            res: list[Generation | Exception] = []
            for conv, p in zip(conversations, params, strict=True):
                try:
                    res.extend(self._convert(self.llm.chat([conv], [p], use_tqdm=False)))
                except ValueError as e1:
                    res.append(e1)
            return res
        return self._convert(outs)

    @staticmethod
    def _convert(outs: Iterable[Any]) -> list[Generation | Exception]:
        res: list[Generation | Exception] = []
        for o in outs:
            c = o.outputs[0]
            res.append(Generation(c.text.strip(), len(c.token_ids), c.finish_reason or "length"))
        return res


def make_backend(name: str, model: str | os.PathLike[str], **kw: Any) -> Backend:
    """``transformers`` or ``vllm``; keyword arguments go to the backend's constructor."""
    if name == "transformers":
        kw.pop("tensor_parallel_size", None)
        kw.pop("dtype", None)
        kw.pop("gpu_memory_utilization", None)
        kw.pop("seed", None)
        return TransformersBackend(model, **kw)
    if name == "vllm":
        kw.pop("device", None)
        return VLLMBackend(str(model), **kw)
    raise ValueError(f"unknown summarisation backend {name!r} (transformers | vllm)")


def add_backend_args(p: Any, model_help: str) -> None:
    """The model and generation options of every stage that writes with :func:`make_backend`
    (summarize, qa), read back by :func:`backend_from_args`."""
    from astrollama.cli_args import number

    p.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--model-id", help="name recorded per paper (default: --model)")
    p.add_argument(
        "--max-model-len", type=number(int, min=1), default=None, help="context window (vllm default 8192)"
    )
    p.add_argument("--tensor-parallel-size", type=number(int, min=1), default=1, help="vllm: GPUs per model")
    p.add_argument("--device", default="cpu", help="transformers: torch device (cpu, cuda)")
    p.add_argument("--dtype", default="bfloat16", help="vllm dtype")
    p.add_argument("--gpu-memory-utilization", type=number(gt=0, max=1), default=0.9)
    p.add_argument("--temperature", type=number(min=0), default=0.0, help="0 = greedy")
    p.add_argument("--repetition-penalty", type=number(gt=0), default=1.0)


def backend_from_args(a: Any) -> Backend:
    """The backend a stage's command line asks for (``--backend``, ``--model`` and the options above)."""
    kw: dict[str, Any] = {
        "temperature": a.temperature,
        "repetition_penalty": a.repetition_penalty,
        "model_id": a.model_id,
    }
    if a.backend == "vllm":
        kw.update(
            tensor_parallel_size=a.tensor_parallel_size,
            max_model_len=a.max_model_len or 8192,
            dtype=a.dtype,
            gpu_memory_utilization=a.gpu_memory_utilization,
            seed=a.seed,
        )
    else:
        kw.update(max_model_len=a.max_model_len, device=a.device)
    from astrollama.models import resolve_model

    return make_backend(a.backend, resolve_model(a.model), **kw)
