"""The ``pdf-text`` backend's converter: a PDF's embedded text layer -> Nougat-style markdown.

NOT OCR and not Nougat quality: it reads the characters PDFium finds in the PDF (no equations,
no tables as tables, figure labels that are text in the PDF come out as text) and rebuilds the
structure from the layout. It is the CPU fallback for born-digital PDFs and the offline demo.

Per character PDFium gives the text, its loose box, the font size and the font name (bold,
italic and small caps are read from the name: TeX-made PDFs fill weights and flags wrongly).
Lines are PDFium's lines, re-split where it joined two around a removed hyphen and re-joined where
it cut one at a superscript; each gets its dominant size, bold/italic/capitals/small-caps style
and a leading bold run. From the whole document:

* body size = the size of most letters in prose before the references (tables, footnotes and
  reference lists do not move it);
* page furniture = lines on a page's two outermost baselines at top and bottom that carry the
  page's number or recur on other pages; digit-only lines elsewhere are text and stay;
* line numbers (``lineno`` referee copies) = integers set apart at the start of lines, or at the
  end right of all other text, aligned at one x, six or more, increasing down the pages;
* headings = known section names; numbered lines (``1 INTRODUCTION`` MNRAS, ``1. Introduction``
  A&A, AASTeX small caps, ``2.1.`` italics) set apart by style, shared by another numbered line
  and followed by prose; other bold/larger lines only in papers without numbered sections; a
  bold lead ending with a period is a run-in heading (``**Acknowledgements.** We thank``);
* paragraphs break on a larger pitch, an indented first line or a short last line;
* captions (``Fig. 1.``, ``FIG. 2.--``, ``Table 3``) become ``Figure 1: ...`` / ``Table 3: ...``
  paragraphs, as Nougat writes captions;
* soft hyphens (PDFium's ``\\x02``, U+00AD) go and the word is rejoined, line-end hyphens join
  without a space, control characters are dropped, ligatures are spelled out.

docs/data-ocr.md has the rules with the layouts that motivate them, and the measured figures.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

__all__ = ["Line", "layout_markdown", "page_status", "text_layer_pages"]


@dataclasses.dataclass(frozen=True)
class Line:
    """One text line of a page (PDFium's line), in page points (y grows upwards).

    ``size``: the font size of most of its characters; ``bold``: most letters in a bold font;
    ``caps``: its letters are all capitals; ``smallcaps``: capitals in two sizes (or a small-caps
    font); ``lead``: a leading bold run ending with ``.`` or ``:`` followed by non-bold text
    (a run-in heading); ``italic``: most letters in an italic font."""

    text: str
    size: float
    bold: bool = False
    x0: float = 0.0
    x1: float = 0.0
    y: float = 0.0
    page: int = 0
    caps: bool = False
    smallcaps: bool = False
    lead: str = ""
    words: tuple[tuple[str, float, float], ...] = ()  # (word, x0, x1)
    italic: bool = False


# ============================================================================ characters -> lines

_BOLD_FONT = re.compile(r"bold|medi|black|heavy|demi|semibold|cmbx|-bd\b|\bbd\b|bx\d", re.I)
_IT_FONT = re.compile(r"ital|obli|cmti|cmsl|-i$|[a-z]it$", re.I)
_SC_FONT = re.compile(r"csc|smallcap|caps|-sc\b|sc\d*$", re.I)
_LIGATURES = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
    }
)
_SOFT_HYPHEN = "\x02\xad"


@dataclasses.dataclass(slots=True)
class _Char:
    ch: str
    x0: float
    x1: float
    y: float
    size: float
    font: str
    bold: bool
    smallcap: bool
    italic: bool = False


def _page_chars(textpage: Any) -> list[list[_Char]]:
    """PDFium's characters of one page, grouped into its lines (it inserts CR LF between).

    Boxes are PDFium's loose boxes (from the font's ascent and descent): ``y`` is the same for
    every character of one font on a line."""
    import pypdfium2.raw as pdfium_c

    raw = textpage.raw
    get_unicode, get_size = pdfium_c.FPDFText_GetUnicode, pdfium_c.FPDFText_GetFontSize
    get_box, get_font = pdfium_c.FPDFText_GetLooseCharBox, pdfium_c.FPDFText_GetFontInfo
    rect, buf, flags = pdfium_c.FS_RECTF(), ctypes.create_string_buffer(128), ctypes.c_int()
    fonts: dict[bytes, tuple[str, bool, bool, bool]] = {}
    lines: list[list[_Char]] = []
    cur: list[_Char] = []
    last: _Char | None = None  # the last non-space character of ``cur``
    for i in range(pdfium_c.FPDFText_CountChars(raw)):
        ch = chr(get_unicode(raw, i))
        if ch in "\r\n":
            if cur:
                lines.append(cur)
                cur, last = [], None
            continue
        if ch.isspace():  # real or generated (PDFium inserts spaces between words it sees apart)
            if last is not None and cur[-1].ch != " ":
                cur.append(_Char(" ", last.x1, last.x1, last.y, 0.0, "", False, False))
            continue
        get_font(raw, i, buf, 128, ctypes.byref(flags))
        key = buf.value
        if key not in fonts:
            name = key.decode("latin-1", "replace")
            fonts[key] = (
                name,
                bool(_BOLD_FONT.search(name)),
                bool(_SC_FONT.search(name)),
                bool(_IT_FONT.search(name)),
            )
        get_box(raw, i, rect)
        c = _Char(ch, rect.left, rect.right, round(rect.bottom, 1), round(get_size(raw, i), 1), *fonts[key])
        if last is not None and last.y - c.y > 0.5 * c.size and c.x0 < last.x0:
            lines.append(cur)  # PDFium joins the lines around a hyphen it removed: split them again
            cur = []
        cur.append(c)
        last = c
    if cur:
        lines.append(cur)
    return _merge_fragments(lines)


def _merge_fragments(lines: list[list[_Char]]) -> list[list[_Char]]:
    """Put back together the pieces PDFium splits one printed line into (around superscripts,
    font changes): same baseline, the next piece starting where the previous one ends. A
    separate integer (a line number in the margin) stays apart."""
    out: list[list[_Char]] = []
    for chars in lines:
        real = [c for c in chars if c.ch != " "]
        if out and real:
            a, b = next(c for c in reversed(out[-1]) if c.ch != " "), real[0]
            size = max(a.size, b.size)
            gap = b.x0 - a.x1
            if abs(a.y - b.y) < 0.6 * size and -1.0 <= gap < 1.2 * size:
                texts = ("".join(c.ch for c in out[-1]).strip(), "".join(c.ch for c in chars).strip())
                if not (gap > 0.3 * size and any(_INT.match(t) for t in texts)):
                    if gap > 0.15 * size and out[-1][-1].ch != " ":
                        out[-1].append(_Char(" ", a.x1, a.x1, a.y, 0.0, "", False, False))
                    out[-1].extend(chars)
                    continue
        out.append(chars)
    return out


def _clean(text: str) -> str:
    """Ligatures spelled out; control/format characters (but the soft-hyphen marks) dropped."""
    text = text.translate(_LIGATURES)
    if text.isprintable():
        return text
    return "".join(
        c
        for c in text
        if c in _SOFT_HYPHEN
        or c == " "
        or unicodedata.category(c) not in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp")
    )


def _make_line(chars: list[_Char], page: int) -> Line | None:
    while chars and chars[-1].ch == " ":
        chars.pop()
    real = [c for c in chars if c.ch != " "]
    if not real:
        return None
    sizes = Counter(c.size for c in real)
    size = sizes.most_common(1)[0][0]
    letters = [c for c in real if c.ch.isalpha()]
    bold = bool(letters) and sum(c.bold for c in letters) > 0.6 * len(letters)
    italic = bool(letters) and sum(c.italic for c in letters) > 0.6 * len(letters)
    caps = len(letters) >= 3 and sum(c.ch.isupper() for c in letters) >= 0.65 * len(letters)
    cap_sizes = {c.size for c in letters if c.ch.isupper()}
    smallcaps = (bool(letters) and sum(c.smallcap for c in letters) > 0.6 * len(letters)) or (
        caps and len(cap_sizes) >= 2 and 0.6 <= min(cap_sizes) / max(cap_sizes) <= 0.9
    )
    if smallcaps and cap_sizes:
        size = max(cap_sizes)  # small caps are set at the capitals' size
    y = Counter(c.y for c in real if c.size == size).most_common(1)[0][0] if size in sizes else real[0].y
    text = _clean("".join(c.ch for c in chars))
    if not text.strip():
        return None
    words: list[tuple[str, float, float]] = []
    start = 0
    for k in range(len(chars) + 1):
        if k == len(chars) or chars[k].ch == " ":
            if k > start:
                words.append(("".join(c.ch for c in chars[start:k]), chars[start].x0, chars[k - 1].x1))
            start = k + 1
    lead = ""
    skip = 0  # a line number in front is not part of a run-in heading
    if len(words) > 1 and _INT.match(words[0][0]):
        skip = next(j for j, c in enumerate(chars) if c.x0 >= words[1][1] - 0.01 and c.ch != " ")
    if chars[skip].bold and not bold:
        k = next((j for j, c in enumerate(chars) if j >= skip and c.ch.isalpha() and not c.bold), len(chars))
        head = _clean("".join(c.ch for c in chars[skip:k])).strip()
        if k < len(chars) and head.endswith((".", ":")) and head[:1].isupper() and len(head.split()) <= 8:
            lead = head
    return Line(
        text.strip(),
        size,
        bold,
        real[0].x0,
        max(c.x1 for c in real),
        y,
        page,
        caps,
        smallcaps,
        lead,
        tuple(words),
        italic,
    )


def text_layer_pages(path: str | os.PathLike[str]) -> list[list[Line]]:
    """The text lines of every page of a PDF (raises :class:`~astrollama.data.ocr.pdf.OcrFailure`
    for PDFs that cannot be opened)."""
    from astrollama.data.ocr.pdf import open_pdf

    pdf = open_pdf(path)
    pages: list[list[Line]] = []
    try:
        for i in range(len(pdf)):
            page = pdf[i]
            tp = page.get_textpage()
            try:
                pages.append([ln for chars in _page_chars(tp) if (ln := _make_line(chars, i)) is not None])
            finally:
                tp.close()
                page.close()
    finally:
        pdf.close()
    return pages


def page_status(pages: Sequence[Sequence[Line]]) -> list[str]:
    """``ok`` for a page with text beyond a page number, else ``empty``."""
    return ["ok" if any(not _PAGE_NUMBER.match(ln.text) for ln in p) else "empty" for p in pages]


# ============================================================================ page furniture

_PAGE_NUMBER = re.compile(r"^(?:\d{1,4}|[ivxlc]{1,6})$", re.I)
_INT = re.compile(r"^\d{1,5}$")


def _numbered_furniture(line: Line, page: int, outer: bool) -> bool:
    """A bare page number; or, on a page's outermost baseline, a short line that starts or ends
    with this page's number and has no other digits (``2 DOE ET AL.``)."""
    words = line.text.split()
    if _PAGE_NUMBER.match(line.text):
        return True
    if not outer or page == 0 or len(line.text) > 80 or str(page + 1) not in (words[0], words[-1]):
        return False
    rest = words[1:] if words[0] == str(page + 1) else words[:-1]
    return not any(c.isdigit() for w in rest for c in w)


