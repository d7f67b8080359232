"""LaTeX route, step 3: the paper's own macros (``\\newcommand``/``\\renewcommand``/
``\\providecommand``, ``\\def``, ``\\let``, ``\\DeclareMathOperator``) collected and expanded, in math
too, with bounded nesting (``MAX_MACRO_DEPTH``), count (``MAX_EXPANSIONS``) and output size
(``MAX_EXPANDED_CHARS``): a recursive ``\\def`` bomb is refused (:class:`EprintError`), not run."""

from __future__ import annotations

import re
from dataclasses import dataclass

from astrollama.data.aic.latex_args import _arg, _braced, _opt_arg, _skip_space, brace_map
from astrollama.data.aic.latex_inputs import EprintError

MAX_MACRO_DEPTH = 32
MAX_EXPANSIONS = 200_000
MAX_EXPANDED_CHARS = 16_000_000


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
