"""MCQ prompts: template files, the letter tokens that follow a prompt, answer parsing.

Templates are plain text files under ``eval/prompts/`` (the shipped ones by name in ``PROMPTS``:
``astromlab``, the default, follows AstroMLab's scoring structure: question and options first,
then the instructions and output format, then a ``Response:`` line opening the JSON answer;
``ours`` puts the instructions first; ``plain`` is Question / A.-D. / Answer:) with ``string.Template`` placeholders
``$question $A $B $C $D`` (write a literal dollar as ``$$``; JSON braces need no escaping). One
final newline of the file is dropped, so a token-method template ends exactly where the letter
goes (``{"ANSWER": "``).

Letter tokens are derived per tokenizer *as the letter follows the prompt*: encode ``prompt +
letter``, check that the prompt's own tokens are unchanged and exactly one token was added, and
take that token. Trailing whitespace of the prompt moves into the continuation first (as
lm-evaluation-harness does), so a prompt ending in ``"Answer: "`` is scored on ``" A"``. This
gives ``A`` (not ``▁A``) after a quote with SentencePiece LLaMA-2 tokenizers, and ``A`` (not
``ĠA``) with byte-level BPE (LLaMA-3, SmolLM2) tokenizers. That is ``letter_token="prompt"``.

``letter_token="reference"`` is the rule of public re-implementations of AstroMLab's scorer: the
letter encoded on its own, ``tokenizer.encode(letter, add_special_tokens=False)[-1]``, read after
the prompt tokenized as it is. With SentencePiece LLaMA-2 tokenizers that is the word-start piece
``▁A``; with byte-level BPE it is ``A`` (the same id as the ``prompt`` rule after a quote).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from astrollama.benchmark import LETTERS, MCQInputError, Question
from astrollama.paths import EVAL_PROMPTS_DIR

PROMPTS_DIR = EVAL_PROMPTS_DIR
PROMPTS: dict[tuple[str, str], Path] = {  # (method, prompt name) -> template; docs/eval-mcq.md
    ("token", "astromlab"): PROMPTS_DIR / "astromlab_token.txt",  # AstroMLab's structure (default)
    ("token", "ours"): PROMPTS_DIR / "ours_token.txt",  # instructions first (long shared prefix)
    ("token", "plain"): PROMPTS_DIR / "plain_token.txt",  # Question / A.-D. / Answer:
    ("instruct", "astromlab"): PROMPTS_DIR / "astromlab_instruct.txt",
}
PROMPT_NAMES = ("astromlab", "ours", "plain")
PLACEHOLDERS = frozenset({"question", *LETTERS})
# how the four letter ids are chosen (docs/eval-mcq.md, "Letter tokens")
LETTER_TOKEN_RULES = ("prompt", "reference")
LETTER_TOKEN_RULE_TEXT = {
    "prompt": "the letter's token as it follows the prompt: encode(prompt + letter) adds exactly one "
    "token (trailing whitespace of the prompt moved into the continuation)",
    "reference": "the letter encoded alone, tokenizer.encode(letter, add_special_tokens=False)[-1], "
    "after the prompt tokenized as it is (public re-implementations of AstroMLab's scorer)",
}


@dataclass(frozen=True)
class PromptTemplate:
    path: Path
    text: str
    sha256: str

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PromptTemplate:
        p = Path(path)
        if not p.is_file():
            raise MCQInputError(f"{p}: prompt template not found")
        from astrollama.untrusted import decode, read_bytes

        raw = read_bytes(p, "config", error=MCQInputError)  # regular, bounded
        text = decode(raw, p, error=MCQInputError)
        if text.endswith("\n"):
            text = text[:-1]
        tpl = string.Template(text)
        if not tpl.is_valid():
            raise MCQInputError(f"{p}: invalid placeholder (write a literal $ as $$)")
        names = set(tpl.get_identifiers())
        if names - PLACEHOLDERS:
            raise MCQInputError(
                f"{p}: unknown placeholders {sorted(names - PLACEHOLDERS)}; allowed: $question $A $B $C $D"
            )
        if names != PLACEHOLDERS:
            raise MCQInputError(f"{p}: missing placeholders {sorted(PLACEHOLDERS - names)}")
        return cls(path=p, text=text, sha256=hashlib.sha256(raw).hexdigest())

    @classmethod
    def default(cls, method: str, prompt: str = "astromlab") -> PromptTemplate:
        """The shipped template of ``prompt`` (one of ``PROMPT_NAMES``) for ``method``."""
        if (method, prompt) not in PROMPTS:
            names = [n for m, n in PROMPTS if m == method]
            raise MCQInputError(f"prompt {prompt!r}: method {method!r} has the prompts {names}")
        return cls.load(PROMPTS[(method, prompt)])

    def render(self, q: Question) -> str:
        return string.Template(self.text).substitute(question=q.question, **q.options)


def render_doc(doc: dict, template: PromptTemplate | str | os.PathLike[str] | None = None) -> str:
    """Render a raw row (``question``, ``A``-``D``) with the token template: lm-eval's doc_to_text."""
    if isinstance(template, PromptTemplate):
        tpl = template
    else:
        tpl = PromptTemplate.load(template) if template else PromptTemplate.default("token")
    q = Question(
        id="", question=str(doc["question"]).strip(), options={k: str(doc[k]).strip() for k in LETTERS}
    )
    return tpl.render(q)


# ------------------------------------------------------------------------------------------------
# letter tokens


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt's tokens (trailing whitespace removed) and the ids of the letters that follow it."""

    ids: list[int]
    letter_ids: tuple[int, int, int, int]


