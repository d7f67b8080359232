"""astro-ph metadata into the manifest: OAI-PMH harvest, Kaggle snapshot import, arxiv-API look-ups.

* :func:`harvest_oai`: ``ListRecords`` from arXiv's OAI-PMH endpoint (``metadataPrefix`` ``arXiv``
  or ``arXivRaw``, ``set=physics:astro-ph``, ``from``/``until`` datestamps). After EVERY page the
  records are merged into the manifest and then the resumptionToken is saved (atomically) in
  ``manifest/harvest/oai-<key>.json``; a killed harvest continues from the saved token, and a
  page fetched twice (killed between the two writes) merges to the same rows.
* :func:`~astrollama.data.harvest_files.import_kaggle`: streams ``arxiv-metadata-oai-snapshot.json`` (JSON lines), keeps astro-ph
  papers in a date range, and checkpoints the byte offset after every batch.
* :func:`lookup`: small id/query look-ups through the ``arxiv`` package (4.x), for a handful of
  papers; it is the API, one request per 3 s: never use it for bulk metadata.

Note: OAI ``from``/``until`` select by *datestamp* (last metadata change), not by submission
date: an old paper whose metadata changed in the window is included. Filter on ``published``
afterwards if you need submission dates (``import_kaggle`` filters on ``published`` directly).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from lxml import etree

from astrollama.data.harvest_files import import_kaggle, import_rows
from astrollama.data.harvest_rows import (
    HarvestError,
    HarvestInputError,
    check_dates,
    field_text,
    is_astro,
    rfc2822_date,
    split_authors,
    split_dois,
)
from astrollama.data.http import HttpClient
from astrollama.data.manifest import (
    Manifest,
    ManifestError,
    parse_arxiv_id,
    writable_root,
)
from astrollama.io import atomic_write_json
from astrollama.untrusted import read_json

log = logging.getLogger(__name__)

OAI_URL = "https://oaipmh.arxiv.org/oai"
ASTRO_SET = "physics:astro-ph"
OAI_NS = "http://www.openarchives.org/OAI/2.0/"
FORMAT_NS = {"arXiv": "http://arxiv.org/OAI/arXiv/", "arXivRaw": "http://arxiv.org/OAI/arXivRaw/"}
# responses are untrusted: no entity expansion (billion laughs), no DTD or network fetches (XXE),
# libxml2's size limits on (huge_tree off)
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class OAIError(HarvestError):
    """An OAI-PMH ``<error code=...>`` answer (other than ``noRecordsMatch``)."""

    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(f"OAI-PMH error {code}: {message}" + (f". {hint}" if hint else ""))
        self.code = code


_OAI_HINTS = {
    "badResumptionToken": "The saved resumptionToken was rejected (tokens expire); rerun with "
    "--restart: rows already harvested are merged, not duplicated",
    "badArgument": "Check --from/--until (YYYY-MM-DD) and --set",
    "cannotDisseminateFormat": "Use --metadata-prefix arXiv or arXivRaw",
    "noSetHierarchy": "This repository has no sets; drop --set",
}


# ----------------------------------------------------------------------------- OAI records


def _child(el: etree._Element, ns: str, name: str) -> str | None:
    found = el.find(f"{{{ns}}}{name}")
    return None if found is None else found.text


def parse_oai_record(record: etree._Element, metadata_prefix: str) -> dict[str, Any] | None:
    """One ``<record>`` as a manifest row; None for a deleted record."""
    header = record.find(f"{{{OAI_NS}}}header")
    if header is None:
        raise HarvestError("OAI record without <header>")
    if header.get("status") == "deleted":
        return None
    ns = FORMAT_NS[metadata_prefix]
    meta = record.find(f"{{{OAI_NS}}}metadata/{{{ns}}}{metadata_prefix}")
    identifier = _child(header, OAI_NS, "identifier") or "?"
    if meta is None:
        raise HarvestError(f"OAI record {identifier}: no <{metadata_prefix}> metadata")
    raw_id = _child(meta, ns, "id")
    if not raw_id:
        raise HarvestError(f"OAI record {identifier}: missing field 'id'")
    pid, version = parse_arxiv_id(raw_id)
    row: dict[str, Any] = {
        "id": pid,
        "version": version,
        "title": field_text(_child(meta, ns, "title")),
        "abstract": field_text(_child(meta, ns, "abstract")),
        "categories": (_child(meta, ns, "categories") or "").split() or None,
        "doi": split_dois(_child(meta, ns, "doi")),
        "journal_ref": field_text(_child(meta, ns, "journal-ref")),
        "comments": field_text(_child(meta, ns, "comments")),
        "license": field_text(_child(meta, ns, "license")),
        "datestamp": field_text(_child(header, OAI_NS, "datestamp")),
        "source": f"oai:{metadata_prefix}",
    }
    if metadata_prefix == "arXiv":
        row["published"] = field_text(_child(meta, ns, "created"))
        row["updated"] = field_text(_child(meta, ns, "updated")) or row["published"]
        authors = []
        for a in meta.iterfind(f"{{{ns}}}authors/{{{ns}}}author"):
            parts = [_child(a, ns, "forenames"), _child(a, ns, "keyname"), _child(a, ns, "suffix")]
            name = field_text(" ".join(p for p in parts if p))
            if name:
                authors.append(name)
        row["authors"] = authors or None
    else:  # arXivRaw: a version list with RFC 2822 dates, authors as one string
        versions = []
        for v in meta.iterfind(f"{{{ns}}}version"):
            num = re.fullmatch(r"v(\d+)", v.get("version", ""))
            date = _child(v, ns, "date")
            if num and date:
                versions.append((int(num.group(1)), rfc2822_date(date)))
        if versions:
            versions.sort()
            row["version"] = versions[-1][0]
            row["published"], row["updated"] = versions[0][1], versions[-1][1]
        row["authors"] = split_authors(_child(meta, ns, "authors"))
        row["submitter"] = field_text(_child(meta, ns, "submitter"))
    return row


@dataclasses.dataclass
class OAIPage:
    rows: list[dict[str, Any]]
    deleted: int
    token: str | None
    complete_list_size: int | None
    cursor: int | None


def parse_oai_page(content: bytes, metadata_prefix: str, url: str = "") -> OAIPage:
    """Parse one ListRecords response; ``noRecordsMatch`` is an empty, final page."""
    try:
        root = etree.fromstring(content, _XML_PARSER)
    except etree.XMLSyntaxError as exc:
        start = content[:80].decode("utf-8", "replace")
        raise HarvestError(f"invalid OAI-PMH XML from {url}: {exc} (starts {start!r})") from None
    if root.getroottree().docinfo.doctype:  # OAI-PMH has no DTD; entity declarations are an attack
        raise HarvestError(f"refused OAI-PMH response from {url}: it carries a DOCTYPE (entity declarations)")
    if root.tag != f"{{{OAI_NS}}}OAI-PMH":
        raise HarvestError(f"not an OAI-PMH response from {url}: root element {root.tag}")
    errors = root.findall(f"{{{OAI_NS}}}error")
    if errors:
        code = errors[0].get("code", "unknown")
        if code == "noRecordsMatch":
            return OAIPage([], 0, None, 0, 0)
        raise OAIError(code, field_text(errors[0].text) or "(no message)", _OAI_HINTS.get(code, ""))
    lr = root.find(f"{{{OAI_NS}}}ListRecords")
    if lr is None:
        raise HarvestError(f"OAI-PMH response from {url} has neither <ListRecords> nor <error>")
    rows, deleted = [], 0
    for rec in lr.iterfind(f"{{{OAI_NS}}}record"):
        row = parse_oai_record(rec, metadata_prefix)
        if row is None:
            deleted += 1
        else:
            rows.append(row)
    tok = lr.find(f"{{{OAI_NS}}}resumptionToken")
    token = field_text(tok.text) if tok is not None else None
    size = tok.get("completeListSize") if tok is not None else None
    cursor = tok.get("cursor") if tok is not None else None
    return OAIPage(rows, deleted, token, int(size) if size else None, int(cursor) if cursor else None)


# ----------------------------------------------------------------------------- OAI harvest


@dataclasses.dataclass
class HarvestResult:
    state_path: Path
    pages: int
    records: int
    deleted: int
    complete: bool


def _merge_page(
    manifest: Manifest, page: OAIPage, primary_only: bool, state: dict[str, Any], state_path: Path
) -> None:
    """One page's rows merged into the manifest, THEN the harvest state (its token) saved."""
    rows = [r for r in page.rows if not primary_only or is_astro(r["categories"] or [], primary_only=True)]
    if rows:
        manifest.upsert_papers(rows)
    # only now move the token: a kill before this line re-fetches the page (idempotent merge)
    state.update(
        token=page.token,
        pages=state["pages"] + 1,
        records=state["records"] + len(rows),
        not_primary=state.get("not_primary", 0) + len(page.rows) - len(rows),
        deleted=state["deleted"] + page.deleted,
        complete=not page.token,
        complete_list_size=page.complete_list_size or state["complete_list_size"],
    )
    atomic_write_json(state_path, state)
    total = state["complete_list_size"]
    log.info(
        "OAI page %d: %d records (%d deleted, %d not primary astro-ph), %d so far%s",
        state["pages"],
        len(rows),
        page.deleted,
        len(page.rows) - len(rows),
        state["records"],
        f" of ~{total}" if total else "",
    )