def _furniture(pages: Sequence[Sequence[Line]]) -> set[tuple[int, int]]:
    """(page, line index) of running heads, footers and page numbers. Only lines on the two
    top-most and two bottom-most baselines of a page are candidates: a baseline with a page number
    on it (``12``, ``2 DOE ET AL.``) goes, and so does a candidate whose text recurs among the
    candidates of another page (digits masked on the outermost baselines only: reference entries
    that differ only in their numbers can sit just above a footer)."""
    bands: list[list[tuple[list[int], bool]]] = []
    for lines in pages:
        ys = sorted({round(ln.y) for ln in lines})
        edges = {e: e in (ys[0], ys[-1]) for e in ys[:2] + ys[-2:]}
        bands.append(
            [([k for k, ln in enumerate(lines) if abs(ln.y - e) <= 1.0], outer) for e, outer in edges.items()]
        )
    key: dict[tuple[int, int], str] = {}
    for p, page in enumerate(bands):
        for band, outer in page:
            for k in band:
                text = pages[p][k].text.lower().replace(" ", "")
                key[(p, k)] = re.sub(r"\d+", "#", text) if outer else text
    seen = Counter(v for _, v in {(q[0], v) for q, v in key.items()})  # on how many pages
    drop = set()
    for p, page in enumerate(bands):
        for band, outer in page:
            whole = any(_numbered_furniture(pages[p][k], p, outer) for k in band)
            drop |= {(p, k) for k in band if whole or (len(pages) > 1 and seen[key[(p, k)]] >= 2)}
    return drop


