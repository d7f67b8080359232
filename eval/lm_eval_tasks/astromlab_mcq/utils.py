"""doc_to_text / doc_to_target for the astromlab_mcq lm-eval task (thin: the prompt is ours)."""

from __future__ import annotations

import functools
from pathlib import Path

from astrollama.evaluation.mcq.prompts import PromptTemplate, render_doc

TEMPLATE = Path(__file__).resolve().parents[2] / "prompts" / "astromlab_token.txt"


@functools.lru_cache(maxsize=1)
def _template() -> PromptTemplate:
    return PromptTemplate.load(TEMPLATE)


def doc_to_text(doc: dict) -> str:
    """The default token-method prompt, ending with "ANSWER": " so that the next token is the letter."""
    return render_doc(doc, _template())


def doc_to_target(doc: dict) -> int:
    """Index (0-3) of the key letter (field ``correct`` or ``answer``); 0 for an unkeyed row."""
    letter = doc.get("correct") or doc.get("answer")
    return "ABCD".index(str(letter).strip().upper()) if letter else 0
