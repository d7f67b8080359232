"""Damaged PDFs: the failure modes every OCR backend must record, never crash on (corrupt,
encrypted, zero pages, zero bytes). The tests make them from a good PDF of
:func:`astrollama.data.pdfgen.render_paper_pdf`.
"""

from __future__ import annotations

import hashlib
import io


def corrupt_pdf(good: bytes) -> bytes:
    """A PDF header and a truncated body followed by garbage: no parser can open it."""
    cut = good[: max(64, len(good) // 5)]
    garbage = hashlib.sha256(good).digest() * 8
    # Drop every trailer/xref keyword so that recovery-by-scanning finds nothing either.
    cut = cut.replace(b"xref", b"xxxx").replace(b"trailer", b"tttttt").replace(b"obj", b"ojb")
    return cut + garbage


def encrypted_pdf(good: bytes, user_password: str = "secret") -> bytes:
    """The same document encrypted with a user password (cannot be opened without it)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(good)))
    writer.encrypt(user_password=user_password, owner_password=user_password + "-owner", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def zero_page_pdf() -> bytes:
    """A well-formed PDF with no pages (opens fine, renders nothing)."""
    from pypdf import PdfWriter

    buf = io.BytesIO()
    PdfWriter().write(buf)
    return buf.getvalue()


def empty_file_pdf() -> bytes:
    """Zero bytes (an interrupted download)."""
    return b""
