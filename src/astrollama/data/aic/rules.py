"""The rules both AIC routes share: the result type :class:`AIC`, heading normalisation and
classification, the choice of abstract/introduction/conclusion headings, Nougat marker removal.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from astrollama.errors import InputError

SECTIONS = ("abstract", "introduction", "conclusion")
_MISSING_PAGE = re.compile(r"\[MISSING_PAGE_(?:FAIL|EMPTY|POST)(?::\s*\d+)?\]")
_NOUGAT_BLOCK = re.compile(r"^\+\+\+ ==(?:WARNING|ERROR):[^\n]*==\n.*?^\+\+\+[ \t]*$", re.M | re.S)
_NUMBER = re.compile(
    r"^(?P<num>\d+(?:\.\d+)*\.?|[IVXLC]+\.(?:\d+\.?)*|[IVXLC]+(?=\s)|[A-Z](?:\.\d+)*\.?(?=\s))"
    r"\s+(?P<title>\S.*)$"
)
_CONCLUSION = re.compile(r"\bconclu(?:sion|sions|ding)\b")
_SUMMARY_LIKE = {
    "summary",
    "summary and discussion",
    "discussion and summary",
    "summary and outlook",
    "summary and future work",
    "summary and prospects",
    "final remarks",
    "closing remarks",
}
_BACKMATTER = {
    "references": ("references", "bibliography", "literature cited", "reference"),
    "acknowledgments": ("acknowledgments", "acknowledgements", "acknowledgment", "acknowledgement"),
    "appendix": ("appendix", "appendices", "supplementary material", "online material"),
    "backmatter": (
        "data availability",
        "data availability statement",
        "author contributions",
        "software",
        "facilities",
        "conflict of interest",
        "funding",
    ),
    "keywords": ("key words", "keywords", "subject headings", "unified astronomy thesaurus concepts"),
}


class AICError(InputError):
    """The paper has no usable Introduction nor Conclusion."""


@dataclass
class AIC:
    """The extracted sections of one paper (empty string = not found) and what is missing."""

    abstract: str = ""
    introduction: str = ""
    conclusion: str = ""
    conclusion_heading: str = ""
    abstract_source: str = ""  # "text" | "metadata" | ""
    source: str = ""  # "mmd" | "latex"
    missing: list[str] = field(default_factory=list)
    conclusion_rule: str = ""  # "name" (a conclusion-like heading) | "last section" (LaTeX fallback)
    unresolved_citations: int = 0  # LaTeX: citation keys found in no .bbl/.bib/inline bibliography
    bare_references: int = 0  # LaTeX: \ref-like commands left without a number

    def text(self, title: str | None = None) -> str:
        """The training document: title, then each found section under a plain heading line."""
        parts: list[str] = [title.strip()] if title and title.strip() else []
        if self.abstract:
            parts.append("Abstract\n" + self.abstract)
        if self.introduction:
            parts.append("Introduction\n" + self.introduction)
        if self.conclusion:
            parts.append((self.conclusion_heading or "Conclusions") + "\n" + self.conclusion)
        return "\n\n".join(parts).strip() + "\n"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Heading:
    index: int  # line index
    title: str  # heading text without numbering / markup
    norm: str
    hashes: int  # markdown level; 0 for a bold pseudo-heading / LaTeX
    depth: int  # numbering depth ("1" -> 1, "1.2" -> 2, "IV." -> 1); 0 when unnumbered
    kind: str | None
    rest: str = ""  # text after a bold pseudo-heading on the same line


def normalise_heading(text: str) -> tuple[str, int]:
    """(normalised name without numbering, numbering depth) of a heading text."""
    t = re.sub(r"[*_`]+", "", text).strip()
    t = re.sub(r"\\[a-zA-Z]+\s*", "", t)  # stray LaTeX commands in OCR'd headings
    depth = 0
    m = _NUMBER.match(t)
    if m:
        num = m.group("num").rstrip(".")
        title = m.group("title")
        # "A Derivation" (appendix letter) vs "A new method" (an article): both top-level; a
        # roman numeral / letter only counts as numbering when a title follows.
        depth = 1 if re.fullmatch(r"[IVXLC]+|[A-Z]", num) else num.count(".") + 1
        t = title
    t = t.replace("&", " and ").lower()
    t = re.sub(r"[^a-z0-9 ]+", " ", t)
    t = re.sub(r"\s+", " ", t).strip()
    return t, depth


def classify_heading(norm: str) -> str | None:
    """Which section a normalised heading names, or None."""
    if not norm:
        return None
    if norm == "abstract" or norm.startswith("abstract "):
        return "abstract"
    if norm == "intro" or norm.startswith("introduction"):
        return "introduction"
    if _CONCLUSION.search(norm) or norm in _SUMMARY_LIKE:
        return "conclusion"
    for kind, names in _BACKMATTER.items():
        if norm in names or any(norm.startswith(n + " ") for n in names if kind == "appendix"):
            return kind
    return None


def clean_nougat_markers(text: str) -> str:
    """Remove Nougat's missing-page markers and repetition/error blocks."""
    text = _NOUGAT_BLOCK.sub("", text)
    return _MISSING_PAGE.sub("", text)


