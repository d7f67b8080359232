"""LaTeX route of the AIC variant: an arXiv e-print's source tree -> text that reads like the paper.

The sections are chosen with the rules of :mod:`astrollama.data.aic.rules`; this module reads a paper
(:func:`load_paper`) and chooses its sections, the steps below live in one module each (see
docs/data-corpus.md, "AIC from LaTeX"):

1. **inputs** (:mod:`~astrollama.data.aic.latex_inputs`): ``\\input``/``\\include``/``\\subfile`` and local ``\\usepackage{x}`` (``x.sty`` in the
   source tree) are inlined, except font or style packages (:func:`is_style_package`: their
   definitions, e.g. ``apjfonts.sty``'s ``\\def\\AA``, are not the paper's and are never expanded).
   An e-print is untrusted: an absolute path, a ``..`` that leaves the source directory, a symlink that points outside it, nesting deeper than ``MAX_INPUT_DEPTH``,
   more than ``MAX_INPUT_FILES`` file reads or ``MAX_SOURCE_CHARS`` characters are refused with
   :class:`EprintError` (one line; the stage records the paper as failed). A missing file is
   left out (e-prints often lack generated tables).
2. **comments** (:func:`~astrollama.data.aic.latex_inputs.strip_latex_comments`): ``%`` comments and ``comment`` environments are dropped in one linear pass; a
   comment-only line disappears with its newline, so it does not split a paragraph.
3. **the paper's own macros** (:mod:`~astrollama.data.aic.latex_macros`): ``\\newcommand``/``\\renewcommand``/``\\providecommand`` (``*``,
   ``[n]`` arguments, ``[default]`` optional first argument), ``\\def\\x#1#2{..}`` and
   ``\\DeclareMathOperator`` from every inlined file are expanded, in math too. Expansion is bounded
   (``MAX_MACRO_DEPTH`` nesting, ``MAX_EXPANSIONS`` expansions, ``MAX_EXPANDED_CHARS``): a recursive
   ``\\def`` bomb is refused, not run.
4. **text** (:mod:`~astrollama.data.aic.latex_text`, its tables in
   :mod:`~astrollama.data.aic.latex_commands`): one linear pass (``_Converter``) keeps math as LaTeX (``$..$``, ``\\[..\\]``,
   ``equation``/``align``/...), drops floats (``figure``, ``table``, ``deluxetable``,
   ``sidewaystable``, ``longtable``, ...) but keeps their captions at the end of the section,
   keeps AASTeX track-changes' new text (``\\added``, ``\\replaced[..]{old}{new}``; ``\\deleted``,
   ``\\explain`` dropped), drops ``\\software``, ``\\facilities``, ``\\nocite``, margin notes and
   footnotes, writes citations in an author-year form (:mod:`~astrollama.data.aic.citations`) from the paper's ``.bbl``
   (:mod:`~astrollama.data.aic.references`) (natbib,
   ``\\citeauthoryear`` of mnras.bst, numeric ``[n]``) or, without one, from an author-year
   citation key (``Smith2020`` -> Smith 2020) or a neutral wording that keeps the sentence
   grammatical (unresolved keys are counted: ``AIC.unresolved_citations``), and
   ``\\ref``/``\\eqref``/``\\cref``/``\\autoref``/``\\S\\ref`` with their numbers from the ``.aux``,
   else counted by the document class's conventions (:mod:`astrollama.data.aic.labels`; a label
   defined nowhere keeps a neutral word: Section, Figure, Table, Eq., counted in
   ``AIC.bare_references``). An inline ``thebibliography`` stands in for a missing ``.bbl``; without
   either, the ``.bib`` that ``\\bibliography`` names gives the author-year forms
   (:mod:`astrollama.data.aic.bibtex`); a revtex (APS, not ``rmp``) paper cites by number in citation order; revtex
   front matter leaves the text; ``acronym``/``glossaries`` abbreviations read "long (short)" on
   first use. Paragraphs are joined, then punctuation tidied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from astrollama.data.aic.bibtex import NUMERIC_STYLES
from astrollama.data.aic.citations import _NUMERIC_CLASS, _Context
from astrollama.data.aic.labels import aux_kinds, count_labels, equations_by_section, scheme_for
from astrollama.data.aic.latex_args import _braced, _skip_space, brace_map
from astrollama.data.aic.latex_inputs import (
    MAX_SOURCE_CHARS,
    EprintError,
    _inside,
    resolve_latex_inputs,
    strip_latex_comments,
)
from astrollama.data.aic.latex_macros import MacroExpander, collect_macros
from astrollama.data.aic.latex_text import define_acronyms, latex_to_text
from astrollama.data.aic.references import parse_aux, parse_bbl, read_bib
from astrollama.data.aic.rules import (
    AIC,
    _display,
    _finish,
    _Heading,
    _last_body_section,
    _pick,
    classify_heading,
    normalise_heading,
)
from astrollama.untrusted import read_bytes

MAX_TITLE_CHARS = 2000  # a \section{title} longer than this is not a heading

# ----------------------------------------------------------------------------- sections

_SECTION = re.compile(r"\\section\*?\s*(?:\[[^\]\n]*\])?\s*\{")
_STOPPERS = re.compile(
    r"\\appendix\b|\\begin\{thebibliography\}|\\bibliography\s*\{|\\printbibliography|\\end\{document\}|"
    r"\\begin\{acknowledge?ments?\}|\\acknowledge?ments?\b|\\software\s*\{|\\facilities\s*\{|"
    r"\\begin\{contribution\}|\\section\*?\s*[\[{]|"
    r"\\subsection\*?\s*\{\s*(?:Acknowledge?ments?|Data [Aa]vailability)"
)


_BODY_END = re.compile(
    r"\\appendix\b|\\begin\{appendix\}|\\begin\{thebibliography\}|\\bibliography\s*\{|\\printbibliography|"
    r"\\end\{document\}|\\begin\{acknowledge?ments?\}|\\acknowledge?ments?\b"
)
_BIBSTYLE = re.compile(r"\\bibliographystyle\s*\{([^{}]*)\}")


def _latex_abstract(tex: str) -> str:
    b = tex.find("\\begin{abstract}")
    if b >= 0:
        e = tex.find("\\end{abstract}", b)
        return tex[b + 16 : e if e >= 0 else len(tex)]
    m = re.search(r"\\abstract\s*\{", tex)
    if not m:
        return ""
    bm = brace_map(tex)
    parts, pos = [], m.end() - 1
    while pos < len(tex) and tex[pos] == "{":  # A&A structured abstract: \abstract{..}{..}{..}
        body, pos = _braced(tex, pos, bm)
        parts.append(body)
        pos = _skip_space(tex, pos)
    return " ".join(parts)


@dataclass
class LatexPaper:
    """A source tree read for the LaTeX route: expanded text and its citation/label context."""

    tex: str
    ctx: _Context


def load_paper(
    tex_path: str | Path, *, root: str | Path | None = None, where: str | None = None
) -> LatexPaper:
    """Inputs resolved, macros expanded, the ``.bbl``/``.aux`` next to the main file read."""
    p = Path(tex_path)
    where = where or str(p)
    tex = resolve_latex_inputs(p, root=root, where=where)
    macros, tex = collect_macros(tex, where)
    tex = MacroExpander(macros, where).expand(tex)
    ctx = _Context()
    top = Path(root).resolve() if root is not None else p.parent.resolve()
    for ext in (".bbl", ".aux"):
        cands = [p.with_suffix(ext)] + sorted(p.parent.glob("*" + ext))
        for c in cands:
            if c.is_file() and not c.is_symlink() and _inside(c.resolve(), top):
                if c.stat().st_size <= MAX_SOURCE_CHARS:
                    raw = read_bytes(c, "tex", root=top, error=EprintError)
                    text = raw.decode("utf-8", errors="replace")
                    if ext == ".bbl":
                        ctx.cites, ctx.cites_from = parse_bbl(text), "bbl"
                    else:
                        ctx.labels, ctx.kinds = parse_aux(text), aux_kinds(text)
                break
    if not ctx.cites and "\\begin{thebibliography}" not in tex:
        cites = read_bib(tex, p.parent.resolve(), top, where)
        if cites:
            ctx.cites, ctx.cites_from = cites, "bib"
    return LatexPaper(tex, ctx)


def extract_aic_latex_text(
    tex: str, *, metadata_abstract: str | None = None, where: str = "<tex>", ctx: _Context | None = None
) -> AIC:
    """Extract the AIC sections from LaTeX source text (inputs resolved; macros expanded unless
    ``ctx`` is None, in which case the text's own definitions are expanded here)."""
    tex = strip_latex_comments(tex)
    if ctx is None:
        macros, tex = collect_macros(tex, where)
        tex = MacroExpander(macros, where).expand(tex)
        ctx = _Context()
    b = tex.find("\\begin{document}")
    body = tex[b + 16 :] if b >= 0 else tex
    if not ctx.cites:  # an inline bibliography instead of a .bbl
        bib = re.search(r"(?s)\\begin\{thebibliography\}.*?(?:\\end\{thebibliography\}|\Z)", body)
        if bib:
            ctx.cites, ctx.cites_from = parse_bbl(bib.group(0)), "inline"
    define_acronyms(ctx, tex)
    dc = _NUMERIC_CLASS.search(tex)
    bst = _BIBSTYLE.search(tex)
    if dc and "rmp" not in re.split(r"[\s,]+", dc.group(1) or ""):  # APS journals cite by number
        ctx.number_citations(body)
    elif ctx.cites_from == "bib" and bst and bst.group(1).strip().lower() in NUMERIC_STYLES:
        ctx.number_citations(body)  # a numeric BibTeX style over a .bib: numbers in citation order
    for key, (kind, num) in count_labels(
        body, scheme_for(tex), eq_in_section=equations_by_section(tex)
    ).items():
        ctx.labels.setdefault(key, num)  # an .aux number wins over a counted one
        ctx.kinds.setdefault(key, kind)
    aic = AIC(source="latex", abstract=latex_to_text(_latex_abstract(tex), ctx))
    secs: list[tuple[str, int, int]] = []  # (title, start of body, start of heading)
    starred: list[bool] = []
    bm = brace_map(body)
    for m in _SECTION.finditer(body):
        if bm.get(m.end() - 1, len(body)) - m.end() > MAX_TITLE_CHARS:
            continue
        title, end = _braced(body, m.end() - 1, bm)
        secs.append((title, end, m.start()))
        starred.append("*" in body[m.start() : m.start() + 10])
    heads = []
    for title, _, start in secs:
        plain = latex_to_text(title)
        norm, depth = normalise_heading(plain)
        heads.append(_Heading(start, _display(plain), norm, 1, depth, classify_heading(norm)))
    _, i, c = _pick(heads)
    aic.conclusion_rule = "name" if c is not None else ""
    if c is None:  # no conclusion-like heading: the last section of the body (rules._last_body_section)
        end = _BODY_END.search(body)
        limit = end.start() if end else len(body)
        numbered = [k for k, (_, _, start) in enumerate(secs) if start < limit and not starred[k]]
        c = _last_body_section(heads, i, numbered)
        if c is not None:
            aic.conclusion_rule = "last section"

    def section_text(k: int) -> str:
        start = secs[k][1]
        stop = _STOPPERS.search(body, start)
        return latex_to_text(body[start : stop.start() if stop else len(body)], ctx)

    if i is not None:
        aic.introduction = section_text(i)
    if c is not None:
        aic.conclusion = section_text(c)
        aic.conclusion_heading = heads[c].title
    if not aic.conclusion:
        aic.conclusion_rule = ""
    aic.unresolved_citations, aic.bare_references = ctx.unresolved, ctx.bare_refs
    return _finish(aic, metadata_abstract, where)


def extract_aic_latex(
    path: str | Path,
    *,
    metadata_abstract: str | None = None,
    root: str | Path | None = None,
    where: str | None = None,
) -> AIC:
    """Extract the AIC sections from a LaTeX main file (inputs, macros, .bbl and .aux resolved)."""
    paper = load_paper(path, root=root, where=where)
    return extract_aic_latex_text(
        paper.tex, metadata_abstract=metadata_abstract, where=where or str(path), ctx=paper.ctx
    )
