"""Author-year citation forms from a paper's ``.bib`` when its e-print ships no ``.bbl``.

The ``.bib`` is read with pybtex (its BibTeX parser and name splitting: "von" parts, ``{braced}``
corporate names, ``Last, Jr, First``), and each entry gives the short author list that natbib's
author-year styles (``aasjournal``, ``mnras``, ``aa``) print, as the ``.bbl`` route reads it from
``\\bibitem[..]``: one author "Smith", two "Smith & Jones", three or more (or ``and others``)
"Smith et al."; prefixes are kept ("van der Berg"), LaTeX accents and braces decoded ("Jönes",
"Silva Aguirre"). An entry without authors takes its editors, else its ``key`` field, else its
organization/institution/publisher. The year is the ``year`` field (else the year of ``date``);
two entries with the same authors and year get ``a``, ``b`` in the order of their titles, as the
BibTeX styles sort them. An entry with neither names nor a year is not an author-year citation
and stays unresolved.

The ``.bib`` is untrusted: ``@string`` macros are not expanded (a chain of concatenated strings
grows exponentially), files over the source cap are not read, and parse errors skip the entry
(pybtex's errors are captured, not raised or printed).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# BibTeX styles that cite by number (standard LaTeX, natbib's numeric ones, physics and nature journals)
NUMERIC_STYLES = {
    "plain",
    "unsrt",
    "abbrv",
    "ieeetr",
    "acm",
    "siam",
    "apsrev",
    "apsrev4-1",
    "apsrev4-2",
    "naturemag",
    "nature",
    "science",
    "jcap",
    "jhep",
    "iopart-num",
    "elsarticle-num",
    "spiebib",
}


_STRING_ENTRY = re.compile(r"@\s*(?:string|preamble)\s*[({]", re.I)
_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")


def _drop_string_entries(text: str) -> str:
    """The ``.bib`` without ``@string``/``@preamble`` entries (brace-balanced; linear)."""
    out, pos = [], 0
    for m in _STRING_ENTRY.finditer(text):
        if m.start() < pos:
            continue
        out.append(text[pos : m.start()])
        depth, i = 1, m.end()
        while i < len(text) and depth:
            ch = text[i]
            if ch in "{(":
                depth += 1
            elif ch in "})":
                depth -= 1
            i += 1
        pos = i if depth == 0 else len(text)
    out.append(text[pos:])
    return "".join(out)


_ENTRY_START = re.compile(r"@\s*([A-Za-z]+)\s*[({]\s*([^,\s{}()]+)\s*,")


def _wanted_entries(text: str, wanted: set[str]) -> str:
    """Only the entries whose key (case-insensitive, as BibTeX matches) is in ``wanted``: a large
    ``.bib`` of which a paper cites a few dozen entries is not parsed whole."""
    starts = [
        m for m in _ENTRY_START.finditer(text) if m.group(1).lower() not in ("string", "preamble", "comment")
    ]
    keep = []
    for n, m in enumerate(starts):
        if m.group(2).lower() in wanted:
            end = starts[n + 1].start() if n + 1 < len(starts) else len(text)
            keep.append(text[m.start() : end])
    return "\n".join(keep)


def _names(persons: list, plain: Callable[[str], str]) -> list[str]:
    out = []
    for p in persons:
        last = " ".join(p.prelast_names + p.last_names)
        name = plain(last).strip()
        if name:
            out.append(name)
    return out


def parse_bib(
    text: str, plain: Callable[[str], str], wanted: set[str] | None = None
) -> dict[str, tuple[str, str]]:
    """Citation key -> (short authors, year) for the entries of a ``.bib`` text.

    ``plain`` turns a LaTeX fragment into text (accents, braces); ``wanted``: the cited keys (only
    those entries are parsed; the a/b year suffixes are then decided among the cited entries)."""
    import pybtex.errors
    from pybtex.database.input.bibtex import Parser

    with pybtex.errors.capture():
        try:
            data = Parser(wanted_entries=None).parse_string(
                _drop_string_entries(text)
                if wanted is None
                else _wanted_entries(text, {k.lower() for k in wanted})
            )
        except Exception:  # noqa: BLE001 - a .bib pybtex cannot read at all gives no entries
            return {}
    rows: list[tuple[str, str, str, str]] = []  # key, authors, year, title
    for key, e in data.entries.items():
        persons = e.persons.get("author") or e.persons.get("editor") or []
        names = _names(persons, plain)
        others = any(str(p).strip().lower() == "others" for p in persons)
        names = [n for n in names if n.lower() != "others"]
        if names:
            if len(names) >= 3 or others:
                short = f"{names[0]} et al."
            elif len(names) == 2:
                short = f"{names[0]} & {names[1]}"
            else:
                short = names[0]
        else:
            f = e.fields
            short = plain(
                f.get("key") or f.get("organization") or f.get("institution") or f.get("publisher") or ""
            )
            short = " ".join(short.split())
        ym = _YEAR.search(e.fields.get("year", "") or e.fields.get("date", ""))
        if not short or not ym:
            continue
        rows.append((key, short, ym.group(1), plain(e.fields.get("title", "")).lower()))
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for key, short, year, title in rows:
        groups.setdefault((short, year), []).append((title, key))
    out: dict[str, tuple[str, str]] = {}
    for (short, year), members in groups.items():
        if len(members) == 1:
            out[members[0][1]] = (short, year)
            continue
        for n, (_, key) in enumerate(sorted(members)):
            out[key] = (short, year + (chr(97 + n) if n < 26 else str(n)))
    return out