def harvest_oai(
    manifest: Manifest,
    *,
    base_url: str = OAI_URL,
    metadata_prefix: str = "arXiv",
    set_spec: str | None = ASTRO_SET,
    from_date: str | None = None,
    until_date: str | None = None,
    client: HttpClient | None = None,
    restart: bool = False,
    max_pages: int | None = None,
    primary_only: bool = False,
) -> HarvestResult:
    """Harvest ``ListRecords`` into ``manifest``, resuming from the saved resumptionToken.

    A finished harvest (same endpoint, prefix, set and dates) is a no-op unless ``restart``.
    ``max_pages`` stops early (the state keeps the token, so the next call goes on).
    ``primary_only`` keeps only papers whose primary category (the first of ``<categories>``
    in both the ``arXiv`` and ``arXivRaw`` formats) is ``astro-ph*``: the astro-ph set also
    holds papers cross-listed from other archives.
    """
    if metadata_prefix not in FORMAT_NS:
        raise HarvestInputError(
            f"--metadata-prefix: must be one of {sorted(FORMAT_NS)}, got {metadata_prefix!r}"
        )
    check_dates(from_date, until_date)
    params = {
        "base_url": base_url,
        "metadataPrefix": metadata_prefix,
        "set": set_spec,
        "from": from_date,
        "until": until_date,
    } | ({"primary_only": True} if primary_only else {})
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    state_path = manifest.dir / "harvest" / f"oai-{key}.json"
    state: dict[str, Any] = {
        "params": params,
        "token": None,
        "pages": 0,
        "records": 0,
        "deleted": 0,
        "complete": False,
        "complete_list_size": None,
    }
    if state_path.exists() and not restart:
        state = read_json(state_path, "results", error=ManifestError)
        if state["complete"]:
            log.info(
                "OAI harvest already complete (%d records, %s); --restart to redo",
                state["records"],
                state_path,
            )
            return HarvestResult(state_path, state["pages"], state["records"], state["deleted"], True)
        if state["token"]:
            log.info("resuming OAI harvest after page %d from token %r", state["pages"], state["token"])
    client = client or HttpClient(min_interval=3.0)
    pages_now = 0
    while max_pages is None or pages_now < max_pages:
        if state["token"]:
            query = {"verb": "ListRecords", "resumptionToken": state["token"]}
        else:
            query = {"verb": "ListRecords", "metadataPrefix": metadata_prefix}
            query.update(
                {k: v for k, v in (("set", set_spec), ("from", from_date), ("until", until_date)) if v}
            )
        resp = client.get(base_url, params=query)
        page = parse_oai_page(resp.content, metadata_prefix, resp.url)
        _merge_page(manifest, page, primary_only, state, state_path)
        pages_now += 1
        if state["complete"]:
            log.info("OAI harvest complete: %d records in %d pages", state["records"], state["pages"])
            break
    return HarvestResult(state_path, state["pages"], state["records"], state["deleted"], state["complete"])


