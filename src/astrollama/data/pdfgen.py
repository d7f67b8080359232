"""Render the project's own paper texts into small, real PDFs (raw inputs for OCR and fixtures).

A paper is a JSON file (``data/demo/papers/*.json``)::

    {"id": "demo/0001", "title": ..., "authors": [...], "categories": [...], "published": ...,
     "abstract": ..., "sections": [{"heading", "text"}], "appendix": [{"heading", "text"}],
     "acknowledgments": ..., "references": [...]}

Section texts hold paragraphs separated by blank lines; the last section is the conclusion.
The PDF has the layout of a journal preprint: title, authors, an "Abstract" block, section
headings (numbered ``1 Introduction`` for most papers, unnumbered for some), acknowledgments,
references and appendices (after the references for some papers, before them for others), page
numbers in the footer, 2-4 A4 pages. Numbering and appendix placement are derived from the id,
so they are stable. The bytes are deterministic: the same paper always gives the same PDF (fixed
creation date and producer, content-derived file id).

Also here: ``make_pdfs`` behind ``astrollama data make-pdfs`` and ``astrollama data download
--papers``. Rendering stays in the product (not in :mod:`astrollama.tools`): it is the demo
corpus's download step (``data_prep/demo.yaml``), a command users type; only the damaged PDFs the
tests feed the OCR stage are a tool (:mod:`astrollama.tools.badpdfs`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrollama.data.manifest import namespaced, paper_path
from astrollama.errors import InputError
from astrollama.io import atomic_write_bytes

log = logging.getLogger(__name__)

#: Creation date stamped into every generated PDF (so the bytes depend only on the paper).
FIXED_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
PRODUCER = "astrollama pdfgen"
#: Body font sizes tried in order until the paper fits in ``MAX_PAGES`` pages.
BODY_SIZES = (10.5, 10.0, 9.5, 9.0, 8.5, 8.0)
MIN_PAGES, MAX_PAGES = 2, 4
REQUIRED = ("id", "title", "authors", "abstract", "sections")


class PaperError(InputError):
    """A paper JSON file that cannot be rendered (names the file and the field)."""


@dataclass(frozen=True)
class Layout:
    """Per-paper layout choices, derived from the id (see :func:`layout_for`)."""

    numbered: bool
    appendix_after_references: bool


def layout_for(paper_id: str) -> Layout:
    """Stable layout choices: 3 in 4 papers number their sections; 1 in 2 put appendices last."""
    h = hashlib.sha256(paper_id.encode("utf-8")).digest()
    return Layout(numbered=h[0] % 4 != 0, appendix_after_references=h[1] % 2 == 0)


def load_paper(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate one paper JSON file; raise :class:`PaperError` naming file and field."""
    p = Path(path)
    from astrollama.untrusted import read_json

    # a regular file, size-capped, UTF-8 JSON (astrollama.untrusted); a FIFO is refused, not read
    paper = read_json(p, "text", error=PaperError, expect=None)
    validate_paper(paper, source=str(p))
    return paper


