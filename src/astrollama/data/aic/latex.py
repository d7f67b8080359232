"""LaTeX route of the AIC variant: an arXiv e-print's source tree -> text that reads like the paper.

The sections are chosen with the rules of :mod:`astrollama.data.aic.rules`; this module turns the LaTeX
into text (see docs/data-corpus.md, "AIC from LaTeX"):

1. **inputs**: ``\\input``/``\\include``/``\\subfile`` and local ``\\usepackage{x}`` (``x.sty`` in the
   source tree) are inlined, except font or style packages (:func:`is_style_package`: their
   definitions, e.g. ``apjfonts.sty``'s ``\\def\\AA``, are not the paper's and are never expanded).
   An e-print is untrusted: an absolute path, a ``..`` that leaves the source directory, a symlink that points outside it, nesting deeper than ``MAX_INPUT_DEPTH``,
   more than ``MAX_INPUT_FILES`` file reads or ``MAX_SOURCE_CHARS`` characters are refused with
   :class:`EprintError` (one line; the stage records the paper as failed). A missing file is
   left out (e-prints often lack generated tables).
2. **comments**: ``%`` comments and ``comment`` environments are dropped in one linear pass; a
   comment-only line disappears with its newline, so it does not split a paragraph.
3. **the paper's own macros**: ``\\newcommand``/``\\renewcommand``/``\\providecommand`` (``*``,
   ``[n]`` arguments, ``[default]`` optional first argument), ``\\def\\x#1#2{..}`` and
   ``\\DeclareMathOperator`` from every inlined file are expanded, in math too. Expansion is bounded
   (``MAX_MACRO_DEPTH`` nesting, ``MAX_EXPANSIONS`` expansions, ``MAX_EXPANDED_CHARS``): a recursive
   ``\\def`` bomb is refused, not run.
4. **text**: one linear pass (:class:`_Converter`) keeps math as LaTeX (``$..$``, ``\\[..\\]``,
   ``equation``/``align``/...), drops floats (``figure``, ``table``, ``deluxetable``,
   ``sidewaystable``, ``longtable``, ...) but keeps their captions at the end of the section,
   keeps AASTeX track-changes' new text (``\\added``, ``\\replaced[..]{old}{new}``; ``\\deleted``,
   ``\\explain`` dropped), drops ``\\software``, ``\\facilities``, ``\\nocite``, margin notes and
   footnotes, writes citations in an author-year form from the paper's ``.bbl`` (natbib,
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

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from astrollama.data.aic.bibtex import NUMERIC_STYLES, parse_bib
from astrollama.data.aic.labels import KIND_WORD, aux_kinds, count_labels, equations_by_section, scheme_for
from astrollama.data.aic.rules import (
    AIC,
    AICError,
    _display,
    _finish,
    _Heading,
    _last_body_section,
    _pick,
    classify_heading,
    normalise_heading,
)
from astrollama.untrusted import open_regular, read_bytes

MAX_INPUT_DEPTH = 8
MAX_INPUT_FILES = 256
MAX_SOURCE_CHARS = 8_000_000
MAX_MACRO_DEPTH = 32
MAX_EXPANSIONS = 200_000
MAX_EXPANDED_CHARS = 16_000_000
MAX_MAIN_SCAN_BYTES = 1 << 20  # bytes of each .tex read to find \documentclass
MAX_OPT_ARG_CHARS = 500  # an optional [argument] longer than this is not one
MAX_TITLE_CHARS = 2000  # a \section{title} longer than this is not a heading
MAX_GROUP_DEPTH = 16  # arguments nested deeper are reduced to their text


class EprintError(AICError):
    """A hostile or oversized e-print (path escape, expansion bomb): the paper fails."""


# ------------------------------------------------------------------------------------ inputs

_INPUT = re.compile(
    r"\\(input|include|subfile)\s*\{([^{}\n]*)\}|\\input\s+([^\s{}\\%]+)|"
    r"\\usepackage\s*(?:\[[^\]\n]*\])?\s*\{([^{}]*)\}"
)
_WHOLE_LINE_COMMENT = re.compile(r"^[ \t]*%[^\n]*(?:\n|\Z)", re.M)
_COMMENT = re.compile(r"(?<!\\)((?:\\\\)*)%[^\n]*")


def strip_latex_comments(tex: str) -> str:
    """Drop ``%`` comments (not ``\\%``; a comment-only line goes with its newline) and
    ``comment`` environments (an unclosed one runs to the end, as in LaTeX). Linear time."""
    tex = _COMMENT.sub(r"\1", _WHOLE_LINE_COMMENT.sub("", tex))
    begin, end = "\\begin{comment}", "\\end{comment}"
    out, pos = [], 0
    while (b := tex.find(begin, pos)) >= 0:
        out.append(tex[pos:b])
        e = tex.find(end, b)
        if e < 0:
            return "".join(out)
        pos = e + len(end)
    out.append(tex[pos:])
    return "".join(out)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _input_file(base: Path, root: Path, name: str, exts: tuple[str, ...], where: str) -> Path | None:
    """The file ``\\input{name}`` reads, None when absent; a name leaving ``root`` is refused."""
    if name.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", name):
        raise EprintError(f"{where}: \\input{{{name}}}: absolute path refused")
    if os.path.normpath(os.path.join(os.path.relpath(base, root), name)).startswith(".."):
        raise EprintError(f"{where}: \\input{{{name}}}: path leaves the source directory")
    for cand in [base / (name + e) for e in exts]:
        if not os.path.lexists(cand):
            continue
        real = cand.resolve()
        if not _inside(real, root):
            raise EprintError(f"{where}: \\input{{{name}}}: symlink leaves the source directory")
        if real.is_file():
            return real
    return None


def resolve_latex_inputs(
    path: str | Path,
    *,
    root: str | Path | None = None,
    where: str | None = None,
    max_depth: int = MAX_INPUT_DEPTH,
    max_files: int = MAX_INPUT_FILES,
    max_chars: int = MAX_SOURCE_CHARS,
) -> str:
    """The main file's text with its inputs inlined and comments stripped (see module doc).

    ``root`` is the e-print's source directory (default: the main file's); nothing outside it is
    read. ``where`` names the paper in errors.
    """
    main = Path(path)
    base = main.parent.resolve()
    top = Path(root).resolve() if root is not None else base
    where = where or str(path)
    budget = {"files": 0, "chars": 0}

    def read(p: Path) -> str:
        budget["files"] += 1
        if budget["files"] > max_files:
            raise EprintError(f"{where}: \\input: more than {max_files} files read (input fan-out)")
        if budget["chars"] + p.stat().st_size > max_chars * 4:
            raise EprintError(f"{where}: \\input: source larger than {max_chars} characters")
        text = strip_latex_comments(
            read_bytes(p, "tex", root=top, error=EprintError).decode("utf-8", errors="replace")
        )
        budget["chars"] += len(text)
        if budget["chars"] > max_chars:
            raise EprintError(f"{where}: \\input: source larger than {max_chars} characters")
        return text

    def load(p: Path, depth: int, seen: frozenset[Path]) -> str:
        text = read(p)
        out, pos = [], 0
        for m in _INPUT.finditer(text):
            if m.group(4) is not None:  # \usepackage: local .sty files only (macro definitions)
                names, exts, keep = m.group(4).split(","), (".sty",), m.group(0)
            else:
                names, exts, keep = [m.group(2) if m.group(2) is not None else m.group(3)], ("", ".tex"), ""
            found = []
            for name in (n.strip() for n in names):
                if not name:
                    continue
                f = _input_file(base, top, name, exts, where)
                if f is not None and f not in seen:
                    if depth + 1 > max_depth:
                        raise EprintError(f"{where}: \\input{{{name}}}: nesting deeper than {max_depth}")
                    sub = load(f, depth + 1, seen | {f})
                    if f.suffix in (".sty", ".cls") and is_style_package(sub):
                        continue  # a font or style package: its definitions are not the paper's
                    found.append(sub)
            if found or not keep:
                out.append(text[pos : m.start()])
                out.append("\n".join(found))
                pos = m.end()
        out.append(text[pos:])
        return "".join(out)

    real = main.resolve()
    if not _inside(real, top):
        raise EprintError(f"{where}: main file leaves the source directory")
    return load(real, 0, frozenset({real}))


_STYLE_PACKAGE = re.compile(
    r"\\(?:NeedsTeXFormat|DeclareSymbolFont|DeclareMathAlphabet|DeclareFontFamily|DeclareFontShape|"
    r"SetSymbolFont|SetMathAlphabet|DeclareMathSymbol|DeclareSymbolFontAlphabet|DeclareTextFontCommand|"
    r"DeclareOption|ProcessOptions|ProvidesClass)(?![A-Za-z@])|"
    r"\\ProvidesPackage\s*\{[^{}]*\}\s*\[\s*\d{4}[/-]|"
    r"\\font\s*\\[A-Za-z@]+\s*=|\\(?:renewcommand|def)\s*\{?\\(?:rmdefault|sfdefault|ttdefault|familydefault)(?![A-Za-z@])"
)


def is_style_package(text: str) -> bool:
    """Whether an inlined ``.sty``/``.cls`` text is a font or style package (``\\NeedsTeXFormat``,
    a dated ``\\ProvidesPackage``, package options, font declarations such as
    ``\\DeclareSymbolFont`` or ``\\font\\x=``) rather than the authors' own macro file: its
    definitions (``apjfonts.sty``'s ``\\def\\AA{..}``, showyourwork's ``\\variable``) are not
    expanded, the converter's own rendering stands."""
    return bool(_STYLE_PACKAGE.search(text))


