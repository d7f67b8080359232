"""LaTeX route, step 1: an e-print's source tree -> one text (inputs inlined, comments dropped).

``\\input``/``\\include``/``\\subfile`` and local ``\\usepackage{x}`` (``x.sty`` in the source tree) are
inlined, except font or style packages (:func:`is_style_package`). An e-print is untrusted: an
absolute path, a ``..`` that leaves the source directory, a symlink that points outside it, nesting
deeper than ``MAX_INPUT_DEPTH``, more than ``MAX_INPUT_FILES`` file reads or ``MAX_SOURCE_CHARS``
characters are refused with :class:`EprintError`. See :mod:`astrollama.data.aic.latex`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from astrollama.data.aic.rules import AICError
from astrollama.untrusted import open_regular, read_bytes

MAX_INPUT_DEPTH = 8
MAX_INPUT_FILES = 256
MAX_SOURCE_CHARS = 8_000_000
MAX_MAIN_SCAN_BYTES = 1 << 20  # bytes of each .tex read to find \documentclass


class EprintError(AICError):
    """A hostile or oversized e-print (path escape, expansion bomb): the paper fails."""


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
