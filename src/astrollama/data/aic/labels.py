"""``\\label`` numbers counted from the LaTeX source, for e-prints that ship no ``.aux``.

:func:`count_labels` walks the document body once, in order, and does what LaTeX's counters do:
every numbered thing (section, subsection, subsubsection, equation or equation row, figure or
table caption, ``enumerate`` item) becomes the current label value, and a ``\\label{key}`` takes
the current value, so a label after a starred (unnumbered) heading keeps the previous value, as
in LaTeX. The numbering follows the document class (:func:`scheme_for`), checked against the class
files: ``article`` and unknown classes use LaTeX's defaults (``3``, ``3.1``; appendix ``A``,
``A.1``; equations, figures and tables numbered on through the appendix); AASTeX
(``aastex*.cls``) letters appendix sections and numbers their equations ``A1``, ``A2``, ``B3``
(reset once, at ``\\appendix``), figures and tables go on, unless
``\\restartappendixnumbering``/``\\apptablenumbers`` restart all three in each appendix section
(``B1``); ``emulateapj`` restarts the equations in each appendix section, and the floats too with
its ``appendixfloats`` option; ``mnras`` writes appendix subsections ``A1`` and numbers
equations, figures and tables ``A1`` within each appendix section; ``aa`` numbers them ``A.1``; ``revtex`` numbers sections
with Roman numerals (``II``), subsections with letters (referenced as ``II A``, ``II A 1``),
tables with Roman numerals (``Table I``), appendix subsections ``A 1`` and appendix equations
``A1`` (``revtex4-2.cls``). ``\\numberwithin{equation}{section}`` (amsmath) or the ``eqsecnum``
class option give ``3.2``. Equations: ``equation``, ``multline`` and ``eqnarray``/``align``/
``gather``/``flalign``/``alignat`` rows (``\\\\`` outside an inner ``split``/``aligned``/``cases``/
``array``/matrix), minus ``\\nonumber``/``\\notag``; ``\\tag{x}`` gives ``x``; ``subequations``
number ``2a``, ``2b``. Figures/tables take their number at ``\\caption``/``\\tablecaption``/
``\\captionof``; ``deluxetable`` at its start (AASTeX numbers it with or without a caption); a
``\\caption`` in a ``subfigure``/``subtable`` (subcaption) gives ``3a``, ``3b``.
Each label also gets its kind (section, appendix, figure, table, equation, item), which
``\\cref``/``\\autoref`` print as the word before the number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ROMAN = (
    (1000, "M"),
    (900, "CM"),
    (500, "D"),
    (400, "CD"),
    (100, "C"),
    (90, "XC"),
    (50, "L"),
    (40, "XL"),
    (10, "X"),
    (9, "IX"),
    (5, "V"),
    (4, "IV"),
    (1, "I"),
)


def roman(n: int) -> str:
    """``n`` in upper-case Roman numerals (``0`` for n <= 0)."""
    if n <= 0:
        return "0"
    out = []
    for v, s in _ROMAN:
        while n >= v:
            out.append(s)
            n -= v
    return "".join(out)


def alph(n: int) -> str:
    """``1`` -> ``A`` .. ``26`` -> ``Z``, then ``AA`` (LaTeX stops at Z; beyond it we go on)."""
    s = ""
    while n > 0:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s or "0"


@dataclass(frozen=True)
class Scheme:
    """How a document class prints its counters (see the module doc)."""

    name: str
    section_roman: bool = False  # revtex: I, II
    subsection_alph: bool = False  # revtex: A, B (referenced as "II A")
    table_roman: bool = False  # revtex: Table I
    app_sub_sep: str = "."  # appendix subsection: "A.1" ("" in mnras: "A1")
    app_eq: str | None = None  # appendix equations: None = go on (article), "" = A1, "." = A.1
    app_floats: str | None = None  # appendix figures/tables: None = go on, "" = A1, "." = A.1
    app_eq_per_section: bool = True  # appendix equations restart in each appendix section


_SCHEMES = {
    "article": Scheme("article"),
    "aastex": Scheme("aastex", app_eq=""),
    "mnras": Scheme("mnras", app_sub_sep="", app_eq="", app_floats=""),
    "aa": Scheme("aa", app_eq=".", app_floats="."),
    "revtex": Scheme("revtex", section_roman=True, subsection_alph=True, table_roman=True, app_eq=""),
}
_DOCCLASS = re.compile(r"\\documentclass\s*(?:\[([^\]]*)\])?\s*\{\s*([^}\s]+)\s*\}")


def scheme_for(tex: str) -> Scheme:
    """The numbering scheme of the document's class (the first uncommented ``\\documentclass``)."""
    m = _DOCCLASS.search(tex)
    cls = m.group(2).lower() if m else ""
    opts = {o.strip() for o in (m.group(1) or "").split(",")} if m else set()
    if cls.startswith("emulateapj"):  # \appendix redefines \section to reset the equations
        base = Scheme("emulateapj", app_eq="", app_floats="" if "appendixfloats" in opts else None)
    elif cls.startswith("aastex"):  # equations reset once, at \appendix: A1, A2, B3
        base = Scheme("aastex", app_eq="", app_eq_per_section=False)
    elif cls.startswith(("mnras", "mn2e")):
        base = _SCHEMES["mnras"]
    elif cls == "aa":
        base = _SCHEMES["aa"]
    elif cls.startswith("revtex"):
        base = _SCHEMES["revtex"]
    else:
        base = _SCHEMES["article"]
    if base.name == "aastex" and re.search(r"\\(?:restartappendixnumbering|apptablenumbers)\b", tex):
        base = Scheme("aastex", app_eq="", app_floats="")  # \resetapptablenumbers at every \section
    return base


