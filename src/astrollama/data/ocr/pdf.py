"""Opening PDFs for the OCR stage: every way a PDF can fail becomes an :class:`OcrFailure` with a
reason from :data:`REASONS`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from astrollama.errors import is_environment_error

log = logging.getLogger(__name__)


#: Failure reasons (the prefix of the manifest ``error`` and the ``reason`` attr).
REASONS = (
    "missing-file",
    "empty-file",
    "unreadable",
    "encrypted",
    "corrupt",
    "no-pages",
    "timeout",
    "render-error",
    "no-text",
    "empty-output",
    "backend-error",
)


class OcrFailure(Exception):  # noqa: N818 - a recorded outcome, named like the other reasons
    """A document-level failure with a machine-readable ``reason`` (one of :data:`REASONS`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def open_pdf(path: str | os.PathLike[str]) -> Any:
    """Open a PDF with pypdfium2, classifying every way it can fail as an :class:`OcrFailure`."""
    import pypdfium2 as pdfium

    p = Path(path)
    if not p.exists():
        raise OcrFailure("missing-file", f"{p} does not exist")
    if p.is_file() and p.stat().st_size == 0:
        raise OcrFailure("empty-file", f"{p} has zero bytes")
    from astrollama.errors import InputError
    from astrollama.untrusted import open_regular

    try:  # read through Python: OS errors get their own reason, a hung file system blocks here
        # a regular file (a FIFO is refused, not waited on), size-capped (astrollama.untrusted)
        fh, _ = open_regular(p, "pdf")
    except InputError as exc:
        raise OcrFailure("unreadable", str(exc)) from None
    except OSError as exc:
        if is_environment_error(exc):  # EIO, ENOMEM, ...: the machine, retried, never recorded
            raise
        raise OcrFailure("unreadable", f"{p}: {exc}") from None
    try:
        pdf = pdfium.PdfDocument(fh, autoclose=True)
    except pdfium.PdfiumError as exc:
        fh.close()
        raise _classify_load_error(p, exc) from None
    if len(pdf) == 0:
        pdf.close()
        raise OcrFailure("no-pages", f"{p} has zero pages")
    return pdf


def _classify_load_error(path: Path, exc: Exception) -> OcrFailure:
    """Ask pypdf what the file really is: PDFium says 'format error' for several cases, and for
    some files (zero pages) fails without setting an error, so its error code can be stale."""
    code = getattr(exc, "err_code", None)
    try:
        from pypdf import PdfReader

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            return OcrFailure("encrypted", f"{path} is encrypted")
        if len(reader.pages) == 0:
            return OcrFailure("no-pages", f"{path} has zero pages")
    except Exception:  # noqa: BLE001 - pypdf failing too confirms the file is broken
        if code in (4, 5):  # FPDF_ERR_PASSWORD, FPDF_ERR_SECURITY
            return OcrFailure("encrypted", f"{path} is encrypted (PDFium error {code})")
    return OcrFailure("corrupt", f"{path}: {exc}")


def count_pages(path: str | os.PathLike[str]) -> int:
    pdf = open_pdf(path)
    try:
        return len(pdf)
    finally:
        pdf.close()


def render_pages(path: str | os.PathLike[str], dpi: int) -> list[Any]:
    """Every page as an RGB PIL image at ``dpi``. Zero rendered pages is an error, never empty output.

    A page that fails to render raises ``render-error`` for the document (a partial document would
    silently lose text).
    """
    pdf = open_pdf(path)
    images = []
    try:
        for i in range(len(pdf)):
            try:
                page = pdf[i]
                images.append(page.render(scale=dpi / 72).to_pil().convert("RGB"))
                page.close()
            except Exception as exc:  # noqa: BLE001
                raise OcrFailure("render-error", f"{path}: page {i + 1}: {exc}") from None
    finally:
        pdf.close()
    if not images:
        raise OcrFailure("no-pages", f"{path}: pypdfium2 rendered no pages")
    return images
