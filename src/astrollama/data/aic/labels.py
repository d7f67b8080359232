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
from typing import ClassVar

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


class _LabelPass:
    """One pass over a body's LaTeX events (``_EVENT``), each handled by the method ``_HANDLERS``
    names for its group: the counters, the open environments that matter, the current equation row
    (its labels; whether it took a number that ``\\nonumber``/``\\tag`` may take back), the open
    subequations and enumerate lists, the open float's captions."""

    _HANDLERS: ClassVar[dict[str, str]] = {
        "sec": "_section",
        "star": "_section",
        "app": "_appendix",
        "label": "_label",
        "cap": "_caption",
        "capof": "_caption",
        "be": "_env",
        "env": "_env",
        "tag": "_tag",
        "nonum": "_nonum",
        "row": "_row",
        "item": "_item",
    }

    def __init__(self, body: str, scheme: Scheme, eq_in_section: bool) -> None:
        self.body = body
        self.c = _Counter(scheme, eq_in_section)
        self.envs: list[str] = []  # open environments that matter here
        self.row_labels: list[str] = []  # labels of the current equation row
        self.row_numbered = False  # the current row took a number that \nonumber/\tag may take back
        self.row_start = 0
        self.sub_parent: str | None = None  # subequations: the parent number
        self.sub_n = 0
        self.items: list[int] = []
        self.float_captioned, self.sub_caps = (
            False,
            0,
        )  # the open float: its own caption seen, its sub-captions

    def run(self) -> dict[str, tuple[str, str]]:
        for m in _EVENT.finditer(self.body):
            name = self._HANDLERS.get(m.lastgroup or "")
            if name is not None:
                getattr(self, name)(m)
        return self.c.labels

    # -- state
    def in_math(self) -> str | None:
        for e in reversed(self.envs):
            if e in _ONE_NUMBER or e in _ROWS:
                return e
        return None

    def inner_depth(self) -> int:
        d = 0
        for e in reversed(self.envs):
            if e in _ONE_NUMBER or e in _ROWS:
                return d
            d += e in _INNER
        return d

    def next_eq(self) -> str:
        if self.sub_parent is not None:
            self.sub_n += 1
            return f"{self.sub_parent}{chr(96 + self.sub_n) if self.sub_n <= 26 else self.sub_n}"
        return self.c.equation()

    def untake(self) -> None:
        if self.sub_parent is not None:
            self.sub_n -= 1
        else:
            self.c.eq -= 1

    def start_row(self, at: int) -> None:
        self.row_start = at
        self.row_labels.clear()
        self.c.current = ("equation", self.next_eq())
        self.row_numbered = True

    def start_appendix(self) -> None:
        c = self.c
        c.appendix = True
        c.sec = c.sub = c.subsub = 0
        if c.s.app_eq is not None:
            c.eq = 0
        if c.s.app_floats is not None:
            c.fig = c.tab = 0

    # -- events
    def _section(self, m: re.Match[str]) -> None:
        if not m.group("star"):
            self.c.heading(m.group("sec"))

    def _appendix(self, m: re.Match[str]) -> None:
        if not self.c.appendix:
            self.start_appendix()

    def _label(self, m: re.Match[str]) -> None:
        c = self.c
        key = m.group("label").strip()
        if key and key not in c.labels and c.current[1]:
            c.labels[key] = c.current
            if self.in_math():
                self.row_labels.append(key)

    def _caption(self, m: re.Match[str]) -> None:
        c = self.c
        kind = m.group("capof")
        if kind is None:
            env = next(
                (e for e in reversed(self.envs) if e in _FIGURE_ENVS | _TABLE_ENVS | _DELUXE | _SUB), None
            )
            if env in _SUB:  # numbered after the float's own caption, which often comes last
                parent = "figure" if env == "subfigure" else "table"
                self.sub_caps += 1
                base = (c.fig if parent == "figure" else c.tab) + (0 if self.float_captioned else 1)
                sub = self.sub_caps
                c.current = (parent, f"{base}{chr(96 + sub) if sub <= 26 else sub}")
                return
            if env is None or env in _DELUXE:
                return
            kind = "figure" if env in _FIGURE_ENVS else "table"
            self.float_captioned = True
        c.float_(kind)

    def _env(self, m: re.Match[str]) -> None:
        env = m.group("env").strip()
        if m.group("be") == "begin":
            self._begin(env, m)
        else:
            self._end(env, m)

    def _begin(self, env: str, m: re.Match[str]) -> None:
        c = self.c
        if env == "appendix" and not c.appendix:
            self.start_appendix()
            return
        if env in _FIGURE_ENVS | _TABLE_ENVS | _DELUXE:
            self.float_captioned, self.sub_caps = False, 0
        if env in _DELUXE:
            c.float_("table")
        if env == "subequations":
            self.sub_parent, self.sub_n = c.equation(), 0
            c.current = ("equation", self.sub_parent)
        if len(self.envs) >= MAX_ENV_DEPTH:  # no paper nests this deep: an unclosed-\begin flood
            return
        if env == "enumerate":
            self.items.append(0)
        self.envs.append(env)
        if env in _ONE_NUMBER or env in _ROWS:
            self.start_row(m.end())

    def _end(self, env: str, m: re.Match[str]) -> None:
        envs = self.envs
        if env in _ROWS and self.row_numbered and not self.body[self.row_start : m.start()].strip():
            self.untake()  # a trailing \\ before \end{align}: no empty numbered row
        if env in envs:
            while envs and envs.pop() != env:
                pass
        if env == "subequations":
            self.sub_parent = None
        if env == "enumerate" and self.items:
            self.items.pop()
        self.row_numbered = False

    def _tag(self, m: re.Match[str]) -> None:
        if self.in_math():
            if self.row_numbered:
                self.untake()
                self.row_numbered = False
            self.c.current = ("equation", m.group("tag").strip())
            for k in self.row_labels:
                self.c.labels[k] = self.c.current

    def _nonum(self, m: re.Match[str]) -> None:
        if self.in_math() and self.row_numbered:
            self.untake()
            self.row_numbered = False

    def _row(self, m: re.Match[str]) -> None:
        if self.in_math() in _ROWS and self.inner_depth() == 0:
            self.start_row(m.end())

    def _item(self, m: re.Match[str]) -> None:
        if self.envs and self.envs[-1] == "enumerate" and self.items:
            self.items[-1] += 1
            self.c.current = ("item", str(self.items[-1]))


def count_labels(body: str, scheme: Scheme, *, eq_in_section: bool = False) -> dict[str, tuple[str, str]]:
    """Label -> (kind, number) counted over ``body`` (comments stripped, macros expanded).

    Linear in the body: one regular-expression pass (:class:`_LabelPass`); the first definition of
    a label wins."""
    return _LabelPass(body, scheme, eq_in_section).run()


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