def find_main_tex(src_dir: str | Path) -> Path:
    """The main ``.tex`` file of an unpacked arXiv source directory (the one with
    ``\\documentclass``; the largest if several). Symlinks are not followed."""
    d = Path(src_dir)
    top = d.resolve()
    cands = []
    for p in sorted(d.rglob("*.tex")):
        if p.is_symlink() or not p.is_file() or not _inside(p.resolve(), top):
            continue
        fh, _ = open_regular(p, "tex", root=top, error=AICError)
        with fh:
            head = fh.read(MAX_MAIN_SCAN_BYTES).decode("utf-8", "replace")
        if re.search(r"^[^%\n]*\\documentclass", head, re.M):
            cands.append(p)
    if not cands:
        raise AICError(f"{d}: no .tex file with \\documentclass")
    return max(cands, key=lambda p: (p.stat().st_size, -len(p.parts)))


# ------------------------------------------------------------------------------------ braces


def brace_map(s: str) -> dict[int, int]:
    """``{`` position -> position of its ``}`` (len(s) when unclosed), ignoring ``\\{``/``\\}``."""
    out: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            out[stack.pop()] = i
        i += 1
    for j in stack:
        out[j] = n
    return out


def _braced(tex: str, open_at: int, bm: dict[int, int] | None = None) -> tuple[str, int]:
    """Content of the brace group whose ``{`` is at ``open_at``, and the index after it (``bm``:
    the string's :func:`brace_map`, else the group is scanned)."""
    if bm is not None:
        end = bm.get(open_at, len(tex))
    else:
        depth, end = 0, len(tex)
        k = open_at
        while k < len(tex):
            ch = tex[k]
            if ch == "\\":
                k += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    end = k
                    break
            k += 1
    return tex[open_at + 1 : end], min(end + 1, len(tex))


_SPACE = " \t\n"


def _skip_space(s: str, i: int) -> int:
    n = len(s)
    nl = 0
    while i < n and s[i] in _SPACE:
        if s[i] == "\n":
            nl += 1
            if nl > 1:  # a blank line ends the argument search (\par)
                break
        i += 1
    return i


_OPT_CHARS = re.compile(r"[{}\]]|\n[ \t]*\n")


def _opt_arg(s: str, i: int) -> tuple[str | None, int]:
    """``[...]`` at ``i`` (after spaces): its content and the index after it, else (None, i).
    Bounded: an ``[`` not closed within ``MAX_OPT_ARG_CHARS`` is no optional argument."""
    j = _skip_space(s, i)
    if j < len(s) and s[j] == "[":
        lim = min(len(s), j + MAX_OPT_ARG_CHARS)
        k = s.find("]", j + 1, lim)
        if k < 0:
            return None, i
        if "{" not in s[j + 1 : k] and "\n" not in s[j + 1 : k]:  # the common case
            return s[j + 1 : k], k + 1
        depth = 0
        for m in _OPT_CHARS.finditer(s, j + 1, lim):
            c = m.group(0)
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == "]":
                if depth <= 0:
                    return s[j + 1 : m.start()], m.end()
            else:  # a blank line
                break
    return None, i


_TOKEN = re.compile(r"\\(?:[A-Za-z@]+|.)|[^\s]", re.S)


