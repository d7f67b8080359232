"""Conversation templates for SFT: the names LMFlow knows and the local engine's encoding of them.

LMFlow (commit in :data:`astrollama.train.lmflow.LMFLOW_COMMIT`) turns a ``conversation`` instance
into tokens with a named template (``--conversation_template``, ``PRESET_TEMPLATES`` in
``lmflow/utils/conversation_template/__init__.py``) and masks the loss to the assistant turns
(``conversation_tokenize_function`` in ``lmflow/tokenization/hf_decoder_model.py``, with
``--train_on_prompt False``, its default). Facts restated in docs/lmflow.md:

* the conversation is cut into (user, assistant) pairs; the system text joins the first user part;
* each template piece is tokenised ON ITS OWN with ``tokenizer.encode(piece, add_special_tokens=False)``
  (system, each user turn, each assistant turn separately, so token merges never cross a turn);
  BOS / EOS are inserted as ids where the template says so;
* labels: -100 over every user part (system included), the token ids over every assistant part,
  which INCLUDES the assistant header of the template (e.g. ``<|im_start|>assistant\\n``) and its
  end marker;
* then the same blocking / packing as ``text_only`` data (no truncation at ``model_max_length``
  before packing, unlike ``text_only``).

:func:`encode_conversation` implements this for the templates in :data:`LOCAL_TEMPLATES` (our code,
checked token for token against LMFlow's in tests/train/test_sft.py); any other LMFlow name is
accepted by the recipe schema but only with ``launch.engine: lmflow``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["LMFLOW_TEMPLATES", "LOCAL_TEMPLATES", "encode_conversation"]

IGNORE_INDEX = -100

# The keys of LMFlow's PRESET_TEMPLATES at the pinned commit (with transformers >= 4.43, which adds
# the jinja-based ones: deepseek_r1*, deepseek_v3, gemma3, qwen2_5*, qwen3, qwen_qwq). Checked
# against the real LMFlow by tests/train/test_sft.py. "tokenizer"/"hf_auto" (the tokenizer's own
# jinja template) are left out on purpose: they need {% generation %} markers most templates lack.
LMFLOW_TEMPLATES = frozenset(
    {
        "chatglm3",
        "chatml",
        "deepseek",
        "deepseek_v2",
        "disable",
        "empty",
        "empty_no_special_tokens",
        "gemma",
        "hymba",
        "internlm2",
        "llama2",
        "llama3",
        "llama3_for_tool",
        "phi3",
        "qwen2",
        "qwen2_for_tool",
        "yi",
        "yi1_5",
        "zephyr",
        "deepseek_r1",
        "deepseek_r1_distill",
        "deepseek_v3",
        "qwen2_5",
        "qwen2_5_1m",
        "qwen2_5_math",
        "qwen_qwq",
        "qwen3",
        "gemma3",
    }
)


def _chatml(tag: str) -> Callable[[str], str]:
    return lambda text: f"<|im_start|>{tag}\n{text}<|im_end|>\n"


def _llama3(tag: str) -> Callable[[str], str]:
    return lambda text: f"<|start_header_id|>{tag}<|end_header_id|>\n\n{text}<|eot_id|>"


def _pairs(conv: dict) -> list[tuple[str, str]]:
    m = conv["messages"]
    return [(m[i]["content"], m[i + 1]["content"]) for i in range(0, len(m), 2)]


def _headed(fmt: Callable[[str], Callable[[str], str]], bos: bool):
    """chatml-like templates: ``[BOS] [system] user assistant user assistant ...``, each piece
    encoded separately."""

    def encode(conv: dict, tok) -> list[tuple[list[int], list[int]]]:
        enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
        system = conv.get("system") or ""
        out = []
        for i, (user, answer) in enumerate(_pairs(conv)):
            prompt = enc(fmt("user")(user))
            if i == 0:
                prompt = (
                    ([tok.bos_token_id] if bos else [])
                    + (enc(fmt("system")(system)) if system else [])
                    + prompt
                )
            out.append((prompt, enc(fmt("assistant")(answer))))
        return out

    return encode


def _llama2(conv: dict, tok) -> list[tuple[list[int], list[int]]]:
    """``BOS [INST] <<SYS>>..<</SYS>> user [/INST] answer EOS`` per pair; the system block is text
    inside the first user turn."""
    system = conv.get("system") or ""
    sys_text = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else ""
    out = []
    for i, (user, answer) in enumerate(_pairs(conv)):
        text = (sys_text if i == 0 else "") + user
        prompt = [tok.bos_token_id] + tok.encode(f"[INST] {text} [/INST]", add_special_tokens=False)
        out.append((prompt, tok.encode(answer, add_special_tokens=False) + [tok.eos_token_id]))
    return out


_ENCODERS = {
    "chatml": _headed(_chatml, bos=False),
    "yi": _headed(_chatml, bos=False),  # LMFlow maps "yi" to its chatml template
    "llama3": _headed(_llama3, bos=True),
    "llama2": _llama2,
}
LOCAL_TEMPLATES = frozenset(_ENCODERS)


def encode_conversation(
    conv: dict, tokenizer, template: str, *, train_on_prompt: bool = False
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one checked conversation (``astrollama.lmflow_data.check_conversation``),
    as LMFlow's ``conversation_tokenize_function`` builds them with this template."""
    if template not in _ENCODERS:
        raise ValueError(
            f"conversation template {template!r}: the local engine implements "
            f"{', '.join(sorted(LOCAL_TEMPLATES))}; train with LMFlow for the others"
        )
    ids: list[int] = []
    labels: list[int] = []
    for prompt, answer in _ENCODERS[template](conv, tokenizer):
        ids += prompt + answer
        labels += (prompt if train_on_prompt else [IGNORE_INDEX] * len(prompt)) + answer
    return ids, labels