def equations_by_section(tex: str) -> bool:
    """``\\numberwithin{equation}{section}`` (amsmath) or the ``eqsecnum`` class option (revtex,
    AASTeX): equations numbered ``3.2``."""
    m = _DOCCLASS.search(tex)
    opts = {o.strip() for o in (m.group(1) or "").split(",")} if m else set()
    return "eqsecnum" in opts or bool(re.search(r"\\numberwithin\s*\{equation\}\s*\{section\}", tex))


MAX_ENV_DEPTH = 64  # open environments tracked (keeps every event O(1) on hostile input)
_FIGURE_ENVS = {"figure", "figure*", "sidewaysfigure", "sidewaysfigure*", "wrapfigure", "SCfigure"}
_TABLE_ENVS = {"table", "table*", "sidewaystable", "sidewaystable*", "longtable", "longtable*", "wraptable"}
_DELUXE = {"deluxetable", "deluxetable*"}
_SUB = {"subfigure", "subtable"}  # subcaption: a \caption there is "3a" (\p@subfigure is \thefigure)
_ONE_NUMBER = {"equation", "multline"}
_ROWS = {"eqnarray", "align", "gather", "flalign", "alignat"}
_INNER = {
    "split",
    "aligned",
    "alignedat",
    "gathered",
    "cases",
    "array",
    "matrix",
    "pmatrix",
    "bmatrix",
    "vmatrix",
    "Vmatrix",
    "Bmatrix",
    "smallmatrix",
    "subarray",
    "tabular",
}
_EVENT = re.compile(
    r"\\(?P<sec>section|subsection|subsubsection)\s*(?P<star>\*)?"
    r"|\\(?P<app>appendix)(?![A-Za-z@])"
    r"|\\label\s*\{(?P<label>[^{}]*)\}"
    r"|\\(?P<cap>caption|tablecaption|captionof)(?![A-Za-z@])\s*(?:\{(?P<capof>figure|table)\})?"
    r"|\\(?P<be>begin|end)\s*\{(?P<env>[^{}]*)\}"
    r"|\\tag\*?\s*\{(?P<tag>[^{}]*)\}"
    r"|\\(?P<nonum>nonumber|notag)(?![A-Za-z@])"
    r"|\\(?P<item>item)(?![A-Za-z@])"
    r"|(?P<row>\\\\)"
    r"|\\(?:[A-Za-z@]+|.)"
)


