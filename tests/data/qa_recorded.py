"""Recorded model outputs for the Q&A stage: a backend that answers each paper with a ``Q:``/``A:``
text written from the paper's own AIC words, so the pairs the filters keep and reject are known.

Shared by tests/data/test_qa.py and tests/data/resume_driver.py (``qa-recorded`` mode, run in a
subprocess by tests/data/test_qa_resume.py), which must build the same outputs byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from astrollama.data.manifest import Manifest

# the kill/resume test's plan, cycled over the papers: kept pairs per paper (some none at all) and
# ungrounded pairs per paper, on top of the one not_standalone pair every paper gets
MIXED_KEPT = (2, 1, 0, 3)
MIXED_UNGROUNDED = (0, 1, 1)


def paper_output(text: str, kept: int = 1, ungrounded: int = 0) -> str:
    """A model output for a paper whose AIC text is ``text``: ``kept`` pairs that pass every filter
    (5-word questions and 10-word answers cut from the text), one question that points at the paper
    (``not_standalone``) and ``ungrounded`` answers made of words the text does not have."""
    words = [w.strip(".").lower() for w in text.split()[4:]]
    out = ["Here you go."]
    for k in range(kept):
        w = words[15 * k : 15 * k + 15]
        out += [f"Q: Which {' '.join(w[:5])} comes first?", f"A: {' '.join(w[5:15])}."]
    out += [f"Q: What did we find about {words[0]}?", f"A: {' '.join(words[20:30])}."]
    for k in range(ungrounded):
        out += [
            f"Q: Which {' '.join(words[5 * k : 5 * k + 5])} follows next?",
            "A: Quasars dominate the ultraviolet background everywhere, according to recent simulations.",
        ]
    return "\n".join(out) + "\n"


def recorded_outputs(
    root: Path, kept: Sequence[int] = (1,), ungrounded: Sequence[int] = (0,)
) -> dict[str, str]:
    """``paper_output`` of every paper with an ``ok`` AIC record under ``root``, the i-th (in id
    order) with ``kept[i % len(kept)]`` kept and ``ungrounded[i % len(ungrounded)]`` ungrounded pairs."""
    m = Manifest(root)
    aic = sorted((pid, r) for pid, r in m.status("aic").items() if r.status == "ok")
    return {
        pid: paper_output(
            json.loads(m.resolve(r.outputs["aic"]).read_text())["text"],
            kept[i % len(kept)],
            ungrounded[i % len(ungrounded)],
        )
        for i, (pid, r) in enumerate(aic)
    }


class RecordedOutputs:
    """The backend interface with the tiny model's real tokenizer, answering each paper with a model
    output recorded here (written from the paper's own words): the parse -> filter -> file -> manifest
    -> sft-convert path, checked with outputs whose right filtering is known."""

    def __init__(self, tiny_model: Path, outputs: dict[str, str]) -> None:
        from transformers import AutoTokenizer

        from astrollama.data.llm import _TokenizerMixin

        self.tok = _TokenizerMixin()
        self.tok.tokenizer = AutoTokenizer.from_pretrained(tiny_model)
        self.encode, self.decode, self.prompt_length = (
            self.tok.encode,
            self.tok.decode,
            self.tok.prompt_length,
        )
        self.model_id, self.max_model_len, self.outputs = "recorded", 1024, outputs

    def generate(self, conversations, max_tokens, seeds):
        from astrollama.data.llm import Generation

        out = []
        for conv in conversations:
            pid = next(p for p in self.outputs if f"Title: Paper {p}" in conv[1]["content"])
            out.append(Generation(self.outputs[pid], 50, "stop"))
        return out
