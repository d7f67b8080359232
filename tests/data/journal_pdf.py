"""Journal-layout PDFs written by us (fpdf2) for the pdf-text converter's tests.

Each PDF reproduces the layout constructs of real astro-ph PDFs, with our own text: a two-column
body with justified lines and indented paragraphs, headings in small caps (capitals in two
sizes, as AASTeX sets them), MNRAS-style ``1 INTRODUCTION`` in bold capitals or A&A-style
``1. Introduction`` in bold, a bold run-in ``Acknowledgements.``, running heads and page numbers,
referee line numbers in the margin, words hyphenated at line ends and with soft hyphens, a
digit-only line inside a paragraph, a table in a smaller font with more lines than the body,
figure captions, and a hanging-indent reference list. :func:`render` returns the PDF bytes and
the ``Doc`` records exactly which text each construct should come out as.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

PAGE_W, PAGE_H = 595.0, 842.0
TOP, BOTTOM = 72.0, 780.0
COLUMNS = ((50.0, 290.0), (305.0, 545.0))
BODY = 10.0


@dataclasses.dataclass
class Doc:
    """What a journal fixture contains: (heading, paragraphs) sections in order, captions,
    reference entries, and the options it was rendered with."""

    title: str
    authors: list[str]
    abstract: str
    sections: list[tuple[str, list[str]]]
    captions: list[str] = dataclasses.field(default_factory=list)
    references: list[str] = dataclasses.field(default_factory=list)
    style: str = "aastex"  # aastex | mnras | aa
    line_numbers: bool = False
    table_rows: int = 0


_SENTENCES = [
    "Dwarf galaxies trace the assembly of dark matter haloes on the smallest scales we can observe.",
    "We measure the radial velocities of 412 member stars with a median uncertainty of 1.8 km/s.",
    "The velocity dispersion profile stays flat out to three half-light radii within the errors.",
    "Such a profile is hard to reconcile with a cored halo unless the orbits are strongly radial.",
    "Earlier surveys of the same field reached only the brightest giants above the horizontal branch.",
    "Our spectra cover the calcium triplet at a resolving power of about 6500 in every exposure.",
    "A hierarchical model separates members from foreground dwarfs of the Milky Way disc.",
    "The metallicity spread of 0.4 dex suggests several episodes of star formation in the past.",
    "Tidal stripping would inflate the outer dispersion, which we do not see in the data.",
    "We therefore favour a dense halo with a mild radial anisotropy for this system.",
]


def paragraph(seed: int, n: int = 5) -> str:
    return " ".join(_SENTENCES[(seed * 3 + k) % len(_SENTENCES)] for k in range(n))


class _Writer:
    """A small two-column typesetter on top of fpdf2 (points, y from the top of the page)."""

    def __init__(self, doc: Doc) -> None:
        from fpdf import FPDF

        self.doc = doc
        self.pdf = FPDF(unit="pt", format="A4")
        self.pdf.set_auto_page_break(False)
        self.pdf.set_creation_date(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
        self.page = 0
        self.col = 0
        self.y = TOP
        self.line_no = 0
        self.pitch = BODY * 1.2

    # -------------------------------------------------------------------------- pages
    def new_page(self) -> None:
        if self.page:
            self._footer()
        self.pdf.add_page()
        self.page += 1
        self.col, self.y = 0, TOP
        if self.page > 1:  # running head: page number and short authors / title, as journals print it
            self.pdf.set_font("Times", size=8)
            left = f"{self.page} DOE ET AL." if self.page % 2 == 0 else "VELOCITY DISPERSION OF A DWARF"
            self.pdf.text(50, 45, left)
            if self.page % 2:
                self.pdf.text(535, 45, str(self.page))

    def _footer(self) -> None:
        if self.doc.style != "aastex":  # MNRAS / A&A print the page number at the foot
            self.pdf.set_font("Times", size=8)
            self.pdf.text(PAGE_W / 2 - 5, 815, str(self.page))

    def finish(self) -> bytes:
        self._footer()
        return bytes(self.pdf.output())

    def need(self, height: float) -> None:
        if self.y + height > BOTTOM:
            if self.col == 0:
                self.col, self.y = 1, self.top_of_columns
            else:
                self.new_page()
                self.top_of_columns = TOP

    # -------------------------------------------------------------------------- text
    def font(self, size: float, style: str = "") -> None:
        self.pdf.set_font("Times", style=style, size=size)

    def width(self, text: str) -> float:
        return self.pdf.get_string_width(text)

    def put_line(self, words: list[str], x0: float, x1: float, justify: bool) -> None:
        """One line at the cursor; words spread to ``x1`` when justified; a line number in the margin."""
        self.need(self.pitch)
        self.y += self.pitch
        if self.doc.line_numbers:
            size = self.pdf.font_size_pt
            style = self.pdf.font_style
            self.line_no += 1
            self.pdf.set_font("Times", size=7)
            num = str(self.line_no)
            edge = COLUMNS[self.col][0] - 8 if self.col == 0 else COLUMNS[1][1] + 8
            self.pdf.text(edge - self.width(num) if self.col == 0 else edge, self.y, num)
            self.pdf.set_font("Times", style=style, size=size)
        col0 = COLUMNS[self.col][0]
        x0, x1 = col0 + x0, COLUMNS[self.col][0] + x1
        widths = [self.width(w.strip("*").replace("[[", "").replace("]]", "")) for w in words]
        gap = self.width(" ")
        if justify and len(words) > 1:
            gap = (x1 - x0 - sum(widths)) / (len(words) - 1)
        x = x0
        size, style = self.pdf.font_size_pt, self.pdf.font_style
        for w, wd in zip(words, widths, strict=True):
            if w.startswith("**"):  # a bold run-in word
                self.pdf.set_font("Times", style="B", size=size)
            base, _, sup = w.strip("*").partition("[[")
            self.pdf.text(x, self.y, base)
            if sup:  # "10[[24]]": a raised exponent, a separate text object
                right = x + self.width(base)
                self.pdf.set_font("Times", size=0.7 * size)
                self.pdf.text(right, self.y - 0.35 * size, sup.rstrip("]"))
            self.pdf.set_font("Times", style=style, size=size)
            x += wd + gap

    def para(
        self, text: str, size: float = BODY, indent: float = 10.0, style: str = "", hang: float = 0.0
    ) -> None:
        """A justified paragraph; a word with a soft hyphen (U+00AD) that does not fit is split
        there with a hyphen; ``10[[24]]`` is 10 with a raised 24; ``^`` in a word is drawn as a
        control byte (it must vanish); ``**word**`` is set in bold."""
        self.font(size, style)
        self.pitch = size * 1.2
        width = COLUMNS[0][1] - COLUMNS[0][0]
        words = text.split(" ")
        line: list[str] = []
        first = True

        def room() -> float:
            return width - (indent if first else hang)

        def flush(justify: bool) -> None:
            nonlocal first
            # "^" in a word: a \x02 control byte in the text layer
            clean = [w.replace("\xad", "").replace("^", "\x02") for w in line]
            self.put_line(clean, indent if first else hang, width, justify)
            first = False
            line.clear()

        for word in words:
            trial = " ".join(
                x.replace("\xad", "").replace("[[", "").replace("]]", "").strip("*") for x in [*line, word]
            )
            if self.width(trial) <= room():
                line.append(word)
                continue
            if "\xad" in word:
                head, tail = word.split("\xad", 1)
                if self.width(" ".join([*line, head + "-"])) <= room():
                    line.append(head + "-")
                    flush(True)
                    line.append(tail)
                    continue
            flush(True)
            line.append(word)
        if line:
            flush(False)

    def smallcaps(self, text: str, size: float = BODY, centre: bool = True) -> None:
        """A heading in small caps: capitals at ``size``, lower-case letters as capitals at 80%."""
        self.need(2.6 * size)
        self.y += size * 1.4
        runs = [(c.upper(), size if c.isupper() or not c.isalpha() else 0.8 * size) for c in text]
        total = 0.0
        for t, s in runs:
            self.pdf.set_font("Times", size=s)
            total += self.width(t)
        x0, x1 = COLUMNS[self.col]
        x = (x0 + x1 - total) / 2 if centre else x0
        self.y += size * 1.2
        for t, s in runs:
            self.pdf.set_font("Times", size=s)
            self.pdf.text(x, self.y, t)
            x += self.width(t)
        self.y += size * 0.4

    def heading(self, text: str, size: float = BODY) -> None:
        """A heading as the style sets it: sections in AASTeX small caps, MNRAS bold capitals, A&A
        bold; sub-sections (``2.1.``) in AASTeX italics, MNRAS and A&A bold."""
        sub = re.match(r"\d+\.\d+", text) is not None
        if self.doc.style == "aastex" and not sub:
            self.smallcaps(text, size)
            return
        self.need(2.6 * size)
        self.y += size * 0.8
        self.font(size, "I" if self.doc.style == "aastex" else "B")
        self.pitch = size * 1.2
        if self.doc.style == "mnras":  # "1 INTRODUCTION", "2.1 Spectra": no trailing dot
            text = re.sub(r"^([\d.]*\d)\.", r"\1", text)
            text = text if sub else text.upper()
        self.put_line([text], 0, 0, False)
        self.y += size * 0.3


def render(doc: Doc) -> bytes:
    """The journal-layout PDF of ``doc``."""
    w = _Writer(doc)
    w.new_page()
    if doc.style == "aastex":  # the one-off first-page header AASTeX prints
        w.pdf.set_font("Times", size=8)
        w.pdf.text(50, 40, "D")
        w.pdf.set_font("Times", size=6.4)
        w.pdf.text(50 + w.width("D") + 1.5, 40, "RAFT VERSION JANUARY 1, 2024")
    w.pdf.set_font("Times", style="B", size=14)
    w.pdf.text((PAGE_W - w.width(doc.title)) / 2, 90, doc.title)
    w.pdf.set_font("Times", size=10)
    authors = ", ".join(doc.authors)
    w.pdf.text((PAGE_W - w.width(authors)) / 2, 110, authors)
    w.pdf.set_font("Times", size=10, style="B" if doc.style != "aastex" else "")
    w.pdf.text((PAGE_W - w.width("ABSTRACT")) / 2, 140, "ABSTRACT")
    # the abstract spans both columns
    w.font(BODY)
    words, line, y = doc.abstract.split(), [], 145.0
    for word in words:
        if w.width(" ".join([*line, word])) > 440:
            y += 12
            w.pdf.text(80, y, " ".join(line))
            line = []
        line.append(word)
    y += 12
    w.pdf.text(80, y, " ".join(line))
    w.top_of_columns = y + 30
    w.y = w.top_of_columns
    for k, (heading, paras) in enumerate(doc.sections):
        if heading.lower().startswith("acknowledg") and doc.style == "aa":
            w.para(f"**Acknowledgements.** {paras[0]}", indent=0.0)  # a bold run-in heading
            continue
        w.heading(heading)
        for j, para in enumerate(paras):
            w.para(para, indent=0.0 if j == 0 else 10.0)
        if k == 0 and doc.captions:  # a figure after the introduction
            w.need(80)
            w.pdf.rect(COLUMNS[w.col][0], w.y + 5, 200, 60)
            w.y += 70
            w.para(doc.captions[0], size=9, indent=0.0)
        if k == 1 and doc.table_rows:  # a table set smaller than the text, with more lines
            w.para(doc.captions[1], size=9, indent=0.0)
            w.font(8)
            w.pitch = 9.6
            for r in range(doc.table_rows):
                w.put_line(
                    [f"J{1000 + r}", f"{0.1 * r:.2f}", f"{12.5 + r % 7:.1f}", f"{-1.2 - r % 3 / 10:.2f}"],
                    0,
                    200,
                    True,
                )
    if doc.references:
        w.heading("References")
        for ref in doc.references:
            w.para(ref, size=8, indent=0.0, hang=10.0)
    return w.finish()