class _Counter:
    def __init__(self, scheme: Scheme, eq_in_section: bool) -> None:
        self.s = scheme
        self.eq_in_section = eq_in_section
        self.sec = self.sub = self.subsub = 0
        self.eq = self.fig = self.tab = 0
        self.appendix = False
        self.current: tuple[str, str] = ("", "")  # (kind, number) of the last numbered thing
        self.labels: dict[str, tuple[str, str]] = {}

    def section_number(self) -> str:
        if self.appendix:
            return alph(self.sec)
        return roman(self.sec) if self.s.section_roman else str(self.sec)

    def heading(self, level: str) -> None:
        if level == "section":
            self.sec += 1
            self.sub = self.subsub = 0
            if self.eq_in_section or (
                self.appendix and self.s.app_eq is not None and self.s.app_eq_per_section
            ):
                self.eq = 0
            if self.appendix and self.s.app_floats is not None:
                self.fig = self.tab = 0
            kind = "appendix" if self.appendix else "section"
            self.current = (kind, self.section_number())
            return
        if level == "subsection":
            self.sub += 1
            self.subsub = 0
            num = self.subsection_number()
        else:
            self.subsub += 1
            if self.s.subsection_alph:  # revtex: "II A 1", appendix "A 1 a"
                num = f"{self.subsection_number()} {chr(96 + self.subsub) if self.appendix else self.subsub}"
            else:
                num = f"{self.subsection_number()}.{self.subsub}"
        self.current = ("appendix" if self.appendix else "section", num)

    def subsection_number(self) -> str:
        sec = self.section_number()
        if self.s.subsection_alph:  # revtex4-2.cls: \p@subsection is "\thesection\,"; appendix: "A 1"
            return f"{sec} {self.sub}" if self.appendix else f"{sec} {alph(self.sub)}"
        if self.appendix:
            return f"{sec}{self.s.app_sub_sep}{self.sub}"
        return f"{sec}.{self.sub}"

    def equation(self) -> str:
        self.eq += 1
        if self.appendix and self.s.app_eq is not None:
            return f"{self.section_number()}{self.s.app_eq}{self.eq}"
        if self.eq_in_section:  # revtex/AASTeX eqsecnum: "\arabic{section}." even with Roman sections
            sec = str(self.sec) if (self.s.section_roman and not self.appendix) else self.section_number()
            return f"{sec}.{self.eq}"
        return str(self.eq)

    def float_(self, kind: str) -> None:
        if kind == "figure":
            self.fig += 1
            n = self.fig
        else:
            self.tab += 1
            n = self.tab
        num = roman(n) if (kind == "table" and self.s.table_roman) else str(n)
        if self.appendix and self.s.app_floats is not None:
            num = f"{self.section_number()}{self.s.app_floats}{num}"
        self.current = (kind, num)


