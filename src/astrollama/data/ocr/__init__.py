"""OCR stage: PDFs -> Nougat markdown (``.mmd``), one file per paper, every failure recorded.

Backends (one interface, :class:`Backend`):

``transformers`` (default)
    Nougat via transformers' port (:mod:`astrollama.data.ocr.nougat`), with nougat-ocr's
    repetition early stop and missing-page markers re-created. Pages are rendered with pypdfium2
    in worker processes and batched across PDFs on the GPU.
``nougat-cli``
    The ``nougat`` command of ``nougat-ocr`` 0.1.17 in its own pinned environment
    (``envs/ocr-nougat.txt``), run as a subprocess per group of PDFs (exact reproduction of
    the published tool). Executable: ``--nougat-bin`` or ``$ASTROLLAMA_NOUGAT_BIN``.
``pdf-text``
    The PDF's embedded text layer (pypdfium2) turned into ``.mmd``-like markdown by
    :mod:`astrollama.data.ocr.pdftext`. NOT OCR and not Nougat quality (no equations, no tables):
    the CPU fallback for born-digital journal PDFs and the offline demo.

Common behaviour: a bad PDF never stops the shard. Missing, zero-byte, encrypted, corrupt and
zero-page PDFs, PDFs whose loading exceeds ``--timeout`` and documents that produce no text are
recorded as ``failed`` in the manifest (stage ``ocr``) with a reason prefix (``encrypted: ...``);
nothing is written for them. Outputs go to ``<root>/ocr/<yymm>/<namespaced id>.mmd`` (atomic);
the ``ok`` record carries ``pages`` and per-page statuses. A rerun skips finished papers; a rerun
after ``kill -9`` produces byte-identical files. A failure of the machine (disk full, I/O error,
a PDF worker killed) is never recorded: the shard stops with exit 1 and the rerun does the work.
"""

from astrollama.data.ocr.backends import (
    BACKENDS,
    Backend,
    DocResult,
    NougatCliBackend,
    OcrJob,
    PdfTextBackend,
    TransformersBackend,
)
from astrollama.data.ocr.pdf import REASONS, OcrFailure, count_pages, open_pdf, render_pages
from astrollama.data.ocr.pdftext import Line, layout_markdown, page_status, text_layer_pages
from astrollama.data.ocr.pool import PdfWorkers
from astrollama.data.ocr.stage import STAGE, OcrStats, find_pdf, make_backend, register, run_ocr

__all__ = [
    "BACKENDS",
    "REASONS",
    "STAGE",
    "Backend",
    "DocResult",
    "Line",
    "NougatCliBackend",
    "OcrFailure",
    "OcrJob",
    "OcrStats",
    "PdfTextBackend",
    "PdfWorkers",
    "TransformersBackend",
    "count_pages",
    "find_pdf",
    "layout_markdown",
    "make_backend",
    "open_pdf",
    "page_status",
    "register",
    "render_pages",
    "run_ocr",
    "text_layer_pages",
]
