"""PDFs and LaTeX sources for the papers in the manifest, from arxiv.org or a local bulk mirror.

Two stages, each a sharded :class:`~astrollama.data.runner.StageRunner`:

* ``download_pdf`` -> ``<root>/pdf/<yymm>/<ns_id>.pdf`` (output ``pdf``); the bytes must start with
  ``%PDF-`` and carry ``%%EOF`` near the end (an HTML error page or a truncated file is a failure);
* ``download_src`` -> ``<root>/src/<yymm>/<ns_id>/`` (output ``src``), the e-print unpacked: a
  gzipped tar, a plain tar, or a single gzipped TeX file (saved as ``main.tex``). An e-print that
  is only a PDF is a failure ("no LaTeX source").

From arxiv.org (``https://arxiv.org/pdf/<id>v<k>``, ``https://arxiv.org/e-print/<id>v<k>``) every
request goes through :class:`~astrollama.data.http.HttpClient`: one request per ``delay`` seconds
(default 3 s, arXiv's published limit, multiplied by the number of shards so that a job array as a
whole stays within it), retries with backoff on 429/5xx/timeouts. A 403 stops the shard (arXiv
blocks clients that go too fast; retrying would make it worse). For more than a few thousand
papers use the bulk data instead (``--mirror``; layouts in docs/data-harvest.md).
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import os
import posixpath
import re
import shutil
import tarfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

from astrollama.data.http import HttpClient, HttpError
from astrollama.data.manifest import Manifest, namespaced, paper_path, yymm
from astrollama.data.runner import Outcome, ShardStats, StageAbort, StageRunner, add_shard_args
from astrollama.data.shards import shard_from_env
from astrollama.errors import InputError
from astrollama.io import atomic_dir, atomic_write_bytes

log = logging.getLogger(__name__)

ARXIV_URL = "https://arxiv.org"
KINDS = ("pdf", "src")
STAGE = {"pdf": "download_pdf", "src": "download_src"}


class ContentError(InputError):
    """Downloaded bytes that are not what was asked for (HTML page, truncated PDF, bad archive)."""


# ----------------------------------------------------------------------------- content checks


def _describe(data: bytes, content_type: str | None) -> str:
    head = data[:60].decode("latin-1").replace("\n", " ")
    return f"{content_type or 'unknown type'}, {len(data)} bytes, starts {head!r}"


def check_pdf(data: bytes, content_type: str | None = None) -> None:
    """Raise :class:`ContentError` unless ``data`` looks like a complete PDF."""
    if not data.startswith(b"%PDF-"):
        raise ContentError(f"not a PDF ({_describe(data, content_type)})")
    if b"%%EOF" not in data[-2048:]:
        raise ContentError(f"truncated PDF: no %%EOF marker at the end ({len(data)} bytes)")


def _looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head"))


MAX_UNPACKED_BYTES = 1 << 30
"""Default cap on an e-print's decompressed size (1 GiB; ``--max-unpacked-mb``)."""
MAX_UNPACK_SECONDS = 120.0
"""Default cap on the time spent decompressing one e-print."""
MAX_MEMBERS = 10_000
"""Most files one source tar may hold."""
_CHUNK = 1 << 20


def _open_payload(data: bytes, gz: bool) -> IO[bytes]:
    return gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") if gz else io.BytesIO(data)


def _inflated_size(data: bytes, gz: bool, max_bytes: int, max_seconds: float) -> int:
    """The decompressed size of the e-print, counted in a stream (constant memory); refuses more
    than ``max_bytes`` or ``max_seconds`` (a decompression bomb) and truncated or corrupt gzip."""
    if not gz:
        if len(data) > max_bytes:
            raise ContentError(f"e-print size {len(data)} exceeds {max_bytes} bytes (--max-unpacked-mb)")
        return len(data)
    total, deadline = 0, time.monotonic() + max_seconds
    try:
        with _open_payload(data, gz) as fh:
            while chunk := fh.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ContentError(
                        f"decompressed size exceeds {max_bytes} bytes (--max-unpacked-mb); "
                        f"{len(data)} compressed bytes"
                    )
                if time.monotonic() > deadline:
                    raise ContentError(
                        f"decompression took longer than {max_seconds:g}s ({total} bytes so far)"
                    )
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ContentError(
            f"corrupt gzip e-print: {' '.join(str(exc).split()) or type(exc).__name__}"
        ) from None
    return total