def _line_numbers(pages: Sequence[Sequence[Line]]) -> dict[tuple[int, int], tuple[bool, bool]]:
    """(page, line index) -> (strip the first word, strip the last word) where those words are
    line numbers: integers set apart at the start or end of lines, aligned in a margin (6+ in the
    document at one x) and increasing down the pages."""
    cands: dict[tuple[str, int], list[tuple[int, int, float, int]]] = defaultdict(list)
    for p, lines in enumerate(pages):
        for k, ln in enumerate(lines):
            w = ln.words
            if not w:
                continue
            if _INT.match(w[0][0]) and (len(w) == 1 or w[1][1] - w[0][2] > 0.2 * ln.size):
                cands[("first", round(w[0][2] / 3))].append((p, k, ln.y, int(w[0][0])))
            if len(w) > 1 and _INT.match(w[-1][0]) and w[-1][1] - w[-2][2] > 0.2 * ln.size:
                cands[("last", round(w[-1][1] / 3))].append((p, k, ln.y, int(w[-1][0])))
    out: dict[tuple[int, int], tuple[bool, bool]] = {}
    for (side, _), group in cands.items():
        if len(group) < 6:
            continue
        if side == "last":  # right of all other text: numbers that end lines inside the text are text
            members = {(p, k) for p, k, _, _ in group}
            right = max(
                (
                    ln.x1
                    for p, lines in enumerate(pages)
                    for k, ln in enumerate(lines)
                    if (p, k) not in members
                ),
                default=0.0,
            )
            if min(pages[p][k].words[-1][1] for p, k, _, _ in group) < right - 2.0:
                continue
        values = [v for *_, v in sorted(group, key=lambda g: (g[0], -g[2]))]
        rising = sum(b > a for a, b in zip(values, values[1:], strict=False))
        if rising < 0.8 * (len(values) - 1):
            continue
        for p, k, _, _ in group:
            first, last = out.get((p, k), (False, False))
            out[(p, k)] = (first or side == "first", last or side == "last")
    return out