# ----------------------------------------------------------------------------- arxiv package


def result_row(result: Any) -> dict[str, Any]:
    """An ``arxiv.Result`` as a manifest row."""
    pid, version = parse_arxiv_id(result.entry_id)
    return {
        "id": pid,
        "version": version,
        "published": result.published.date().isoformat(),
        "updated": result.updated.date().isoformat(),
        # primary first, as in every other source (the API lists categories in its own order)
        "categories": [c for c in dict.fromkeys([result.primary_category, *result.categories]) if c] or None,
        "title": field_text(result.title),
        "abstract": field_text(result.summary),
        "authors": [a.name for a in result.authors] or None,
        "doi": split_dois(result.doi),
        "journal_ref": field_text(result.journal_ref),
        "comments": field_text(result.comment),
        "source": "arxiv-api",
    }


def lookup(
    ids: list[str] | None = None,
    query: str | None = None,
    *,
    max_results: int | None = None,
    page_size: int = 100,
    delay_seconds: float = 3.0,
    num_retries: int = 3,
    api_url: str | None = None,
    primary_only: bool = False,
) -> list[dict[str, Any]]:
    """Look papers up with the ``arxiv`` package; returns manifest rows.

    ``ids`` (bare or versioned) and/or ``query`` (arXiv API syntax, e.g. ``cat:astro-ph.GA AND
    ti:bar``). ``max_results=None`` fetches all matches (the API caps deep paging; use OAI for
    bulk). ``api_url`` replaces ``https://export.arxiv.org/api/query`` (tests, mirrors).
    ``primary_only`` keeps papers whose primary category (the API's ``arxiv:primary_category``)
    is ``astro-ph*``; ``cat:astro-ph*`` queries also match cross-lists.
    """
    import arxiv

    if not ids and not query:
        raise HarvestInputError("--ids/--query: lookup needs ids or a query")
    client = arxiv.Client(page_size=page_size, delay_seconds=delay_seconds, num_retries=num_retries)
    if api_url:
        client.query_url_format = api_url + "?{}"
    search = arxiv.Search(query=query or "", id_list=list(ids or []), max_results=max_results)
    try:
        return [
            result_row(r)
            for r in client.results(search)
            if not primary_only or is_astro([r.primary_category], primary_only=True)
        ]
    except arxiv.ArxivError as exc:
        raise HarvestError(f"arXiv API look-up failed: {exc}") from None