def count_labels(body: str, scheme: Scheme, *, eq_in_section: bool = False) -> dict[str, tuple[str, str]]:
    """Label -> (kind, number) counted over ``body`` (comments stripped, macros expanded).

    Linear in the body: one regular-expression pass; the first definition of a label wins."""
    c = _Counter(scheme, eq_in_section)
    envs: list[str] = []  # open environments that matter here
    row_labels: list[str] = []  # labels of the current equation row
    row_numbered = False  # the current row took a number that \nonumber/\tag may take back
    row_start = 0
    sub_parent: str | None = None  # subequations: the parent number
    sub_n = 0
    items: list[int] = []
    float_captioned, sub_caps = False, 0  # the open float: its own caption seen, its sub-captions

    def in_math() -> str | None:
        for e in reversed(envs):
            if e in _ONE_NUMBER or e in _ROWS:
                return e
        return None

    def inner_depth() -> int:
        d = 0
        for e in reversed(envs):
            if e in _ONE_NUMBER or e in _ROWS:
                return d
            d += e in _INNER
        return d

    def next_eq() -> str:
        nonlocal sub_n
        if sub_parent is not None:
            sub_n += 1
            return f"{sub_parent}{chr(96 + sub_n) if sub_n <= 26 else sub_n}"
        return c.equation()

    def untake() -> None:
        nonlocal sub_n
        if sub_parent is not None:
            sub_n -= 1
        else:
            c.eq -= 1

    def start_row(at: int) -> None:
        nonlocal row_numbered, row_start
        row_start = at
        row_labels.clear()
        c.current = ("equation", next_eq())
        row_numbered = True

    for m in _EVENT.finditer(body):
        g = m.lastgroup
        if g in ("sec", "star"):
            if not m.group("star"):
                c.heading(m.group("sec"))
        elif g == "app":
            if not c.appendix:
                c.appendix = True
                c.sec = c.sub = c.subsub = 0
                if c.s.app_eq is not None:
                    c.eq = 0
                if c.s.app_floats is not None:
                    c.fig = c.tab = 0
        elif g == "label":
            key = m.group("label").strip()
            if key and key not in c.labels and c.current[1]:
                c.labels[key] = c.current
                if in_math():
                    row_labels.append(key)
        elif g in ("cap", "capof"):
            kind = m.group("capof")
            if kind is None:
                env = next(
                    (e for e in reversed(envs) if e in _FIGURE_ENVS | _TABLE_ENVS | _DELUXE | _SUB), None
                )
                if env in _SUB:  # numbered after the float's own caption, which often comes last
                    parent = "figure" if env == "subfigure" else "table"
                    sub_caps += 1
                    base = (c.fig if parent == "figure" else c.tab) + (0 if float_captioned else 1)
                    c.current = (parent, f"{base}{chr(96 + sub_caps) if sub_caps <= 26 else sub_caps}")
                    continue
                if env is None or env in _DELUXE:
                    continue
                kind = "figure" if env in _FIGURE_ENVS else "table"
                float_captioned = True
            c.float_(kind)
        elif g in ("be", "env"):
            env = m.group("env").strip()
            if m.group("be") == "begin":
                if env == "appendix" and not c.appendix:
                    c.appendix = True
                    c.sec = c.sub = c.subsub = 0
                    if c.s.app_eq is not None:
                        c.eq = 0
                    if c.s.app_floats is not None:
                        c.fig = c.tab = 0
                    continue
                if env in _FIGURE_ENVS | _TABLE_ENVS | _DELUXE:
                    float_captioned, sub_caps = False, 0
                if env in _DELUXE:
                    c.float_("table")
                if env == "subequations":
                    sub_parent, sub_n = c.equation(), 0
                    c.current = ("equation", sub_parent)
                if len(envs) >= MAX_ENV_DEPTH:  # no paper nests this deep: an unclosed-\begin flood
                    continue
                if env == "enumerate":
                    items.append(0)
                envs.append(env)
                if env in _ONE_NUMBER or env in _ROWS:
                    start_row(m.end())
            else:
                if env in _ROWS and row_numbered and not body[row_start : m.start()].strip():
                    untake()  # a trailing \\ before \end{align}: no empty numbered row
                if env in envs:
                    while envs and envs.pop() != env:
                        pass
                if env == "subequations":
                    sub_parent = None
                if env == "enumerate" and items:
                    items.pop()
                row_numbered = False
        elif g == "tag":
            if in_math():
                if row_numbered:
                    untake()
                    row_numbered = False
                c.current = ("equation", m.group("tag").strip())
                for k in row_labels:
                    c.labels[k] = c.current
        elif g == "nonum":
            if in_math() and row_numbered:
                untake()
                row_numbered = False
        elif g == "row":
            if in_math() in _ROWS and inner_depth() == 0:
                start_row(m.end())
        elif g == "item" and envs and envs[-1] == "enumerate" and items:
            items[-1] += 1
            c.current = ("item", str(items[-1]))
    return c.labels


_AUX_KIND = re.compile(r"^(section|subsection|subsubsection|appendix|figure|table|equation|AMS|item)")


def aux_kinds(text: str) -> dict[str, str]:
    """Label -> kind from hyperref's ``\\newlabel{key}{{n}{page}{title}{subsection.3.1}{}}``."""
    out = {}
    for m in re.finditer(r"\\newlabel\{([^{}]+)\}\{\{[^\n]*?\}\{[^{}\n]*\}\{[^\n]*?\}\{([^{}.]+)", text):
        k = _AUX_KIND.match(m.group(2))
        if k:
            kind = k.group(1)
            out[m.group(1)] = {"subsection": "section", "subsubsection": "section", "AMS": "equation"}.get(
                kind, kind
            )
    return out


KIND_WORD = {
    "section": "Section",
    "appendix": "Appendix",
    "figure": "Figure",
    "table": "Table",
    "equation": "Eq.",
    "item": "item",
}