def _strip_numbers(line: Line, first: bool, last: bool) -> Line | None:
    words = list(line.words)
    if first:
        words = words[1:]
    if last and words:
        words = words[:-1]
    if not words:
        return None
    return dataclasses.replace(
        line, text=" ".join(w for w, _, _ in words), words=tuple(words), x0=words[0][1], x1=words[-1][2]
    )


# ============================================================================ lines -> markdown

_NUMBERED = re.compile(
    r"^(?P<num>[1-9]\d?(?:\.\d{1,2}){0,3}\.?|[IVX]{1,5}\.(?:\d{1,2}\.?)*|[A-H](?:\.\d{1,2})*\.?)\s+(?P<title>\S.{0,90})$"
)
_KNOWN = re.compile(
    r"^(?:introduction|conclusions?|summary(?: and (?:conclusions?|discussion|outlook))?|concluding remarks|"
    r"discussion(?: and conclusions?)?|conclusions? and (?:discussion|outlook|future work)|"
    r"acknowledge?ments?|references|bibliography|appendix(?:es)?|abstract)$"
)
_REFERENCES = ("references", "bibliography", "literature cited")
_APPENDIX = re.compile(r"^appendix\s+[a-z]\b", re.I)
_CAPTION = re.compile(
    r"^(?P<kind>Fig(?:ure|\.)?|FIG(?:URE|\.)?|Table|TABLE)\s*(?P<num>[A-Z]?\d{1,3}[a-z]?)"
    r"(?:\s*[.:|\u2014\u2013-]+\s*|\s*$)(?P<rest>.*)$"
)
_ABSTRACT = re.compile(r"^(?:abstract|a\s?bstract)\b[.:]?\s*(?P<rest>.*)$", re.I)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z ]+", " ", text.lower()).split())


