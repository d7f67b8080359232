"""A paper's own reference data for the LaTeX route: its ``.bbl`` entries (author-year or
numeric), its ``.aux`` label numbers, and the ``.bib`` files that ``\\bibliography`` names
(parsed by :mod:`astrollama.data.aic.bibtex`)."""

from __future__ import annotations

import re
from pathlib import Path

from astrollama.data.aic.bibtex import parse_bib
from astrollama.data.aic.citations import _CITE_KEYS
from astrollama.data.aic.latex_args import _arg, _braced, _opt_arg, _skip_space, brace_map
from astrollama.data.aic.latex_inputs import MAX_SOURCE_CHARS, EprintError, _input_file
from astrollama.data.aic.latex_text import _plain
from astrollama.untrusted import read_bytes


def parse_bbl(text: str) -> dict[str, str | tuple[str, str]]:
    """Citation key -> (short authors, year) for author-year styles, or its number "n" (numeric)."""
    out: dict[str, str | tuple[str, str]] = {}
    n = 0
    bm = brace_map(text)
    for m in re.finditer(r"\\bibitem\s*", text):
        i = m.end()
        opt, i = _opt_arg(text, i)
        j = _skip_space(text, i)
        if j >= len(text) or text[j] != "{":
            continue
        key, _ = _braced(text, j, bm)
        key = key.strip()
        n += 1
        if opt is None:
            out[key] = str(n)
            continue
        cay = re.search(r"\\citeauthoryear\s*\{", opt)
        if cay:  # mnras.bst: \citeauthoryear{long}{short}{year}
            obm = brace_map(opt)
            args, p = [], cay.end() - 1
            for _ in range(3):
                a, p = _arg(opt, p, obm)
                args.append(a)
            out[key] = (_plain(args[1] or args[0]), _plain(args[2]))
            continue
        ay = re.match(r"(?s)\s*\{?(.*?)\}?\s*\((\s*[^()]*?)\)", opt)
        if ay:
            out[key] = (_plain(ay.group(1)), _plain(ay.group(2)))
        else:
            out[key] = str(n)
    return out


def parse_aux(text: str) -> dict[str, str]:
    """Label -> its number, from ``\\newlabel{key}{{number}{page}...}`` lines."""
    out = {}
    for m in re.finditer(r"\\newlabel\{([^{}]+)\}\{\{((?:[^{}]|\{[^{}]*\})*)\}", text):
        num = re.sub(r"\\[A-Za-z@]+\s*|[{}]", "", m.group(2)).strip()
        if num and re.fullmatch(r"[\w.\-]+", num):
            out[m.group(1)] = num
    return out


_BIB_FILES = re.compile(r"\\bibliography\s*\{([^{}]*)\}|\\addbibresource\s*(?:\[[^\]]*\])?\s*\{([^{}]*)\}")


def read_bib(tex: str, base: Path, top: Path, where: str) -> dict[str, tuple[str, str]]:
    """Author-year forms of the cited keys from the ``.bib`` files that ``\\bibliography{a,b}`` /
    ``\\addbibresource{x.bib}`` name (inside the source tree; an absolute name or one that leaves
    it is not read, the paper goes on without it) (:mod:`astrollama.data.aic.bibtex`)."""
    out: dict[str, tuple[str, str]] = {}
    files = list(_BIB_FILES.finditer(tex))
    wanted = (
        {k.strip() for m in _CITE_KEYS.finditer(tex) for k in m.group(1).split(",") if k.strip()}
        if files
        else set()
    )
    if not wanted:
        return out
    for m in files:
        names = m.group(1).split(",") if m.group(1) is not None else [m.group(2)]
        for name in (n.strip() for n in names):
            if not name:
                continue
            try:
                f = _input_file(base, top, name, (".bib", "") if m.group(1) is not None else ("",), where)
            except EprintError:
                continue
            if f is None or f.suffix.lower() != ".bib" or f.stat().st_size > MAX_SOURCE_CHARS:
                continue
            bib = read_bytes(f, "tex", root=top, error=EprintError).decode("utf-8", errors="replace")
            for k, v in parse_bib(bib, _plain, wanted).items():
                out.setdefault(k, v)
    return out
