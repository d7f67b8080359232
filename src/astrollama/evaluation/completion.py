"""Text completion of an abstract's opening, sampled reproducibly (AstroLLaMA-1's qualitative eval).

The sampler is our own loop (KV cache, temperature, nucleus/top-p) drawing every token with one
seeded ``torch.Generator`` on the CPU, so the same model, prompt, settings and seed give the same
text on every CPU run, independent of the global RNG state. ``temperature=0`` is greedy decoding.
The prompt is tokenised with the tokenizer's special tokens (BOS, as in training); generation stops
at EOS or after ``max_new_tokens``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from astrollama.cli_args import number, seed_arg
from astrollama.io import atomic_write_json

log = logging.getLogger(__name__)

DEFAULT_PROMPT_FILE = Path("eval/prompts/completion.txt")


def read_prompt(path: str | os.PathLike[str]) -> str:
    """The prompt text of a file, trailing whitespace removed (the model continues the sentence)."""
    from astrollama.evaluation.common import EvalInputError

    p = Path(path)
    if not p.is_file():
        raise EvalInputError(f"{p}: prompt file does not exist")
    from astrollama.untrusted import read_text

    text = read_text(p, "config", error=EvalInputError).rstrip()  # regular, bounded, UTF-8
    if not text:
        raise EvalInputError(f"{p}: prompt file is empty")
    return text


def bundled_prompt_file() -> Path:
    """``eval/prompts/completion.txt`` of this repository."""
    from astrollama.paths import REPO_ROOT

    return REPO_ROOT / DEFAULT_PROMPT_FILE


def sample_completion(
    model,
    tokenizer,
    prompt: str,
    *,
    seed: int = 0,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
) -> str:
    """Continue ``prompt``; returns the generated text only (decoded, special tokens skipped)."""
    import torch

    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    ids = torch.tensor([prompt_ids], device=device)
    eos = tokenizer.eos_token_id
    new: list[int] = []
    past = None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            out = model(input_ids=ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float().cpu()
            if temperature == 0:
                nxt = int(logits.argmax())
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                sorted_p, order = probs.sort(descending=True)
                # keep the smallest prefix whose mass reaches top_p (always the top token)
                cut = int((sorted_p.cumsum(0) - sorted_p < top_p).sum())
                kept = sorted_p[:cut] / sorted_p[:cut].sum()
                nxt = int(order[torch.multinomial(kept, 1, generator=gen)])
            if nxt == eos:
                break
            new.append(nxt)
            ids = torch.tensor([[nxt]], device=device)
    # decode with the prompt so that SentencePiece tokenizers keep the leading space of new text
    full = tokenizer.decode(prompt_ids + new, skip_special_tokens=True)
    head = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    return full[len(head) :] if full.startswith(head) else tokenizer.decode(new, skip_special_tokens=True)


def completion_report(
    model_dir: str | os.PathLike[str],
    *,
    prompt: str,
    seed: int = 0,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
    prompt_file: str | None = None,
    base: str | None = None,
    dtype: str = "float32",
    device: str | None = None,
    out: str | os.PathLike[str] | None = None,
    model_and_tokenizer: tuple | None = None,
) -> dict:
    """Sample one completion and return (and with ``out``, write atomically) it with its settings."""
    from astrollama.evaluation.common import load_causal_lm
    from astrollama.evaluation.perplexity import library_versions

    model, tok = model_and_tokenizer or load_causal_lm(model_dir, base=base, dtype=dtype, device=device)
    text = sample_completion(
        model, tok, prompt, seed=seed, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p
    )
    log.info("completion %s (seed %d): %r", model_dir, seed, text[:80])
    rep = {
        "metric": "completion",
        "model": str(model_dir),
        "prompt": prompt,
        "completion": text,
        "settings": {
            "seed": seed,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "prompt_file": prompt_file,
            "sampler": "astrollama top-p, CPU torch.Generator",
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "device": str(next(model.parameters()).device),
        },
        "versions": library_versions(),
    }
    if out:
        atomic_write_json(out, rep)
    return rep


def register(subparsers) -> None:
    """``astrollama eval complete``: a seeded completion of an abstract opening."""
    p = subparsers.add_parser(
        "complete",
        help="sample a completion of an abstract opening with a fixed seed",
        description="Continue a prompt (default eval/prompts/completion.txt) with seeded top-p sampling; "
        "writes JSON with the prompt, the completion and every setting.",
    )
    p.add_argument("--model", required=True, help="checkpoint directory (full model or LoRA adapter)")
    p.add_argument("--base", default=None, help="base model directory for a LoRA adapter checkpoint")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prompt-file", default=None, help="prompt file (default: the bundled completion.txt)")
    g.add_argument("--prompt", default=None, help="prompt text")
    p.add_argument("--seed", type=seed_arg(), default=0)
    p.add_argument("--max-new-tokens", type=number(int, min=1), default=64)
    p.add_argument("--temperature", type=number(min=0), default=0.8, help="0 = greedy")
    p.add_argument("--top-p", type=number(gt=0, max=1), default=0.95)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="output JSON file")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from astrollama.io import claim_file, json_file_with

    # --out: a new file or this command's earlier output, writable: checked before the model loads
    claim_file(args.out, "eval complete", is_own=json_file_with(metric="completion"))
    prompt_file = None if args.prompt is not None else str(args.prompt_file or bundled_prompt_file())
    prompt = args.prompt if args.prompt is not None else read_prompt(prompt_file)
    rep = completion_report(
        args.model,
        prompt=prompt,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        prompt_file=prompt_file,
        base=args.base,
        dtype=args.dtype,
        device=args.device,
        out=args.out,
    )
    print(rep["prompt"] + rep["completion"])
    return 0