def _unsafe_member(m: tarfile.TarInfo) -> str | None:
    """Why a tar member may not be extracted (docs/data-harvest.md), or None."""
    name = m.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "outside destination"
    if m.issym() or m.islnk():
        target = m.linkname
        base = PurePosixPath(name).parent if m.issym() else PurePosixPath()
        resolved = posixpath.normpath(str(base / target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return f"link to {target!r} outside destination"
        return None
    if not (m.isfile() or m.isdir()):
        return "special file (device or fifo)"
    return None


def unpack_source(
    data: bytes,
    dest: Path,
    content_type: str | None = None,
    *,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_seconds: float = MAX_UNPACK_SECONDS,
) -> str:
    """Unpack an arXiv e-print into the EMPTY directory ``dest``; returns the kind found.

    Kinds: ``tar.gz``, ``tar``, ``tex.gz`` (single file -> ``main.tex``), ``tex``. Every e-print
    is untrusted: its decompressed size is counted first, in a stream (more than ``max_bytes`` or
    ``max_seconds`` is refused before anything is written); a tar with a member that has an
    absolute name, a ``..`` component, a link leaving ``dest``, or is a device/fifo is refused
    whole (and extraction also runs under Python's ``data`` filter); a truncated tar or gzip is
    refused with that reason. Raises :class:`ContentError`.
    """
    gz = data[:2] == b"\x1f\x8b"
    size = _inflated_size(data, gz, max_bytes, max_seconds)
    with _open_payload(data, gz) as fh:
        head = fh.read(4096)
    if head.startswith(b"%PDF-"):
        raise ContentError("no LaTeX source: the e-print is a PDF")
    if _looks_like_html(head):
        raise ContentError(f"not a source archive ({_describe(data, content_type)})")
    with _open_payload(data, gz) as fh:
        try:
            tar = tarfile.open(fileobj=fh, mode="r:")  # noqa: SIM115 - closed below
        except tarfile.ReadError:
            tar = None  # not a tar: a single (gzipped) TeX file
        if tar is not None:
            with tar:
                try:
                    members, declared = [], 0
                    for m in tar:
                        members.append(m)
                        declared += m.size
                        if len(members) > MAX_MEMBERS:
                            raise ContentError(f"source tar has more than {MAX_MEMBERS} members")
                        if declared > max_bytes:  # sparse members: small data, huge files
                            raise ContentError(
                                f"decompressed size exceeds {max_bytes} bytes "
                                f"(--max-unpacked-mb): members declare {declared}+ bytes"
                            )
                    if not members:
                        raise ContentError("empty tar e-print (no members)")
                    for m in members:
                        if (why := _unsafe_member(m)) is not None:
                            raise ContentError(f"unsafe member in source tar: {m.name!r} ({why})")
                    tar.extractall(dest, members=members, filter="data")
                except tarfile.FilterError as exc:  # name only: the message must not depend on the root
                    reason = re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__.removesuffix("Error")).lower()
                    raise ContentError(
                        f"unsafe member in source tar: {exc.tarinfo.name!r} ({reason})"
                    ) from None
                except (tarfile.ReadError, EOFError, zlib.error) as exc:
                    raise ContentError(
                        f"truncated or corrupt tar e-print: {' '.join(str(exc).split())}"
                    ) from None
            return "tar.gz" if gz else "tar"
    if b"\x00" in head or not head.strip():
        raise ContentError(
            f"unrecognised e-print format ({_describe(data, content_type)}, {size} bytes unpacked)"
        )
    with _open_payload(data, gz) as fh, open(dest / "main.tex", "wb") as out:
        shutil.copyfileobj(fh, out, _CHUNK)
    return "tex.gz" if gz else "tex"


# ----------------------------------------------------------------------------- mirror


_VERSIONED = re.compile(r"^(?P<stem>.+?)(?:v(?P<v>\d+))?$")
_SRC_EXTS = (".tar.gz", ".tgz", ".gz", ".tar", ".tex", ".pdf")


class Mirror:
    """Finds a paper's PDF or source file in a local copy of arXiv's bulk data.

    Accepted layouts (``<yymm>`` from the id, ``<ns>`` = namespaced id, ``<flat>`` = id without
    the slash as in arXiv's S3 tars, ``<num>`` = the number of an old-style id; any ``vK``
    version suffix, highest chosen unless the manifest names a version):

    * ``pdf/<yymm>/<ns>[vK].pdf``, ``pdf/<yymm>/<flat>[vK].pdf``       (this project; S3 pdf tars unpacked under pdf/)
    * ``<yymm>/<flat>[vK].pdf``                                         (S3 ``arXiv_pdf_*.tar`` unpacked in place)
    * ``arxiv/pdf/<yymm>/<id>[vK].pdf``, ``<archive>/pdf/<yymm>/<num>[vK].pdf``  (GCS ``gs://arxiv-dataset/arxiv/``)
    * ``src/<yymm>/<ns|flat>[vK].{tar.gz,tgz,gz,tar,tex}``, ``<yymm>/<flat>[vK].gz``  (S3 ``arXiv_src_*.tar``)
    * flat: ``pdf/<ns>[vK].pdf``, ``<ns>[vK].pdf``, ``src/<ns>[vK].<ext>`` (a plain directory of
      files, e.g. the demo PDFs from ``astrollama data make-pdfs``)
    * an UNversioned ``<flat>.pdf`` in a source location is a PDF-only submission (arXiv's src tars
      hold those); a versioned one is a pdf-tar file and is never taken as a source.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: --mirror: not a directory")

    def _candidates(self, paper_id: str, kind: str) -> list[tuple[Path, str]]:
        ym, ns, flat = yymm(paper_id), namespaced(paper_id), paper_id.replace("/", "")
        dirs: list[tuple[Path, str]] = [
            (self.root / kind / ym, ns),
            (self.root / kind / ym, flat),
            (self.root / ym, flat),
        ]
        dirs.append((self.root / kind, ns))
        if kind == "pdf":
            dirs.append((self.root, ns))
            if "/" in paper_id:
                archive, num = paper_id.split("/")
                dirs.append((self.root / archive.split(".")[0] / "pdf" / ym, num))
            else:
                dirs.append((self.root / "arxiv" / "pdf" / ym, paper_id))
        return dirs

    def find(self, paper_id: str, kind: str, version: int | None = None) -> Path | None:
        """The best matching file (requested version, else highest version, else unversioned)."""
        exts = (".pdf",) if kind == "pdf" else _SRC_EXTS
        for directory, stem in self._candidates(paper_id, kind):
            if not directory.is_dir():
                continue
            found: list[tuple[int, Path]] = []
            for path in directory.glob(f"{stem}*"):
                ext = next((e for e in exts if path.name.endswith(e)), None)
                if ext is None:
                    continue
                m = _VERSIONED.match(path.name[: -len(ext)])
                if not m or m.group("stem") != stem:
                    continue
                v = int(m.group("v")) if m.group("v") else 0
                if version is not None and v not in (version, 0):
                    continue
                if kind == "src" and ext == ".pdf" and v:  # a versioned PDF is a pdf-tar file, not a source
                    continue
                found.append((v, path))
            if found:
                return max(found)[1]
        return None


# ----------------------------------------------------------------------------- downloader


class Downloader:
    """Fetches one paper's PDF or source into the data root and returns an :class:`Outcome`."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        base_url: str = ARXIV_URL,
        client: HttpClient | None = None,
        mirror: Mirror | None = None,
        max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
    ):
        self.manifest = manifest
        self.base_url = base_url.rstrip("/")
        self.client = client or HttpClient(min_interval=3.0)
        self.mirror = mirror
        self.max_unpacked_bytes = max_unpacked_bytes

    def url(self, paper_id: str, kind: str, version: int | None) -> str:
        path = "pdf" if kind == "pdf" else "e-print"
        return f"{self.base_url}/{path}/{paper_id}" + (f"v{version}" if version else "")

    def _fetch(self, paper_id: str, kind: str) -> tuple[bytes, str | None, str]:
        """(bytes, content type, where from) for a paper, from the mirror or over HTTP."""
        version = (self.manifest.get(paper_id) or {}).get("version")
        if self.mirror is not None:
            path = self.mirror.find(paper_id, kind, version)
            if path is None:
                raise FileNotFoundError(f"not in mirror {self.mirror.root} ({kind}, v{version or '*'})")
            content_type = "application/pdf" if path.suffix == ".pdf" else None
            from astrollama.untrusted import read_bytes

            # a regular file inside the mirror, size-capped (astrollama.untrusted)
            data = read_bytes(
                path, "pdf" if kind == "pdf" else "eprint", root=self.mirror.root, error=ContentError
            )
            return data, content_type, str(path)
        url = self.url(paper_id, kind, version)
        try:
            resp = self.client.get(url)
        except HttpError as exc:
            if exc.status == 403:
                raise StageAbort(
                    f"{url}: HTTP 403, arxiv.org refuses this client (too many requests?). Stopping; "
                    "wait, raise --delay, or use a bulk mirror (--mirror)"
                ) from None
            raise
        return resp.content, resp.headers.get("Content-Type"), url

    def pdf(self, paper_id: str) -> Outcome:
        data, ctype, origin = self._fetch(paper_id, "pdf")
        check_pdf(data, ctype)
        dest = paper_path(self.manifest.root / "pdf", paper_id, ".pdf")
        atomic_write_bytes(dest, data)
        return Outcome(outputs={"pdf": dest}, attrs={"bytes": len(data), "from": origin})

    def src(self, paper_id: str) -> Outcome:
        data, ctype, origin = self._fetch(paper_id, "src")
        dest = paper_path(self.manifest.root / "src", paper_id)
        if dest.exists():  # left by a run killed after the rename, before its record
            shutil.rmtree(dest)
        with atomic_dir(dest) as tmp:
            kind = unpack_source(data, tmp, ctype, max_bytes=self.max_unpacked_bytes)
        files = sum(1 for p in dest.rglob("*") if p.is_file())
        return Outcome(
            outputs={"src": dest}, attrs={"bytes": len(data), "kind": kind, "files": files, "from": origin}
        )