# ----------------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:
    """``astrollama data harvest {oai,kaggle,json,lookup}``."""
    from astrollama.cli_args import number

    p = sub.add_parser("harvest", help="astro-ph metadata into the manifest (OAI-PMH, Kaggle, API, JSON)")
    hsub = p.add_subparsers(dest="harvest_cmd", required=True)

    o = hsub.add_parser("oai", help="OAI-PMH ListRecords, resumable")
    o.add_argument("--root", required=True, help="data root (manifest/ goes there)")
    o.add_argument("--base-url", default=OAI_URL)
    o.add_argument("--metadata-prefix", choices=sorted(FORMAT_NS), default="arXiv")
    o.add_argument("--set", dest="set_spec", default=ASTRO_SET, help="OAI set ('' for none)")
    o.add_argument("--from", dest="from_date", help="datestamp YYYY-MM-DD (metadata change, not submission)")
    o.add_argument("--until", dest="until_date", help="datestamp YYYY-MM-DD")
    o.add_argument("--restart", action="store_true", help="ignore the saved resumptionToken")
    o.add_argument("--max-pages", type=number(int, min=1), default=None)
    o.add_argument(
        "--primary-only",
        action="store_true",
        help="keep papers whose primary category (first in <categories>) is astro-ph*",
    )
    _http_args(o, delay=3.0)
    o.set_defaults(func=_cli_oai)

    k = hsub.add_parser("kaggle", help="import arxiv-metadata-oai-snapshot.json")
    k.add_argument("--root", required=True)
    k.add_argument("snapshot", help="path to arxiv-metadata-oai-snapshot.json")
    k.add_argument("--from", dest="from_date", help="first v1 date YYYY-MM-DD")
    k.add_argument("--until", dest="until_date", help="last v1 date YYYY-MM-DD")
    k.add_argument("--primary-only", action="store_true", help="primary category astro-ph* only")
    k.add_argument("--restart", action="store_true")
    k.add_argument("--batch-size", type=number(int, min=1), default=5000, help="rows merged per checkpoint")
    k.set_defaults(func=_cli_kaggle)

    j = hsub.add_parser("json", help="paper metadata from local JSON/JSONL files (e.g. data/demo/papers)")
    j.add_argument("--root", required=True)
    j.add_argument("paths", nargs="+", help="files or directories of *.json / *.jsonl")
    j.add_argument("--source", default="local", help="value of the 'source' field where absent")
    j.set_defaults(func=_cli_json)

    q = hsub.add_parser("lookup", help="a few papers via the arXiv API (arxiv package)")
    q.add_argument("--root", help="upsert the results into this data root's manifest")
    q.add_argument("--ids", nargs="*", default=[])
    q.add_argument("--query", default=None)
    q.add_argument("--max-results", type=number(int, min=1), default=None)
    q.add_argument("--api-url", default=None)
    q.add_argument("--delay", type=number(min=0), default=3.0)
    q.add_argument(
        "--primary-only",
        action="store_true",
        help="keep papers whose primary category (arxiv:primary_category) is astro-ph*",
    )
    q.set_defaults(func=_cli_lookup)