def _display(heading: str) -> str:
    t = re.sub(r"[*_`]+", "", heading).strip()
    m = _NUMBER.match(t)
    if m:
        t = m.group("title")
    t = t.strip().rstrip(".:")
    return t[:1].upper() + t[1:].lower() if t.isupper() else t


def _pick(heads: list[_Heading]) -> tuple[int | None, int | None, int | None]:
    """Indices (into ``heads``) of the abstract, introduction and conclusion headings."""
    abstract = next((k for k, h in enumerate(heads) if h.kind == "abstract"), None)
    intro = next((k for k, h in enumerate(heads) if h.kind == "introduction"), None)
    after = intro + 1 if intro is not None else (abstract + 1 if abstract is not None else 0)
    # the conclusion must come before the back matter that follows the body
    cands = [k for k in range(after, len(heads)) if heads[k].kind == "conclusion"]
    top = [k for k in cands if heads[k].depth <= 1]  # "4.3 Conclusions from the fits" is no conclusion
    cands = top or cands
    strong = [k for k in cands if _CONCLUSION.search(heads[k].norm)]
    concl = strong[-1] if strong else (cands[-1] if cands else None)
    return abstract, intro, concl


# last body sections that never stand in for a conclusion (reference lists, not findings)
_NOT_CONCLUDING = {"notation", "notations", "nomenclature", "glossary", "abbreviations", "list of symbols"}


def _last_body_section(heads: list[_Heading], intro: int | None, body: list[int]) -> int | None:
    """The conclusion when no heading is conclusion-like (LaTeX route): the last section of the
    body, where ``body`` lists the indices of the numbered top-level sections before the appendix,
    acknowledgments and references. It must come after the introduction with at least one section
    between them, and not be back matter or a notation list (those are skipped). E.g. "1
    Introduction, 2 Data, 3 Results, 4 Discussion" -> "Discussion"; "1 Introduction, 2 Method" ->
    none (the only body section is no conclusion)."""
    if intro is None:
        return None
    for k in reversed(body):
        if k <= intro + 1:
            return None
        h = heads[k]
        if h.kind is None and h.norm and h.norm not in _NOT_CONCLUDING:
            return k
    return None


def _finish(aic: AIC, metadata_abstract: str | None, where: str) -> AIC:
    if not aic.abstract and metadata_abstract and metadata_abstract.strip():
        aic.abstract = " ".join(metadata_abstract.split())
        aic.abstract_source = "metadata"
    elif aic.abstract:
        aic.abstract_source = "text"
    aic.missing = [s for s in SECTIONS if not getattr(aic, s)]
    if not aic.introduction and not aic.conclusion:
        raise AICError(f"{where}: neither an Introduction nor a Conclusion section was found")
    return aic