def reference_letter_ids(tokenizer) -> tuple[int, int, int, int]:
    """The ``reference`` rule: each letter encoded alone, its last token
    (``tokenizer.encode(letter, add_special_tokens=False)[-1]``)."""
    name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    ids = []
    for L in LETTERS:
        enc = tokenizer.encode(L, add_special_tokens=False)
        if not enc:
            raise MCQInputError(f"tokenizer {name}: the letter {L!r} encodes to no tokens")
        ids.append(enc[-1])
    if len(set(ids)) != 4:
        raise MCQInputError(f"tokenizer {name}: the letters share a token id {ids}")
    return (ids[0], ids[1], ids[2], ids[3])


def encode_prompts(
    tokenizer, prompts: Sequence[str], qids: Sequence[str], *, letter_token: str = "prompt"
) -> list[EncodedPrompt]:
    """Tokenise prompts (the tokenizer's default special tokens, e.g. LLaMA's BOS) and derive the
    four letter ids by ``letter_token`` (``LETTER_TOKEN_RULES``).

    ``prompt``: per prompt, the single token of each letter as it follows that prompt; raises
    ``MCQInputError`` when a letter is not exactly one token after the prompt, or changes the
    prompt's own tokens (the template must end where a lone letter can follow).
    ``reference``: the prompt tokenized as it is, and the ids of :func:`reference_letter_ids`.
    """
    if letter_token not in LETTER_TOKEN_RULES:
        raise MCQInputError(f"letter_token {letter_token!r}: use one of {LETTER_TOKEN_RULES}")
    if letter_token == "reference":
        ref = reference_letter_ids(tokenizer)
        out_ref = []
        for ids, qid in zip(tokenizer(list(prompts)).input_ids, qids, strict=True):
            if not ids:
                raise MCQInputError(f"question {qid!r}: the prompt encodes to no tokens")
            out_ref.append(EncodedPrompt(ids=list(ids), letter_ids=ref))
        return out_ref
    contexts, conts = [], []
    for p in prompts:
        ctx = p.rstrip()
        contexts.append(ctx)
        conts.append(p[len(ctx) :])
    ctx_ids = tokenizer(list(contexts)).input_ids
    with_letters = tokenizer(
        [c + w + L for c, w in zip(contexts, conts, strict=True) for L in LETTERS]
    ).input_ids
    out: list[EncodedPrompt] = []
    name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    for i, (ids, qid) in enumerate(zip(ctx_ids, qids, strict=True)):
        if not ids:
            raise MCQInputError(f"question {qid!r}: the prompt encodes to no tokens")
        letter_ids = []
        for j, L in enumerate(LETTERS):
            full = with_letters[4 * i + j]
            if full[: len(ids)] != ids or len(full) != len(ids) + 1:
                added = (
                    tokenizer.convert_ids_to_tokens(full[len(ids) - 1 :]) if len(full) >= len(ids) else full
                )
                raise MCQInputError(
                    f"tokenizer {name}: after the prompt of question {qid!r} (ending {contexts[i][-20:]!r}), "
                    f"the answer {conts[i] + L!r} is not one new token (got {added}); end the template "
                    'where a lone letter follows, e.g. with \'{"ANSWER": "\''
                )
            letter_ids.append(full[-1])
        if len(set(letter_ids)) != 4:
            raise MCQInputError(f"tokenizer {name}: question {qid!r}: letters share a token id {letter_ids}")
        out.append(EncodedPrompt(ids=list(ids), letter_ids=tuple(letter_ids)))
    return out


# ------------------------------------------------------------------------------------------------
# answer parsing (instruct method)

_JSON_OBJ = re.compile(r"\{[^{}]*\}", re.S)
_KEY_RE = re.compile(r"""["']?answer["']?\s*[:=]\s*["'(\[]?\s*((?-i:[ABCD]))(?![A-Za-z0-9])""", re.I)
_PHRASE_RE = re.compile(
    r"(?:answer|option|choice)\s+(?:is|would be|:)\s*(?:option\s+)?[\"'(\[]?((?-i:[ABCD]))(?![A-Za-z0-9])",
    re.I,
)
_LONE_RE = re.compile(r"^\s*[\"'(\[*]*([ABCD])[\"')\]*.:]*\s*$")


def _letter_of(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    v = value.strip()
    if len(v) == 1 and v.upper() in LETTERS:
        return v.upper()
    m = re.match(r"^[\"'(\[]?([ABCD])(?![A-Za-z0-9])", v)
    return m.group(1) if m else None


def parse_answer(text: str) -> tuple[str | None, str]:
    """The answer letter in a generated reply and how it was found.

    Tried in order: a JSON object with an ``ANSWER`` key (any case) -> ``"json"``; an
    ``"ANSWER": "X"``-like key/value anywhere (truncated JSON) -> ``"key"``; a phrase such as
    "the answer is C" -> ``"phrase"``; a reply (or first line) that is a lone letter -> ``"letter"``.
    Otherwise ``(None, "unparsed")``.
    """
    for m in _JSON_OBJ.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k.strip().upper() == "ANSWER" and (letter := _letter_of(v)):
                    return letter, "json"
    if m := _KEY_RE.search(text):
        return m.group(1).upper(), "key"
    if m := _PHRASE_RE.search(text):
        return m.group(1).upper(), "phrase"
    stripped = text.strip()
    for candidate in (stripped, stripped.splitlines()[0] if stripped else ""):
        if m := _LONE_RE.match(candidate):
            return m.group(1).upper(), "letter"
    return None, "unparsed"