def validate_paper(paper: Any, source: str = "<paper>") -> None:
    if not isinstance(paper, dict):
        raise PaperError(f"{source}: top level must be an object")
    for field in REQUIRED:
        if field not in paper:
            raise PaperError(f"{source}: missing field {field!r}")
    for field in ("id", "title", "abstract"):
        if not isinstance(paper[field], str) or not paper[field].strip():
            raise PaperError(f"{source}: field {field!r} must be a non-empty string")
    if not isinstance(paper["authors"], list) or not all(isinstance(a, str) for a in paper["authors"]):
        raise PaperError(f"{source}: field 'authors' must be a list of strings")
    for field in ("sections", "appendix"):
        blocks = paper.get(field, [])
        if not isinstance(blocks, list) or (field == "sections" and not blocks):
            raise PaperError(
                f"{source}: field {field!r} must be a {'non-empty ' if field == 'sections' else ''}list"
            )
        for i, block in enumerate(blocks):
            if not (
                isinstance(block, dict)
                and isinstance(block.get("heading"), str)
                and isinstance(block.get("text"), str)
            ):
                raise PaperError(f"{source}: field {field}[{i}] must have string 'heading' and 'text'")
    refs = paper.get("references", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise PaperError(f"{source}: field 'references' must be a list of strings")
    if not isinstance(paper.get("acknowledgments", ""), str):
        raise PaperError(f"{source}: field 'acknowledgments' must be a string")


def _latin1(text: str) -> str:
    """The PDF core fonts are Latin-1: map a few common typographic characters, replace the rest."""
    table = {
        "\u2013": "-",
        "\u2014": "--",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ",
    }
    text = "".join(table.get(c, c) for c in text)
    return text.encode("latin-1", "replace").decode("latin-1")


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


class _PaperPDF:
    """One rendering pass at a given body font size."""

    def __init__(self, paper: dict[str, Any], body: float, break_before_references: bool) -> None:
        from fpdf import FPDF

        class _Doc(FPDF):
            def footer(self) -> None:  # page number, as journals print it
                self.set_y(-12)
                self.set_font("Times", size=9)
                self.cell(0, 5, str(self.page_no()), align="C")

        self.paper = paper
        self.body = body
        self.break_before_references = break_before_references
        self.layout = layout_for(paper["id"])
        pdf = _Doc(orientation="P", unit="mm", format="A4")
        pdf.set_margins(20, 18, 20)
        pdf.set_auto_page_break(auto=True, margin=18)
        pdf.set_creation_date(FIXED_DATE)
        pdf.set_producer(PRODUCER)
        pdf.set_title(_latin1(paper["title"]))
        pdf.set_author(_latin1(", ".join(paper["authors"])))
        pdf.set_subject(_latin1(paper["id"]))
        self.pdf = pdf

    def _heading(self, text: str, size: float) -> None:
        pdf = self.pdf
        pdf.ln(1.5)
        pdf.set_font("Helvetica", style="B", size=size)
        pdf.multi_cell(0, size * 0.5, _latin1(text), align="L")
        pdf.ln(1.0)

    def _text(self, text: str, size: float | None = None, style: str = "") -> None:
        pdf = self.pdf
        size = size or self.body
        pdf.set_font("Times", style=style, size=size)
        for para in _paragraphs(text):
            pdf.multi_cell(0, size * 0.45, _latin1(para), align="J")
            pdf.ln(size * 0.25)

    def _appendix(self) -> None:
        for i, block in enumerate(self.paper.get("appendix", [])):
            heading = block["heading"]
            if not re.match(r"(?i)appendix\b", heading):
                heading = f"Appendix {chr(ord('A') + i)}: {heading}"
            self._heading(heading, self.body + 1.5)
            self._text(block["text"])

    def _references(self) -> None:
        refs = self.paper.get("references", [])
        if not refs:
            return
        if self.break_before_references:
            self.pdf.add_page()
        self._heading("References", self.body + 1.5)
        self.pdf.set_font("Times", size=self.body - 1)
        for ref in refs:
            self.pdf.multi_cell(0, (self.body - 1) * 0.45, _latin1(" ".join(ref.split())), align="L")
            self.pdf.ln(self.body * 0.25)

    def render(self) -> bytes:
        paper, pdf = self.paper, self.pdf
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=16)
        pdf.multi_cell(0, 7, _latin1(paper["title"]), align="C")
        pdf.ln(2)
        pdf.set_font("Helvetica", size=10)
        pdf.multi_cell(0, 5, _latin1(", ".join(paper["authors"])), align="C")
        pdf.ln(4)
        pdf.set_font("Helvetica", style="B", size=self.body + 1)
        pdf.cell(0, 6, "Abstract", align="C", new_x="LMARGIN", new_y="NEXT")
        self._text(paper["abstract"], style="I")
        pdf.ln(2)
        for i, section in enumerate(paper["sections"], start=1):
            title = f"{i} {section['heading']}" if self.layout.numbered else section["heading"]
            self._heading(title, self.body + 1.5)
            self._text(section["text"])
        if paper.get("acknowledgments", "").strip():
            self._heading("Acknowledgments", self.body + 1.5)
            self._text(paper["acknowledgments"])
        if self.layout.appendix_after_references:
            self._references()
            self._appendix()
        else:
            self._appendix()
            self._references()
        return bytes(pdf.output())