def _arg(s: str, i: int, bm: dict[int, int]) -> tuple[str, int]:
    """One undelimited argument at ``i`` (a brace group or a single token)."""
    j = _skip_space(s, i)
    if j >= len(s):
        return "", j
    if s[j] == "{":
        end = bm.get(j, len(s))
        return s[j + 1 : end], min(end + 1, len(s))
    m = _TOKEN.match(s, j)
    return (m.group(0), m.end()) if m else ("", j)


# ------------------------------------------------------------------------------------ macros


@dataclass
class Macro:
    nargs: int
    body: str
    default: str | None = None  # optional first argument's default


_DEFINER = re.compile(
    r"\\(?P<cmd>newcommand|renewcommand|providecommand|DeclareRobustCommand|DeclareMathOperator)\*?\s*"
    r"|\\(?P<def>[egx]?def|let)\s*(?=\\)"
)
_PROTECTED = {  # names whose definitions are not expanded (handled by the converter)
    "cite",
    "citep",
    "citet",
    "ref",
    "eqref",
    "label",
    "section",
    "subsection",
    "begin",
    "end",
    "input",
    "include",
    "item",
    "caption",
    "footnote",
    "emph",
    "textbf",
    "textit",
    "todo",
    "marginpar",
    "added",
    "deleted",
    "replaced",
    "explain",
    "software",
    "facilities",
    "bibliography",
    "bibitem",
}
_PROGRAMMED = re.compile(
    r"\\(?:if[a-z@]*|else|fi|csname|expandafter|@ifnextchar|@ifstar|futurelet|"
    r"afterassignment|loop|repeat|ifthenelse|pdfstrcmp)(?![A-Za-z@])"
)
# \ifmmode A\else B\fi is resolved (A in math); any other TeX programming is not evaluated: the call is dropped
_IFMMODE = re.compile(r"(?:\\relax\s*)?\\ifmmode\b(.*?)\\else\b(.*?)\\fi\b", re.S)
_NOTE_BODY = re.compile(r"\\(?:textcolor|color)\b.*\b[A-Z]{1,4}\s*:", re.S)


