"""AIC from Nougat markdown (``.mmd``): headings from ``#`` lines, bold pseudo-headings and bare
numbered lines; sections cut with the shared rules (:mod:`astrollama.data.aic.rules`).
"""

from __future__ import annotations

import re

from astrollama.data.aic.rules import (
    _NUMBER,
    AIC,
    _display,
    _finish,
    _Heading,
    _pick,
    classify_heading,
    clean_nougat_markers,
    normalise_heading,
)

_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_BOLD_HEADING = re.compile(r"^\*\*(?P<head>[^*\n]{1,100}?)\*\*(?P<rest>.*)$")


def md_headings(lines: list[str]) -> list[_Heading]:
    out: list[_Heading] = []
    for i, line in enumerate(lines):
        s = line.strip()
        m = _MD_HEADING.match(s)
        if m:
            norm, depth = normalise_heading(m.group(2))
            out.append(
                _Heading(i, _display(m.group(2)), norm, len(m.group(1)), depth, classify_heading(norm))
            )
            continue
        b = _BOLD_HEADING.match(s)
        if b:
            head = b.group("head").strip().rstrip(".:")
            rest = b.group("rest").strip().lstrip(".:\u2014-").strip()
            norm, depth = normalise_heading(head)
            kind = classify_heading(norm)
            # "**Abstract.** We present..." is a heading with inline text; an arbitrary bold
            # phrase followed by text is just emphasis.
            if (rest and kind is None) or len(norm.split()) > 10:
                continue
            out.append(_Heading(i, _display(head), norm, 0, depth, kind, rest))
            continue
        # A bare "1 Introduction" / "5. CONCLUSIONS" line (no markup) for the known sections.
        if 0 < len(s) <= 60 and _NUMBER.match(s) and not s.endswith((".", ",", ";")):
            norm, depth = normalise_heading(s)
            kind = classify_heading(norm)
            # short, like a heading: "3 conclusions can be drawn" is a sentence, not a heading
            if (
                kind in ("introduction", "conclusion", "references", "acknowledgments", "appendix")
                and len(norm.split()) <= 4
            ):
                out.append(_Heading(i, _display(s), norm, 0, depth, kind))
    return out


def _ends(start: _Heading, h: _Heading) -> bool:
    """Does heading ``h`` (after ``start``) end the section opened by ``start``?"""
    if start.kind == "abstract":
        return True
    if start.depth and h.depth > start.depth:  # a numbered subsection ("1.2 Summary of ...")
        return False
    if h.kind is not None and h.kind != start.kind:
        return True
    if start.depth and h.depth:
        return h.depth <= start.depth
    if start.depth:  # numbered section, unnumbered heading
        return start.hashes > 0 and 0 < h.hashes <= start.hashes
    if h.depth == 1:
        return True
    if start.hashes == 0:  # a bold pseudo-heading ends at any markdown heading
        return h.hashes > 0
    return 0 < h.hashes <= start.hashes


def _section_body(lines: list[str], heads: list[_Heading], k: int) -> str:
    start = heads[k]
    end = len(lines)
    for h in heads[k + 1 :]:
        if _ends(start, h):
            end = h.index
            break
    body = [start.rest] if start.rest else []
    for line in lines[start.index + 1 : end]:
        m = _MD_HEADING.match(line.strip())
        body.append(m.group(2) if m else line)  # subsection headings kept as plain lines
    return _tidy("\n".join(body))


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def extract_aic_markdown(text: str, *, metadata_abstract: str | None = None, where: str = "<mmd>") -> AIC:
    """Extract the AIC sections from Nougat ``.mmd`` markdown."""
    lines = clean_nougat_markers(text).splitlines()
    heads = md_headings(lines)
    a, i, c = _pick(heads)
    aic = AIC(source="mmd")
    if a is not None:
        aic.abstract = _section_body(lines, heads, a)
    if i is not None:
        aic.introduction = _section_body(lines, heads, i)
    if c is not None:
        aic.conclusion = _section_body(lines, heads, c)
        aic.conclusion_heading = heads[c].title
    return _finish(aic, metadata_abstract, where)