def render_paper_pdf(paper: dict[str, Any]) -> bytes:
    """Render one validated paper to PDF bytes (deterministic; 2-4 pages when the text allows)."""
    validate_paper(paper, source=str(paper.get("id", "<paper>")) if isinstance(paper, dict) else "<paper>")
    data = b""
    for size in BODY_SIZES:
        data = _PaperPDF(paper, size, break_before_references=False).render()
        pages = count_pages(data)
        if pages < MIN_PAGES:
            data = _PaperPDF(paper, size, break_before_references=True).render()
            break
        if pages <= MAX_PAGES:
            break
    else:
        log.warning("%s: %d pages even at body size %.1f", paper["id"], count_pages(data), BODY_SIZES[-1])
    return data


def count_pages(data: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(data)).pages)


def iter_paper_files(papers_dir: str | os.PathLike[str]) -> list[Path]:
    files = sorted(Path(papers_dir).glob("*.json"))
    if not files:
        raise PaperError(f"{papers_dir}: no paper JSON files (*.json)")
    return files


PDFS_OWNER = "data make-pdfs"  # the --out directory's owner marker (astrollama.io)


def _only_pdfs(directory: Path) -> bool:
    """A make-pdfs --out of an earlier version: nothing but PDFs."""
    return all(p.suffix == ".pdf" and p.is_file() for p in directory.iterdir() if not p.name.startswith("."))


def make_pdfs(
    papers: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Render every paper JSON (a directory or a list of files) to PDFs.

    ``out_dir``: files ``OUT/<namespaced id>.pdf``. ``root`` (a data root) instead: files where the
    download stage puts them (``ROOT/pdf/<yymm>/<namespaced id>.pdf``), the papers' metadata
    upserted into the manifest and each PDF recorded as the ``download_pdf`` output, so the
    bundled papers enter the pipeline exactly like downloaded ones. Idempotent: a PDF whose bytes
    are already identical is left untouched.
    """
    if (out_dir is None) == (root is None):
        raise ValueError("give exactly one of out_dir and root")
    from astrollama.io import claim_dir, write_owner

    if root is not None:  # someone else's directory, or unwritable: refused before any work
        from astrollama.data.manifest import writable_root

        writable_root(root)
    else:
        claim_dir(out_dir, PDFS_OWNER, legacy=(_only_pdfs,))
    files = iter_paper_files(papers) if isinstance(papers, (str, os.PathLike)) else [Path(p) for p in papers]
    written: list[Path] = []
    seen: dict[str, Path] = {}
    loaded = []
    for f in files:
        paper = load_paper(f)
        ns = namespaced(paper["id"])
        if ns in seen:
            raise PaperError(f"{f}: field 'id' {paper['id']!r} collides with {seen[ns]}")
        seen[ns] = f
        loaded.append(paper)
        data = render_paper_pdf(paper)
        target = paper_path(Path(root) / "pdf", paper["id"], ".pdf") if root else Path(out_dir) / f"{ns}.pdf"
        if not (target.is_file() and target.read_bytes() == data):
            atomic_write_bytes(target, data)
        log.info("%s -> %s (%d pages, %d bytes)", f.name, target, count_pages(data), len(data))
        written.append(target)
    if root is not None:
        _register(Path(root), loaded, written)
    else:
        write_owner(out_dir, PDFS_OWNER)
    return written


def _register(root: Path, papers: list[dict[str, Any]], pdfs: list[Path]) -> None:
    from astrollama.data.manifest import Manifest

    manifest = Manifest(root)  # claimed by make_pdfs before the PDFs were written
    manifest.dir.mkdir(parents=True, exist_ok=True)
    fields = ("id", "title", "abstract", "authors", "categories", "published")
    manifest.upsert_papers([{k: p[k] for k in fields if p.get(k)} | {"source": "pdfgen"} for p in papers])
    done = manifest.status("download_pdf")
    records = [
        manifest.make_record("download_pdf", p["id"], "ok", outputs={"pdf": pdf}, source="pdfgen")
        for p, pdf in zip(papers, pdfs, strict=True)
        if (rec := done.get(p["id"])) is None
        or rec.status != "ok"
        or manifest.resolve(rec.outputs.get("pdf", "")) != pdf
    ]
    manifest.record_many(records)
    log.info("manifest %s: %d papers, %d new download_pdf records", manifest.dir, len(papers), len(records))