def _http_args(p: argparse.ArgumentParser, delay: float) -> None:
    from astrollama.cli_args import number

    p.add_argument(
        "--delay", type=number(min=0), default=delay, help=f"seconds between requests (default {delay})"
    )
    p.add_argument("--max-retries", type=number(int, min=0), default=6)
    p.add_argument("--backoff", type=number(min=0), default=5.0, help="first retry wait; doubles each retry")
    p.add_argument(
        "--max-retry-after", type=number(min=0), default=600.0, help="cap on a server's Retry-After"
    )
    p.add_argument("--timeout", type=number(gt=0), default=180.0, help="read timeout per request (s)")


def http_client_from_args(a: argparse.Namespace, delay: float | None = None) -> HttpClient:
    return HttpClient(
        min_interval=a.delay if delay is None else delay,
        max_retries=a.max_retries,
        backoff_base=a.backoff,
        max_retry_after=a.max_retry_after,
        timeout=(min(30.0, a.timeout), a.timeout),
    )


def _cli_oai(a: argparse.Namespace) -> int:
    r = harvest_oai(
        writable_root(a.root),
        base_url=a.base_url,
        metadata_prefix=a.metadata_prefix,
        set_spec=a.set_spec or None,
        from_date=a.from_date,
        until_date=a.until_date,
        client=http_client_from_args(a),
        restart=a.restart,
        max_pages=a.max_pages,
        primary_only=a.primary_only,
    )
    print(f"pages={r.pages} records={r.records} deleted={r.deleted} complete={r.complete}")
    return 0


def _cli_kaggle(a: argparse.Namespace) -> int:
    r = import_kaggle(
        writable_root(a.root),
        a.snapshot,
        from_date=a.from_date,
        until_date=a.until_date,
        primary_only=a.primary_only,
        restart=a.restart,
        batch_size=a.batch_size,
    )
    print(f"lines={r.lines} kept={r.kept}")
    return 0


def _cli_json(a: argparse.Namespace) -> int:
    print(f"papers={import_rows(writable_root(a.root), a.paths, source=a.source)}")
    return 0


def _cli_lookup(a: argparse.Namespace) -> int:
    manifest = writable_root(a.root) if a.root else None  # the root is checked before the network
    rows = lookup(
        a.ids,
        a.query,
        max_results=a.max_results,
        delay_seconds=a.delay,
        api_url=a.api_url,
        primary_only=a.primary_only,
    )
    for row in rows:
        print(
            f"{row['id']}v{row['version']}\t{row['published']}\t{' '.join(row['categories'] or [])}\t{row['title']}"
        )
    if manifest is not None:
        manifest.upsert_papers(rows)
    return 0