def download(
    manifest: Manifest,
    kinds: tuple[str, ...] = KINDS,
    *,
    ids: list[str] | None = None,
    downloader: Downloader | None = None,
    shard_index: int | None = None,
    num_shards: int | None = None,
    retry_failed: bool = False,
    force: bool = False,
    progress: bool = True,
) -> dict[str, ShardStats]:
    """Run ``download_pdf`` and/or ``download_src`` for this shard; returns stats per kind."""
    downloader = downloader or Downloader(manifest)
    stats: dict[str, ShardStats] = {}
    for kind in kinds:
        runner = StageRunner(
            manifest,
            STAGE[kind],
            shard_index=shard_index,
            num_shards=num_shards,
            retry_failed=retry_failed,
            force=force,
            progress=progress,
            outputs=[manifest.root / kind],
        )
        fetch: Callable[[str], Outcome] = downloader.pdf if kind == "pdf" else downloader.src
        stats[kind] = runner.run(fetch, ids)
    return stats


# ----------------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:
    """``astrollama data download``."""
    p = sub.add_parser("download", help="PDFs and LaTeX sources from arxiv.org or a bulk mirror")
    p.add_argument("--root", required=True, help="data root with manifest/")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--mirror", default=None, help="local bulk-data directory instead of arxiv.org")
    p.add_argument("--base-url", default=ARXIV_URL)
    p.add_argument("--ids", nargs="*", default=None, help="only these ids (default: every paper)")
    p.add_argument("--ids-file", default=None, help="file with one id per line")
    p.add_argument(
        "--papers",
        default=None,
        help="render PDFs from paper JSON files in this directory instead of "
        "fetching (the bundled demo papers; as `make-pdfs --root`)",
    )
    from astrollama.cli_args import number

    p.add_argument(
        "--delay",
        type=number(min=0),
        default=None,
        help="seconds between requests per process (default 3 x number of shards)",
    )
    p.add_argument("--max-retries", type=number(int, min=0), default=6)
    p.add_argument("--backoff", type=number(min=0), default=5.0)
    p.add_argument("--max-retry-after", type=number(min=0), default=600.0)
    p.add_argument("--timeout", type=number(gt=0), default=180.0)
    p.add_argument(
        "--max-unpacked-mb",
        type=number(gt=0),
        default=MAX_UNPACKED_BYTES / 2**20,
        help="refuse an e-print that decompresses to more than this (default 1024)",
    )
    add_shard_args(p)
    p.set_defaults(func=_cli_download)