def _numbered(text: str) -> re.Match[str] | None:
    m = _NUMBERED.match(text)
    if not m or not m.group("title")[:1].isupper() or m.group("title").endswith((".", ",", ";", ":")):
        return None
    return m


def _candidate(line: Line, body: float) -> tuple[int, bool, bool] | None:
    """(markdown depth, known name, numbered) when ``line`` looks like a heading on its own."""
    text = line.text
    if len(text) > 100 or text.endswith((",", ";")) or not re.search(r"[A-Za-z]{2}", text):
        return None
    m = _numbered(text)
    title = m.group("title") if m else text
    if (
        re.search(r"[/@=<>\[\]]|http|[a-z]{2}\. [A-Z]", title)  # not a sentence, a URL or a formula
        or sum(c.isalpha() for c in title) < 0.6 * len(title.replace(" ", ""))
    ):
        return None
    distinct = line.bold or line.size > body + 0.75 or line.caps or line.smallcaps
    known = title[:1].isupper() and (bool(_KNOWN.match(_norm(title))) or bool(_APPENDIX.match(title)))
    if m:
        num = m.group("num").rstrip(".")
        if known or (
            (distinct or line.italic) and (re.fullmatch(r"[A-Z]", num) is None or line.caps or line.bold)
        ):
            return 2 + min(num.count("."), 2), known, True
        return None
    if text.endswith((".", ":")) and not known:
        return None
    if known and len(title.split()) <= 6:
        return 2, True, False
    if (
        (line.bold or line.size > body + 0.75 or line.smallcaps)
        and text[:1].isupper()
        and len(text.split()) <= 12
    ):
        return 2, False, False
    return None


def _style(line: Line) -> tuple[float, bool, bool, bool]:
    return round(line.size * 2) / 2, line.bold, line.caps or line.smallcaps, line.italic


def _headings(lines: Sequence[Line], body: float) -> dict[int, int]:
    """Line index -> markdown depth of the headings. Known names always count; a numbered line
    counts when another numbered candidate shares its style (size, bold, capitals): a paper has
    several sections, a figure label rarely has a twin; unnumbered bold/larger lines count only
    in papers without numbered sections and, where a known heading exists, in its style."""
    cands = {k: c for k, ln in enumerate(lines) if not ln.lead and (c := _candidate(ln, body)) is not None}

    def prose(k: int) -> bool:  # a heading is followed by text or a sub-heading, not by figure labels
        if k + 1 >= len(lines):
            return True
        nxt = cands.get(k + 1)
        if nxt is not None and (
            nxt[1]
            or (m := _numbered(lines[k].text))
            and (n := _numbered(lines[k + 1].text))
            and n.group("num").startswith(m.group("num").rstrip(".") + ".")
        ):
            return True
        text = lines[k + 1].text
        return abs(lines[k + 1].size - body) < 0.6 and sum(c.isalpha() for c in text) >= 0.5 * len(text)

    cands = {k: c for k, c in cands.items() if c[1] or prose(k)}
    numbered = Counter(_style(lines[k]) for k, (_, known, num) in cands.items() if num)
    out = {k: d for k, (d, known, num) in cands.items() if known or (num and numbered[_style(lines[k])] >= 2)}
    if sum(1 for k in out if cands[k][2]) < 2:
        styles = {_style(lines[k]) for k, (_, known, _) in cands.items() if known}
        out.update(
            {
                k: d
                for k, (d, _, num) in cands.items()
                if not num and (not styles or _style(lines[k]) in styles)
            }
        )
    return out