def collect_macros(tex: str, where: str = "<tex>") -> tuple[dict[str, Macro], str]:
    """The user macros defined in ``tex`` and ``tex`` without their definitions."""
    bm = brace_map(tex)
    macros: dict[str, Macro] = {}
    out, pos = [], 0
    for m in _DEFINER.finditer(tex):
        if m.start() < pos:
            continue
        i = m.end()
        if m.group("cmd"):
            j = _skip_space(tex, i)
            if j < len(tex) and tex[j] == "{":
                name_tok, i = _braced(tex, j, bm)
                name_tok = name_tok.strip()
            else:
                nm = re.compile(r"\\(?:[A-Za-z@]+|.)").match(tex, j)
                if not nm:
                    continue
                name_tok, i = nm.group(0), nm.end()
            if not re.fullmatch(r"\\[A-Za-z@]+", name_tok):
                continue
            name = name_tok[1:]
            if m.group("cmd") == "DeclareMathOperator":
                body, i = _arg(tex, i, bm)
                mac = Macro(0, "\\operatorname{" + body + "}")
            else:
                n, i2 = _opt_arg(tex, i)
                nargs = int(n) if n and n.strip().isdigit() else 0
                i = i2 if n is not None else i
                default, i3 = _opt_arg(tex, i) if nargs else (None, i)
                i = i3
                body, i = _arg(tex, i, bm)
                mac = Macro(min(nargs, 9), body, default)
            if m.group("cmd") == "providecommand" and name in macros:
                mac = macros[name]
        else:
            nm = re.compile(r"\\([A-Za-z@]+)").match(tex, i)
            if not nm:
                continue
            name, i = nm.group(1), nm.end()
            if m.group("def") == "let":
                tgt = re.compile(r"\s*=?\s*\\([A-Za-z@]+)").match(tex, i)
                if not tgt:
                    continue
                i = tgt.end()
                if tgt.group(1) in macros:
                    macros[name] = macros[tgt.group(1)]
                out.append(tex[pos : m.start()])
                pos = i
                continue
            params = re.compile(r"((?:#\d)*)\s*\{").match(tex, i)
            if not params:  # delimited parameters (\def\x#1.{..}): not supported, left alone
                continue
            i = params.end() - 1
            body, i = _braced(tex, i, bm)
            mac = Macro(len(params.group(1)) // 2, body)
        out.append(tex[pos : m.start()])
        pos = i
        if name in _PROTECTED:
            continue
        if mac.nargs and _NOTE_BODY.search(mac.body):  # an author's margin note: the call is dropped
            mac = Macro(mac.nargs, "", mac.default)
        if len(name) > 1 or name.isalpha():
            macros[name] = mac
    out.append(tex[pos:])
    return macros, "".join(out)


def _substitute(body: str, args: list[str]) -> str:
    """``#1``..``#9`` -> the arguments, ``##`` -> ``#``."""

    def arg(g: re.Match[str]) -> str:
        if g.group(0) == "##":
            return "#"
        k = int(g.group(1))
        return args[k - 1] if 0 < k <= len(args) else ""

    return re.sub(r"##|#(\d)", arg, body)


class MacroExpander:
    """Expands user macros with bounded nesting, count and output size."""

    def __init__(self, macros: dict[str, Macro], where: str = "<tex>") -> None:
        self.macros = macros
        self.where = where
        self.count = 0
        self.chars = 0
        names = sorted(macros, key=len, reverse=True)
        self.pat = re.compile(r"\\(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z@])") if names else None

    def expand(self, s: str, depth: int = 0, math: bool = False) -> str:
        """``s`` with the macros expanded; ``math``: ``s`` starts inside ``$..$`` (a body's
        ``\\ifmmode A\\else B\\fi`` picks A there, and its own ``$`` are dropped)."""
        if self.pat is None or "\\" not in s:
            return s
        if depth > MAX_MACRO_DEPTH:
            raise EprintError(
                f"{self.where}: macros: nesting deeper than {MAX_MACRO_DEPTH} (recursive definition)"
            )
        bm: dict[int, int] | None = None
        out, pos, dollars = [], 0, int(math)
        for m in self.pat.finditer(s):
            if m.start() < pos:
                continue
            mac = self.macros[m.group(1)]
            i = m.end()
            args: list[str] = []
            if mac.nargs:
                if bm is None:
                    bm = brace_map(s)
                k = mac.nargs
                if mac.default is not None:
                    opt, i = _opt_arg(s, i)
                    args.append(mac.default if opt is None else opt)
                    k -= 1
                for _ in range(k):
                    a, i = _arg(s, i, bm)
                    args.append(a)
            seg = s[pos : m.start()]
            dollars += seg.count("$") - seg.count("\\$")
            inmath = bool(dollars % 2)
            body = mac.body
            if "\\ifmmode" in body and len(body) < 10_000:
                body = _IFMMODE.sub(r"\1" if inmath else r"\2", body)
            if _PROGRAMMED.search(body):
                body = ""
            elif args:
                body = _substitute(body, args)
            self.count += 1
            self.chars += len(body)
            if self.count > MAX_EXPANSIONS or self.chars > MAX_EXPANDED_CHARS:
                raise EprintError(
                    f"{self.where}: macros: expansion exceeds {MAX_EXPANSIONS} expansions or "
                    f"{MAX_EXPANDED_CHARS} characters (recursive definition)"
                )
            exp = self.expand(body, depth + 1, inmath)
            if inmath and "$" in exp:  # a text-mode body ($..$ inside) used in math must not close it
                exp = re.sub(r"(?<!\\)\$", "", exp)
            out.append(seg)
            out.append(exp)
            pos = i
        out.append(s[pos:])
        return "".join(out)


# ------------------------------------------------------------------------- .bbl and .aux


def _plain(s: str) -> str:
    return " ".join(_Converter(_Context()).text(s).split())


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


_CITE_KEYS = re.compile(r"\\(?:no)?cite[A-Za-z]*\*?\s*(?:\[[^\]]{0,500}\]\s*){0,2}\{([^{}]*)\}")
_NUMERIC_CLASS = re.compile(r"\\documentclass\s*(?:\[([^\]]*)\])?\s*\{\s*revtex\d")
_KEY_AUTHOR_YEAR = re.compile(
    r"^([A-Za-z][A-Za-z'\-]{1,30}?)(?:[_\-:]?(et_?al|EtAl|Etal|etal)\.?|(\+))?[_\-:]?((?:18|19|20)\d\d)(?!\d)"
)


@dataclass
class _Context:
    cites: dict[str, str | tuple[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # label -> section/appendix/figure/table/equation
    cites_from: str = ""  # "bbl" | "bib" | "inline" | "" (where ``cites`` came from)
    unresolved: int = 0  # citation keys found in no bibliography (counted as converted)
    bare_refs: int = 0  # reference commands written without a number
    _low: tuple[int, int, dict[str, str | tuple[str, str]]] = field(default=(0, 0, {}), repr=False)

    def _lowered(self) -> dict[str, str | tuple[str, str]]:
        if self._low[:2] != (id(self.cites), len(self.cites)):
            self._low = (id(self.cites), len(self.cites), {k.lower(): v for k, v in self.cites.items()})
        return self._low[2]

    authors: dict[str, str] = field(default_factory=dict)  # numeric styles: key -> authors for \citet
    acronyms: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (short, long)
    acro_used: set[str] = field(default_factory=set)

    def define_acronyms(self, tex: str) -> None:
        """``\\acrodef``/``\\acro{key}[short]{long}`` (acronym) and ``\\newacronym{key}{short}{long}``."""
        bm = brace_map(tex)
        for m in re.finditer(r"\\(acrodef|acro|newacronym)\s*(?=[\[{])", tex):
            i = m.end()
            if m.group(1) == "newacronym":
                _, i = _opt_arg(tex, i)
            key, i = _arg(tex, i, bm)
            if m.group(1) == "newacronym":
                short, i = _arg(tex, i, bm)
            else:
                short, i = _opt_arg(tex, i)
            long_, i = _arg(tex, i, bm)
            key = key.strip()
            if key and long_.strip():
                self.acronyms.setdefault(key, (_plain(short or key), _plain(long_)))

    def number_citations(self, body: str) -> None:
        """Numeric style (revtex): the ``.bbl`` entries numbered in its order (apsrev lists them in
        citation order) or, without one, the keys in the order of their first citation."""
        order = (list(self.cites) if self.cites_from != "bib" else []) or list(
            dict.fromkeys(
                k.strip()
                for m in _CITE_KEYS.finditer(body)
                for k in m.group(1).split(",")
                if k.strip() and k.strip() != "*"
            )
        )
        for k in order:
            c = self.cites.get(k) or self.cite(k)
            if isinstance(c, tuple):
                self.authors[k] = c[0]
        if self.cites_from == "bib":  # only the cited keys the .bib holds are numbered
            order = [k for k in order if k.lower() in self._lowered()]
            self.cites_from = "numbered"
        self.cites = {k: str(n) for n, k in enumerate(order, 1)}

    def cite(self, key: str) -> str | tuple[str, str] | None:
        if key in self.cites:
            return self.cites[key]
        if self.cites_from == "bib":  # BibTeX matches keys whatever their case
            low = self._lowered().get(key.lower())
            if low is not None:
                return low
        m = _KEY_AUTHOR_YEAR.match(key)
        if m:
            name = m.group(1)
            etal = " et al." if m.group(2) or m.group(3) else ""
            return (name[:1].upper() + name[1:] + etal, m.group(4))
        return None


# ---------------------------------------------------------------------------- converter

MATH_ENVS = {
    "equation",
    "equation*",
    "align",
    "align*",
    "eqnarray",
    "eqnarray*",
    "gather",
    "gather*",
    "multline",
    "multline*",
    "displaymath",
    "math",
    "flalign",
    "flalign*",
    "alignat",
    "alignat*",
}
_FLOATS = {
    "figure",
    "figure*",
    "table",
    "table*",
    "deluxetable",
    "deluxetable*",
    "sidewaystable",
    "sidewaystable*",
    "sidewaysfigure",
    "sidewaysfigure*",
    "longtable",
    "longtable*",
    "wrapfigure",
    "wraptable",
    "SCfigure",
    "subfigure",
    "minipage",
    "interactive",
}
_SKIP_ENVS = {
    "comment",
    "thebibliography",
    "acknowledgments",
    "acknowledgements",
    "acknowledgment",
    "acknowledgement",
    "tabular",
    "tabular*",
    "tabularx",
    "verbatim",
    "lstlisting",
    "tikzpicture",
    "contribution",
    "facilities",
    "software",
    "references",
    "CJK*",
    "appendix",
    "ruledtabular",
    "acronym",
}
# command -> (optional args, braced args dropped, braced args kept); other unknown commands are
# dropped and their braced argument read as text (\emph{x} -> x)
_DROP_ONE = (
    "label",
    "footnote",
    "footnotetext",
    "thanks",
    "nocite",
    "bibliographystyle",
    "bibliography",
    "software",
    "facilities",
    "facility",
    "marginpar",
    "marginnote",
    "todo",
    "explain",
    "deleted",
    "includegraphics",
    "graphicspath",
    "color",
    "affiliation",
    "altaffiliation",
    "author",
    "email",
    "correspondingauthor",
    "keywords",
    "received",
    "revised",
    "accepted",
    "published",
    "submitjournal",
    "shorttitle",
    "shortauthors",
    "linelabel",
    "phantom",
    "hphantom",
    "vphantom",
    "sout",
    "st",
    "xout",
    "orcidlink",
    "tablenotetext",
    "tablecomments",
    "tablerefs",
    "vspace",
    "hspace",
    "pagestyle",
    "thispagestyle",
    "addbibresource",
    "newlabel",
    "hypersetup",
    "fnm",
    "subcaption",
    "epsscale",
    "plotone",
    "figurenum",
    "title",
    "collaboration",
    "affil",
    "institute",
    "titlerunning",
    "authorrunning",
    "date",
    "pacs",
    "keyword",
    "input",
    "include",
    "usepackage",
    "documentclass",
    "numberwithin",
    "bibinfo",
    "doi",
    "arxiv",
    "urlstyle",
    "fontsize",
    "shortcites",
    "preprint",
    "homepage",
    "bibnote",
    "variable",  # showyourwork: a value computed at build time (not in the e-print)
    "script",
)
_DROP_TWO = ("setcounter", "addtocounter", "setlength", "addtolength", "renewcommand", "newcommand")
_DROP_NONE = (
    "newpage",
    "clearpage",
    "linenumbers",
    "nolinenumbers",
    "startlongtable",
    "tableline",
    "hline",
    "noindent",
    "centering",
    "vfill",
    "hfill",
    "smallskip",
    "medskip",
    "bigskip",
    "appendix",
    "acknowledgments",
    "acknowledgements",
    "maketitle",
    "nocollaboration",
    "xspace",
    "relax",
    "protect",
    "nonumber",
    "notag",
    "ignorespaces",
    "null",
    "leavevmode",
    "sloppy",
    "raggedright",
    "raggedleft",
    "flushbottom",
    "selectfont",
    "allowbreak",
    "nobreak",
    "unskip",
    "bf",
    "it",
    "rm",
    "sc",
    "sl",
    "sf",
    "tt",
    "em",
    "small",
    "footnotesize",
    "scriptsize",
    "tiny",
    "large",
    "Large",
    "LARGE",
    "huge",
    "normalsize",
    "bfseries",
    "itshape",
    "upshape",
    "mdseries",
    "normalfont",
    "makeatletter",
    "makeatother",
    "tableofcontents",
    "onecolumngrid",
    "twocolumngrid",
    "FloatBarrier",
    "vskip",
    "hskip",
    "bigskip",
    "break",
    "frenchspacing",
)
_ARGS: dict[str, tuple[int, int, int]] = {
    **{c: (1, 1, 0) for c in _DROP_ONE},
    **{c: (1, 2, 0) for c in _DROP_TWO},
    **{c: (0, 0, 0) for c in _DROP_NONE},
    "added": (1, 0, 1),
    "replaced": (1, 1, 1),
    "textcolor": (1, 1, 1),
    "colorbox": (0, 1, 1),
    "href": (0, 1, 1),
    "hypertarget": (0, 1, 1),
    "hyperref": (1, 0, 1),
    "dataset": (1, 0, 1),
}
_BREAKS = {"par": "\n\n", "newline": " ", "linebreak": " ", "quad": " ", "qquad": " "}
_WORDS = {
    "etal": "et al.",
    "ldots": "...",
    "dots": "...",
    "textellipsis": "...",
    "LaTeX": "LaTeX",
    "TeX": "TeX",
    "AA": "Å",
    "aa": "å",
    "ss": "ß",
    "o": "ø",
    "O": "Ø",
    "ae": "æ",
    "AE": "Æ",
    "l": "ł",
    "L": "Ł",
    "i": "ı",
    "deg": "°",
    "degree": "°",
    "textdegree": "°",
    "arcsec": "″",
    "arcmin": "′",
    "farcs": "″",
    "farcm": "′",
    "fdg": "°",
    "micron": "μm",
    "sun": "☉",
    "earth": "⊕",
    "kms": "km s⁻¹",
    "textasciitilde": "~",
    "textbackslash": "\\",
    "textbar": "|",
    "textless": "<",
    "textgreater": ">",
    "textendash": "–",
    "textemdash": "—",
    "textquoteright": "'",
    "textquoteleft": "'",
    "S": "Section",
    "P": "¶",
    "copyright": "©",
    "sim": "~",
    "approx": "≈",
    "pm": "±",
    "times": "×",
    "lesssim": "≲",
    "gtrsim": "≳",
    "odot": "⊙",
    "le": "≤",
    "ge": "≥",
    "leq": "≤",
    "geq": "≥",
    "percent": "%",
    "textregistered": "®",
    "dag": "†",
    "ddag": "‡",
}
_ACCENTS = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    "=": "\u0304",
    ".": "\u0307",
    "c": "\u0327",
    "v": "\u030c",
    "u": "\u0306",
    "H": "\u030b",
    "k": "\u0328",
    "r": "\u030a",
}
_SYMBOLS = {
    "%": "%",
    "&": "&",
    "#": "#",
    "_": "_",
    "$": "$",
    "{": "{",
    "}": "}",
    ",": " ",
    ";": " ",
    ":": " ",
    " ": " ",
    "\n": " ",
    "\t": " ",
    "!": "",
    "-": "",
    "/": "",
    "@": "",
    "\\": " ",
}
_CITE = re.compile(
    r"(?:[Cc]ite|[Cc]ite[tp]|[Cc]itealt|[Cc]itealp|citeauthor|[Cc]iteauthor|citeyear|citeyearpar|"
    r"citenum|citetext|parencite|textcite|autocite|Textcite|Parencite|citeads[tp]?|citen)\*?"
)
_REFS = {"ref", "autoref", "cref", "Cref", "eqref", "pageref", "vref", "Autoref", "nameref", "subref", "Sref"}
_REF_WORD = re.compile(
    r"(?:Sections?|Sects?\.|Secs?\.|§|Figures?|Figs?\.|Tables?|Tabs?\.|Eqs?\.|Equations?|"
    r"Eqns?\.|Appendi(?:x|ces)|App\.|Chapters?|Panels?|panels?|Lines?|Steps?|Algorithms?|"
    r"Models?|Cases?|Items?|Paper|Notes?|Theorems?|Lemmas?)\s*\(?$"
)
_REF_JOIN = re.compile(r"(?:,|\band\b|\bor\b|--|–|-|&)\s*$")
_REF_JOIN_OPEN = re.compile(r"(?:,|\band\b|\bor\b|--|–|-|&)\s*\(?$")  # "Eqs. (1) and (\ref{b})"
_BETWEEN_REFS = re.compile(r"(?:[\s(),]|\band\b|\bor\b|--|–|-|&)*")
_TEXTUAL = re.compile(
    r"\b(?:by|in|of|see|and|from|with|to|also|as|than|cf\.|e\.g\.,?|i\.e\.,?|like|including|"
    r"on|for|following)\s*$",
    re.I,
)
# acronym / glossaries commands -> (form, plural); "ac": the full form on first use, then short
_ACRO: dict[str, tuple[str, bool]] = {
    "ac": ("ac", False),
    "acp": ("ac", True),
    "Ac": ("ac", False),
    "Acp": ("ac", True),
    "acs": ("short", False),
    "acsp": ("short", True),
    "acl": ("long", False),
    "aclp": ("long", True),
    "Acl": ("long", False),
    "Aclp": ("long", True),
    "acf": ("full", False),
    "acfp": ("full", True),
    "Acf": ("full", False),
    "Acfp": ("full", True),
    "gls": ("ac", False),
    "glspl": ("ac", True),
    "Gls": ("ac", False),
    "Glspl": ("ac", True),
    "acrshort": ("short", False),
    "acrlong": ("long", False),
    "acrfull": ("full", False),
    "acused": ("", False),
    "acresetall": ("", False),
    "acrodef": ("", False),
    "acro": ("", False),
    "newacronym": ("", False),
}
_TYPED_REFS = {"cref", "Cref", "autoref", "Autoref", "vref", "Sref"}  # print the type word themselves
_PLURAL = {
    "Section": "Sections",
    "Appendix": "Appendices",
    "Figure": "Figures",
    "Table": "Tables",
    "Eq.": "Eqs.",
}
_ABBREV_END = re.compile(r"\b(?:e\.g|i\.e|cf|vs|al|Refs?|Secs?|Eqs?|Figs?)\.,?\s*$")
_PREFIX_WORD = (
    ("fig", "Figure"),
    ("tab", "Table"),
    ("eq", "Eq."),
    ("app", "Appendix"),
    ("sec", "Section"),
    ("s:", "Section"),
    ("ss", "Section"),
    ("alg", "Algorithm"),
)
MATH_OPEN, MATH_CLOSE = "\ue000", "\ue001"  # internal markers around math (removed in the output)


class _Converter:
    """One left-to-right pass from LaTeX to text (math kept verbatim). Linear in the input."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.captions: list[str] = []
        self.last_ref_empty = False
        self.last_ref_numbered = False  # "Figures \ref{a} and \ref{b}": the second one is a number only
        self.last_ref_word = ""
        self.depth = 0

    def text(self, s: str) -> str:
        self.out: list[str] = []
        self._run(re.sub("[\ue000-\ue002]", "", s))
        return "".join(self.out)

    # -- helpers
    def _tail(self, n: int = 40) -> str:
        t = ""
        for piece in reversed(self.out):
            t = piece + t
            if len(t) >= n:
                break
        return t[-n:]

    def _drop_tail(self, k: int) -> None:
        """Remove the last ``k`` characters of the output."""
        while k > 0 and self.out:
            last = self.out.pop()
            if len(last) > k:
                self.out.append(last[:-k])
            k -= len(last)

    def _emit_math(self, m: str) -> None:
        m = re.sub(r"\\(?:label|tag)\s*\{[^{}]*\}|\\nonumber\b|\\notag\b", "", m)
        self.out.append(MATH_OPEN + m + MATH_CLOSE)

    def _at_line_start(self) -> bool:
        t = self._tail(2)
        return t == "" or t.endswith("\n")

    # -- main loop
    def _run(self, s: str) -> None:
        bm = brace_map(s)
        n = len(s)
        i = 0
        special = re.compile(r"[\\${}~]")
        while i < n:
            m = special.search(s, i)
            j = m.start() if m else n
            if j > i:
                self.out.append(_plain_chunk(s[i:j]))
                self.last_ref_empty = self.last_ref_empty and bool(_REF_JOIN.fullmatch(s[i:j].strip() + " "))
                self.last_ref_numbered = self.last_ref_numbered and bool(_BETWEEN_REFS.fullmatch(s[i:j]))
            if j >= n:
                break
            c = s[j]
            if c in "{}":
                i = j + 1
            elif c == "~":
                self.out.append(" ")
                i = j + 1
            elif c == "$":
                if s.startswith("$$", j):
                    e = s.find("$$", j + 2)
                    e = n if e < 0 else e + 2
                else:
                    e = j + 1
                    while True:
                        e = s.find("$", e)
                        if e < 0:
                            e = n
                            break
                        if s[e - 1] != "\\":
                            e += 1
                            break
                        e += 1
                self._emit_math(s[j:e])
                i = e
            else:
                i = self._command(s, j, bm)

    def _command(self, s: str, j: int, bm: dict[int, int]) -> int:
        n = len(s)
        if j + 1 >= n:
            return n
        nxt = s[j + 1]
        if not (nxt.isalpha() or nxt == "@"):
            if nxt in "([":
                close = "\\)" if nxt == "(" else "\\]"
                e = s.find(close, j + 2)
                e = n if e < 0 else e + 2
                self._emit_math(s[j:e])
                return e
            if nxt in _ACCENTS:
                a, e = _arg(s, j + 2, bm)
                a = a.replace("\\i", "i").replace("\\j", "j").strip("{}")
                if a:
                    self.out.append(unicodedata.normalize("NFC", a[0] + _ACCENTS[nxt] + a[1:]))
                return e
            self.out.append(_SYMBOLS.get(nxt, ""))
            return j + 2
        m = re.compile(r"[A-Za-z@]+\*?").match(s, j + 1)
        assert m is not None
        name = m.group(0)
        i = m.end()
        base = name.rstrip("*")
        if base == "begin":
            return self._begin(s, i, bm)
        if base == "end":
            _, e = _arg(s, i, bm)
            return e
        if _CITE.fullmatch(name):
            return self._cite(s, name, i, bm)
        if base in _REFS:
            return self._ref(s, base, i, bm)
        if base in _ACRO:
            return self._acronym(s, name, i, bm)
        if base in ("section", "subsection", "subsubsection", "paragraph", "subparagraph"):
            _, i = _opt_arg(s, i)
            title, i = _arg(s, i, bm)
            t = " ".join(self._sub(title).split())
            self.out.append(f"\n\n{t}\n\n" if base != "paragraph" and base != "subparagraph" else f"\n\n{t} ")
            return i
        if base == "caption":
            _, i = _opt_arg(s, i)
            cap, i = _arg(s, i, bm)
            self.captions.append(" ".join(self._sub(cap).split()))
            return i
        if base == "ensuremath":
            a, i = _arg(s, i, bm)
            self._emit_math("$" + a + "$")
            return i
        if base == "item":
            _, i = _opt_arg(s, i)
            self.out.append("\n- ")
            return i
        if base == "ion":  # \ion{Fe}{ii}
            el, i = _arg(s, i, bm)
            st, i = _arg(s, i, bm)
            self.out.append(f"{self._sub(el)} {self._sub(st)}")
            return i
        if base in ("textsuperscript", "textsubscript"):
            a, i = _arg(s, i, bm)
            self._emit_math(("$^{" if base == "textsuperscript" else "$_{") + a + "}$")
            return i
        if base in _BREAKS:
            self.out.append(_BREAKS[base])
            return i
        if base in _ARGS:
            n_opt, n_drop, n_keep = _ARGS[base]
            for _ in range(n_opt):
                _, i = _opt_arg(s, i)
            for _ in range(n_drop):
                _, i = _arg(s, i, bm)
            for _ in range(n_keep):
                a, i = _arg(s, i, bm)
                self.out.append(self._sub(a))
            if not n_keep and self._at_line_start():  # a line holding only \label{..} is no line at all
                k = i
                while k < n and s[k] in " \t":
                    k += 1
                if k < n and s[k] == "\n" and not s.startswith("\n\n", k):
                    i = k + 1
            return i
        if base in _WORDS:
            self.out.append(_WORDS[base])
            return i
        return i  # unknown command: dropped, its braced argument (if any) read as text

    def _sub(self, s: str) -> str:
        """Convert a fragment with the same context (captions and notes go to this converter)."""
        if self.depth >= MAX_GROUP_DEPTH:  # nested arguments deeper than any paper: text only
            return re.sub(r"\\[A-Za-z@]+\*?|[{}$]", " ", s)
        saved, self.out = self.out, []
        self.depth += 1
        self._run(s)
        self.depth -= 1
        res = "".join(self.out)
        self.out = saved
        return res

    def _begin(self, s: str, i: int, bm: dict[int, int]) -> int:
        env, k = _arg(s, i, bm)
        env = env.strip()
        end_tok = "\\end{" + env + "}"
        if env in MATH_ENVS:
            e = s.find(end_tok, k)
            e = len(s) if e < 0 else e + len(end_tok)
            self.out.append(" ")
            self._emit_math("\\begin{" + env + "}" + s[k:e][: -len(end_tok) or None] + end_tok)
            self.out.append(" ")
            return e
        if env in _FLOATS or env in _SKIP_ENVS:
            e = s.find(end_tok, k)
            body = s[k:] if e < 0 else s[k:e]
            if env in _FLOATS and "\\caption" in body:
                fbm = brace_map(body)
                for cm in re.finditer(r"\\caption\s*", body):
                    _, p = _opt_arg(body, cm.end())
                    if p < len(body) and body[p] == "{":
                        cap, _ = _braced(body, p, fbm)
                        self.captions.append(" ".join(_Converter(self.ctx).text(cap).split()))
            e = len(s) if e < 0 else e + len(end_tok)
            if self._at_line_start() and s.startswith("\n", e) and not s.startswith("\n\n", e):
                e += 1
            return e
        # a list or other environment: its content is text; drop the begin and its arguments
        _, k = _opt_arg(s, k)
        if env in ("itemize", "enumerate", "description"):
            self.out.append("\n")
        return k

    def _cite(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        pre, i = _opt_arg(s, i)
        post, i = _opt_arg(s, i)
        if post is None:
            pre, post = None, pre
        keys_s, i = _arg(s, i, bm)
        keys = [k.strip() for k in keys_s.split(",") if k.strip()]
        pre = " ".join(self._sub(pre).split()) if pre else ""
        post = " ".join(self._sub(post).split()) if post else ""
        found = [c for c in (self.ctx.cite(k) for k in keys) if c is not None]
        self.ctx.unresolved += len(keys) - len(found)
        base = name.rstrip("*").lower()
        ay = [c for c in found if isinstance(c, tuple)]
        nums = [c for c in found if isinstance(c, str)]
        if nums and not ay and base not in ("citeauthor", "citeyear", "citeyearpar"):
            ref = "[" + ", ".join(nums) + "]"
            if base in ("citet", "textcite"):  # numeric \citet: "Smith et al. [3]", else "Ref. [3]"
                named = [(self.ctx.authors.get(k), self.ctx.cites[k]) for k in keys if k in self.ctx.cites]
                if all(a for a, _ in named):
                    ref = ", ".join(f"{a} [{n}]" for a, n in named)
                elif not re.search(r"\bRef(?:erence)?s?\.?\s*$", self._tail(20)):
                    ref = ("Refs. " if len(nums) > 1 else "Ref. ") + ref
            self.out.append(ref)
            return i
        textual = base in ("citet", "textcite") or (base == "cite" and not nums and bool(ay))
        if base in ("citeauthor",):
            names = [a for a, _ in ay] or [self.ctx.authors[k] for k in keys if k in self.ctx.authors]
            self.out.append(", ".join(names) if names else "the authors")
            return i
        if base in ("citeyear", "citeyearpar"):
            ys = ", ".join(y for _, y in ay)
            self.out.append((f"({ys})" if base == "citeyearpar" else ys) if ys else "")
            return i
        if not ay:
            if nums:
                self.out.append("[" + ", ".join(nums) + "]")
                return i
            # neutral: keep a textual citation's place in the sentence, drop a parenthetical one
            tail = self._tail(20)
            if base in ("citet", "textcite", "citealt", "citealp", "citeads", "citeadst") or _TEXTUAL.search(
                tail
            ):
                word = "previous work"
                if not tail.strip() or (re.search(r"[.!?]\s*$", tail) and not _ABBREV_END.search(tail)):
                    word = "Previous work"
                self.out.append(word)
            return i
        if textual:
            parts = [f"{a} ({y})" for a, y in ay]
            if post:
                a, y = ay[-1]
                parts[-1] = f"{a} ({y}, {post})"
            self.out.append((pre + " " if pre else "") + ", ".join(parts))
            return i
        inner = "; ".join(f"{a} {y}" for a, y in ay)
        inner = (pre + " " if pre else "") + inner + (", " + post if post else "")
        if base in ("citealt", "citealp"):
            self.out.append(inner)
        else:
            self.out.append("(" + inner + ")")
        return i

    def _acronym(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        """acronym/glossaries use: the first one reads "long (short)", later ones the short form."""
        base = name.rstrip("*")
        if base == "acresetall":
            self.ctx.acro_used.clear()
            return i
        _, i = _opt_arg(s, i)
        key, i = _arg(s, i, bm)
        key = key.strip()
        if base in ("acrodef", "acro"):  # a definition in the body: no text
            _, i = _opt_arg(s, i)
            return _arg(s, i, bm)[1]
        if base == "newacronym":
            return _arg(s, _arg(s, i, bm)[1], bm)[1]
        if base == "acused":
            self.ctx.acro_used.add(key)
            return i
        short, long_ = self.ctx.acronyms.get(key, (key, key))
        form, plural = _ACRO[base]
        if key not in self.ctx.acronyms:  # defined where we cannot see it: the key is the short form
            form = "short"
        elif form == "ac":
            form = "short" if key in self.ctx.acro_used else "full"
        if form == "full" and not name.endswith("*"):
            self.ctx.acro_used.add(key)
        pl = "s" if plural else ""
        text = {"short": short + pl, "long": long_ + pl, "full": f"{long_}{pl} ({short}{pl})"}[form]
        if base[:1].isupper() and text:
            text = text[0].upper() + text[1:]
        self.out.append(text)
        return i

    def _ref(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        key, i = _arg(s, i, bm)
        keys = [k.strip() for k in key.split(",") if k.strip()] or [""]
        tail = self._tail(30)
        nums = [self.ctx.labels[k] for k in keys if k in self.ctx.labels]
        after_word = bool(_REF_WORD.search(tail))
        after_ref = self.last_ref_empty and bool(_REF_JOIN.search(tail))
        word = "Section"
        low = keys[0].lower()
        for pre, w in _PREFIX_WORD:
            if low.startswith(pre):
                word = w
                break
        kind = next((self.ctx.kinds[k] for k in keys if k in self.ctx.kinds), "")
        word = KIND_WORD.get(kind, word)  # the counter's kind, where known, over the label's spelling
        if name == "eqref":
            word = "Eq."
        if nums:
            paren = name == "eqref" or (word == "Eq." and name in _TYPED_REFS)
            parts = [f"({x})" if paren else x for x in nums]
            num = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            if len(parts) > 1:
                word = _PLURAL.get(word, word)
            sep = "" if tail.endswith((" ", "(")) else " "
            after_num = (
                self.last_ref_numbered
                and self.last_ref_word == word
                and bool(_REF_JOIN_OPEN.search(tail))
                and name not in _TYPED_REFS
            )
            bare_num = after_word or after_num or name == "pageref"
            self.out.append(sep + num if bare_num else f"{word} {num}")
            self.last_ref_empty = False
            self.last_ref_numbered, self.last_ref_word = True, word
            return i
        self.ctx.bare_refs += 1
        if after_ref:  # "Figs. \ref{a} and \ref{b}" without numbers: drop the joiner too
            j = _REF_JOIN.search(tail)
            self._drop_tail(len(tail) - j.start() if j else 0)
            self.out.append(" ")
        elif not after_word:
            self.out.append(word)
        self.last_ref_empty = True
        self.last_ref_numbered = False
        return i


def _plain_chunk(t: str) -> str:
    if "-" in t or "`" in t or "'" in t:
        t = t.replace("---", "—").replace("--", "–").replace("``", '"').replace("''", '"')
    return t


# ------------------------------------------------------------------------------- tidy text

_MARKED = re.compile(MATH_OPEN + "[^" + MATH_CLOSE + "]*" + MATH_CLOSE)
_HOLE = "\ue002"  # where a math span was while the prose is tidied


def _tidy_prose(t: str) -> str:
    t = re.sub(r"[ \t\u00a0]+", " ", t)
    t = re.sub(r" +([.,;:!?)\]])", r"\1", t)
    t = re.sub(r"([(\[]) +", r"\1", t)
    t = re.sub(r"\(\s*[,;]?\s*\)|\[\s*\]", "", t)
    t = re.sub(r"\(\s*(?:e\.g\.|i\.e\.|see|cf\.)[,;]?\s*\)", "", t)
    t = re.sub(r"\(\s*[,;]\s*", "(", t)
    t = re.sub(r"\s*[,;]\s*\)", ")", t)
    t = re.sub(r",\s*,", ",", t)
    t = re.sub(r"\.\s*\.(?!\.)", ".", t)
    return re.sub(r" {2,}", " ", t)


def tidy_paragraphs(text: str) -> str:
    """Join each paragraph's lines (list items stay on their own lines), then tidy punctuation
    outside math (math spans are set aside while the prose is tidied)."""
    paras = []
    for p in re.split(r"\n[ \t]*\n", text):
        lines = [ln.strip() for ln in p.split("\n") if ln.strip()]
        if not lines:
            continue
        joined: list[str] = []
        for ln in lines:
            if ln.startswith("- ") or not joined:
                joined.append(ln)
            else:
                joined[-1] += " " + ln
        para = "\n".join(joined)
        maths = [m.group(0)[1:-1] for m in _MARKED.finditer(para)]
        para = _tidy_prose(_MARKED.sub(_HOLE, para).replace(MATH_OPEN, "").replace(MATH_CLOSE, ""))
        if maths:
            parts = para.split(_HOLE)
            para = parts[0] + "".join(m + rest for m, rest in zip(maths, parts[1:], strict=False))
        para = para.strip()
        if para and para != "-":
            paras.append(para)
    return "\n\n".join(paras)


def latex_to_text(tex: str, ctx: _Context | None = None) -> str:
    """LaTeX fragment -> paragraphs of text; floats' captions appended as "Caption: ..."."""
    conv = _Converter(ctx or _Context())
    body = conv.text(tex)
    caps = "".join(f"\n\nCaption: {c}" for c in conv.captions if c)
    return tidy_paragraphs(body + caps)


def clean_latex(tex: str) -> str:
    """LaTeX -> text without a paper context (no .bbl/.aux): see :func:`latex_to_text`."""
    return latex_to_text(tex)


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
    ctx.define_acronyms(tex)
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