def _cli_download(a: argparse.Namespace) -> int:
    if a.papers:
        from astrollama.data.ocr.stage import cli_make_pdfs

        return cli_make_pdfs(argparse.Namespace(papers=a.papers, out=None, root=a.root))
    m = Manifest(a.root)
    ids = list(a.ids) if a.ids else None
    if a.ids_file:
        from astrollama.untrusted import read_text

        lines = read_text(a.ids_file, "text", field="--ids-file").splitlines()  # regular, bounded, UTF-8
        ids = (ids or []) + [x.strip() for x in lines if x.strip()]
    num_shards = a.num_shards if a.num_shards is not None else shard_from_env()[1]
    delay = a.delay if a.delay is not None else 3.0 * num_shards
    if a.mirror is None:
        log.info(
            "downloading from %s, one request per %.1fs in this process (%d shards)",
            a.base_url,
            delay,
            num_shards,
        )
    client = HttpClient(
        min_interval=delay,
        max_retries=a.max_retries,
        backoff_base=a.backoff,
        max_retry_after=a.max_retry_after,
        timeout=(min(30.0, a.timeout), a.timeout),
    )
    d = Downloader(
        m,
        base_url=a.base_url,
        client=client,
        mirror=Mirror(a.mirror) if a.mirror else None,
        max_unpacked_bytes=max(1, int(a.max_unpacked_mb * 2**20)),
    )
    stats = download(
        m,
        tuple(a.kinds),
        ids=ids,
        downloader=d,
        shard_index=a.shard_index,
        num_shards=a.num_shards,
        retry_failed=a.retry_failed,
        force=a.force,
    )
    for s in stats.values():
        print(s.line())
    return 0


__all__ = ["ContentError", "Downloader", "Mirror", "check_pdf", "download", "unpack_source"]
