"""astro-ph metadata from local files into the manifest: the Kaggle arXiv snapshot
(:func:`import_kaggle`, streamed and checkpointed) and JSON/JSONL paper rows (:func:`import_rows`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from astrollama.data.harvest_rows import (
    HarvestInputError,
    check_dates,
    field_text,
    is_astro,
    rfc2822_date,
    split_authors,
    split_dois,
)
from astrollama.data.manifest import PAPER_FIELDS, Manifest, ManifestError, is_arxiv_id, normalise_row
from astrollama.io import atomic_write_json, read_jsonl
from astrollama.untrusted import LIMITS, check_text, open_regular, read_json

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- Kaggle snapshot


def kaggle_row(obj: dict[str, Any], where: str) -> dict[str, Any]:
    """A Kaggle snapshot record as a manifest row (latest version and its dates)."""
    pid = obj.get("id")
    if not isinstance(pid, str) or not is_arxiv_id(pid):
        raise ManifestError(f"{where}: field 'id' is not an arXiv id: {pid!r}")
    versions = []
    for v in obj.get("versions") or []:
        try:
            versions.append((int(str(v["version"]).lstrip("v")), rfc2822_date(v["created"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where} ({pid}): bad entry in field 'versions': {v!r} ({exc})") from None
    versions.sort()
    authors = None
    if obj.get("authors_parsed"):
        authors = [
            field_text(" ".join(p for p in (a[1:2] + a[0:1] + a[2:3]) if p)) for a in obj["authors_parsed"]
        ]
        authors = [a for a in authors if a] or None
    elif obj.get("authors"):
        authors = split_authors(obj["authors"])
    return {
        "id": pid,
        "version": versions[-1][0] if versions else None,
        "published": versions[0][1] if versions else None,
        "updated": versions[-1][1] if versions else None,
        "categories": (obj.get("categories") or "").split() or None,
        "title": field_text(obj.get("title")),
        "abstract": field_text(obj.get("abstract")),
        "authors": authors,
        "doi": split_dois(obj.get("doi")),
        "journal_ref": field_text(obj.get("journal-ref")),
        "comments": field_text(obj.get("comments")),
        "license": field_text(obj.get("license")),
        "source": "kaggle",
    }


@dataclasses.dataclass
class ImportResult:
    lines: int
    kept: int
    complete: bool


def _iter_lines(path: Path, offset: int) -> Iterator[tuple[int, bytes]]:
    """Yield (byte offset just after the line, line) for every line from byte ``offset`` on."""
    cap = LIMITS["record"]
    fh, _ = open_regular(path, "jsonl", error=ManifestError)  # regular, bounded (astrollama.untrusted)
    with fh:
        fh.seek(offset)
        pos = offset
        while line := fh.readline(cap + 1):
            if len(line) > cap:
                raise ManifestError(
                    f"{path}: byte {pos}: a line longer than the {cap >> 20} MiB record limit"
                )
            pos += len(line)
            yield pos, line


def import_kaggle(
    manifest: Manifest,
    path: str | Path,
    *,
    from_date: str | None = None,
    until_date: str | None = None,
    primary_only: bool = False,
    batch_size: int = 5000,
    restart: bool = False,
) -> ImportResult:
    """Import astro-ph papers with ``from_date <= published <= until_date`` from the snapshot.

    Streams the file; rows are merged in batches and the byte offset is checkpointed after
    each batch (``manifest/harvest/kaggle-<key>.json``), so a killed import resumes.
    """
    path = Path(path)
    check_dates(from_date, until_date)
    if not path.is_file():
        raise HarvestInputError(f"{path}: Kaggle snapshot not found")
    st = path.stat()
    params = {
        "path": str(path.resolve()),
        "size": st.st_size,
        "from": from_date,
        "until": until_date,
        "primary_only": primary_only,
    }
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    state_path = manifest.dir / "harvest" / f"kaggle-{key}.json"
    state = {"params": params, "offset": 0, "lines": 0, "kept": 0, "complete": False}
    if state_path.exists() and not restart:
        state = read_json(state_path, "results", error=ManifestError)
        if state["complete"]:
            log.info("Kaggle import already complete (%d kept); --restart to redo", state["kept"])
            return ImportResult(state["lines"], state["kept"], True)
    batch: list[dict[str, Any]] = []

    def flush(offset: int) -> None:
        if batch:
            manifest.upsert_papers(batch)
        state.update(offset=offset, kept=state["kept"] + len(batch))
        batch.clear()
        atomic_write_json(state_path, state)

    offset = state["offset"]
    for offset, line in _iter_lines(path, state["offset"]):
        state["lines"] += 1
        if not line.strip():
            continue
        where = f"{path}:{state['lines']}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where}: invalid JSON ({exc.msg})") from None
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{where}: not UTF-8 ({exc.reason})") from None
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if b"\\u" in line:
            check_text(obj, where, "(json)", error=ManifestError)  # no lone surrogate
        if not is_astro((obj.get("categories") or "").split(), primary_only):
            continue
        row = kaggle_row(obj, where)
        pub = row["published"]
        if (from_date and (pub is None or pub < from_date)) or (
            until_date and (pub is None or pub > until_date)
        ):
            continue
        batch.append(row)
        if len(batch) >= batch_size:
            flush(offset)
            log.info("Kaggle import: %d lines read, %d astro-ph papers kept", state["lines"], state["kept"])
    state["complete"] = True
    flush(offset)
    log.info("Kaggle import complete: %d lines, %d papers kept", state["lines"], state["kept"])
    return ImportResult(state["lines"], state["kept"], True)


# ----------------------------------------------------------------------------- local metadata


def import_rows(manifest: Manifest, paths: Iterable[str | Path], *, source: str = "local") -> int:
    """Merge paper metadata from JSON files (one object each) or JSONL files into the manifest.

    For papers that are not harvested (the bundled demo papers, a private collection). Only the
    manifest's fields (``PAPER_FIELDS``) are kept, so full paper files (with ``sections`` etc.)
    can be passed as they are. Directories are searched for ``*.json``/``*.jsonl``. Every file is
    validated before anything is written. Returns the number of rows merged.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix in (".json", ".jsonl"))
        elif p.is_file():
            files.append(p)
        else:
            raise HarvestInputError(f"{p}: metadata file not found")
    clean: list[dict[str, Any]] = []
    for f in files:
        if f.suffix == ".jsonl":
            objs = [(f"{f}:{i}", obj) for i, obj in read_jsonl(f, error=ManifestError)]
        else:
            # a regular file, size-capped, UTF-8 JSON (astrollama.untrusted)
            objs = [(f"{f}:1", read_json(f, "results", error=ManifestError, expect=None))]
        for where, obj in objs:
            if not isinstance(obj, dict):
                raise ManifestError(f"{where}: expected a JSON object")
            row = {k: obj[k] for k in PAPER_FIELDS if k in obj}
            row.setdefault("source", source)
            clean.append(normalise_row(row, where))
    n = manifest.upsert_papers(clean)
    log.info("imported %d papers from %d files", n, len(files))
    return n
