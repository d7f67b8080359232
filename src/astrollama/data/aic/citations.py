"""The citation and label context of one paper for the LaTeX route: its citation keys' forms
(from a ``.bbl``, a ``.bib``, an inline bibliography, or an author-year key's spelling), label
numbers and kinds, acronyms, and the counts of what could not be resolved."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