def _caption(line: Line) -> str | None:
    m = _CAPTION.match(line.text)
    if not m:
        return None
    kind = "Table" if m.group("kind").lower().startswith("t") else "Figure"
    return f"{kind} {m.group('num')}: {m.group('rest')}".rstrip()


def _column_edges(lines: Sequence[Line], body: float) -> tuple[list[float], dict[float, float]]:
    """Left edges of the text columns of a page (x0 shared by 3+ body lines, else by 3+ lines of
    any size, as on a page of references) and each one's right edge (the most common x1 of its
    lines: justified lines end there; captions across both columns do not move it)."""
    lefts = Counter(round(ln.x0) for ln in lines if abs(ln.size - body) < 0.6)
    edges = [x for x, n in lefts.items() if n >= 3]
    edges += [
        x
        for x, n in Counter(round(ln.x0) for ln in lines).items()
        if n >= 3 and all(abs(x - e) > 2 for e in edges)
    ]
    edges.sort()
    rights: dict[float, float] = {}
    for x in edges:
        ends = Counter(round(ln.x1) for ln in lines if abs(round(ln.x0) - x) <= 1)
        rights[x] = max(ends, key=lambda e: (ends[e], e)) if ends else x
    return edges, rights


def _body_size(lines: Sequence[Line]) -> float:
    """The size of the most characters of prose (lines that are mostly letters) before the
    reference list: tables, figure labels, footnotes and references do not move it."""
    refs = next(
        (k for k, ln in enumerate(lines) if k > len(lines) // 3 and _norm(ln.text) in _REFERENCES), len(lines)
    )
    weights: Counter[float] = Counter()
    for ln in lines[:refs]:
        letters = sum(c.isalpha() for c in ln.text)
        if letters >= 0.6 * len(ln.text):
            weights[ln.size] += letters
    if not weights:
        for ln in lines:
            weights[ln.size] += len(ln.text)
    return weights.most_common(1)[0][0]


def layout_markdown(pages: Sequence[Sequence[Line]]) -> str:
    """Markdown in Nougat's conventions from text-layer lines (see the module docstring).

    ``# title`` (the largest lines before the abstract on the first page), the author block,
    ``###### Abstract``, ``##``/``###`` headings, paragraphs, ``Figure N: ...`` captions and
    ``* `` reference items.
    """
    furniture = _furniture(pages)
    numbers = _line_numbers(pages)
    kept: list[Line] = []
    for p, lines in enumerate(pages):
        for k, ln in enumerate(lines):
            if (p, k) in furniture:
                continue
            if (p, k) in numbers:
                ln = _strip_numbers(ln, *numbers[(p, k)])
                if ln is None:
                    continue
            kept.append(ln)
    if not kept:
        return ""
    body = _body_size(kept)
    # column edges per page, completed by the document's (a page of references has few lines)
    doc_lefts, doc_rights = _column_edges(kept, body)
    edges: dict[int, tuple[list[float], dict[float, float]]] = {}
    for p in {ln.page for ln in kept}:
        lefts, rights = _column_edges([ln for ln in kept if ln.page == p], body)
        extra = [x for x in doc_lefts if all(abs(x - e) > 2 for e in lefts)]
        edges[p] = sorted(lefts + extra), {**{x: doc_rights[x] for x in extra}, **rights}

    def column(ln: Line) -> tuple[float, float]:
        lefts, rights = edges[ln.page]
        left = max((x for x in lefts if x <= ln.x0 + 1.5), default=None)
        if left is None:
            return ln.x0, ln.x1
        return left, rights[left]

    pitches = sorted(
        (a.y - b.y) / b.size
        for a, b in zip(kept, kept[1:], strict=False)
        if a.page == b.page
        and 0 < a.y - b.y < 3 * b.size
        and abs(b.size - body) < 0.6
        and abs(a.size - body) < 0.6
        and column(a)[0] == column(b)[0]
    )
    typical = pitches[len(pitches) // 2] if pitches else 1.2

    blocks: list[str] = []
    para: list[str] = []
    kind = "text"  # "text" | "refs" | "caption"
    para_size = body

    def end_para() -> None:
        if para:
            text = para[0]
            for nxt in para[1:]:
                if text[-1:] in _SOFT_HYPHEN:
                    text = text[:-1] + nxt
                elif text.endswith("-") and len(text) > 1 and text[-2].isalpha() and nxt[:1].isalpha():
                    text += nxt
                else:
                    text += " " + nxt
            text = " ".join(_clean(text).replace("\x02", "").replace("\xad", "").split())
            if text.startswith("#"):  # text, not a markdown heading
                text = "\\" + text
            # a fragment on its own (a figure's axis label, a panel letter, a piece of an equation)
            # is not text: up to three words, no sentence end
            if (
                kind != "text"
                or len(text) > 25
                or len(text.split()) > 3
                or text.endswith((".", "?", "!", ":"))
            ):
                blocks.append(("* " if kind == "refs" else "") + text)
            para.clear()

    def breaks(ln: Line, prev: Line) -> bool:
        left, _ = column(ln)
        pleft, pright = column(prev)
        same_column = ln.page == prev.page and left == pleft and 0 < prev.y - ln.y < 4 * ln.size
        if same_column and (prev.y - ln.y) / ln.size > 1.3 * typical:
            return True
        if 0.8 * ln.size < ln.x0 - left < 4 * ln.size:  # an indented first line
            return kind != "refs" or not hanging
        if kind == "refs" and hanging:
            return ln.x0 - left < 0.5 * ln.size
        return prev.x1 < pright - 2.5 * prev.size and not _INT.match(
            prev.text
        )  # the previous line stopped short

    start = 0
    page0 = [k for k, ln in enumerate(kept) if ln.page <= 1]
    abstract_at = next(
        (
            k
            for k in page0
            if _ABSTRACT.match(kept[k].text) and (len(kept[k].text) < 12 or kept[k].lead or kept[k].bold)
        ),
        None,
    )
    abstract_rest = ""
    if abstract_at is not None:
        front = kept[:abstract_at]
        if front:
            top = max(ln.size for ln in front)
            t0 = next(k for k, ln in enumerate(front) if ln.size == top)
            t1 = next((k for k in range(t0, len(front)) if front[k].size != top), len(front))
            blocks.append("# " + " ".join(ln.text for ln in front[t0:t1]))
            rest = front[:t0] + front[t1:]
            if rest:
                blocks.append(" ".join(ln.text for ln in rest))
        blocks.append("###### Abstract")
        abstract_rest = _ABSTRACT.match(kept[abstract_at].text).group("rest")
        start = abstract_at + 1
    if abstract_rest:
        para.append(abstract_rest)
    hanging = False
    heads = _headings(kept, body)
    prev: Line | None = kept[start - 1] if start else None
    for idx in range(start, len(kept)):
        ln = kept[idx]
        text = ln.text
        depth = heads.get(idx, 0)
        if depth:
            end_para()
            blocks.append("#" * depth + " " + text)
            kind = (
                "refs"
                if _norm(_numbered(text).group("title") if _numbered(text) else text) in _REFERENCES
                else "text"
            )
            if kind == "refs":
                refs = kept[idx + 1 : idx + 201]
                indented = sum(0.8 * r.size < r.x0 - column(r)[0] < 4 * r.size for r in refs)
                hanging = indented > 0.2 * max(len(refs), 1)
            prev = ln
            continue
        caption = _caption(ln) if kind != "refs" else None
        if caption is not None and (
            prev is None or ln.size < body - 0.4 or ln.lead or ln.bold or breaks(ln, prev) or not para
        ):
            end_para()
            para.append(caption)
            kind, para_size = "caption", ln.size
            prev = ln
            continue
        if ln.lead and kind != "refs" and text.startswith(ln.lead):
            end_para()
            if kind == "caption":
                kind = "text"
            para.append(f"**{ln.lead}** " + text[len(ln.lead) :].strip())
            prev = ln
            continue
        if kind == "caption" and (abs(ln.size - para_size) > 0.4 or (prev is not None and breaks(ln, prev))):
            end_para()
            kind = "text"
        elif para and prev is not None and breaks(ln, prev):
            end_para()
        para.append(text)
        prev = ln
    end_para()
    return "\n\n".join(blocks).strip() + "\n"
