"""Harvest and download against a real HTTP server on 127.0.0.1 that behaves like arXiv.

The only fake is the network boundary: ``FakeArxiv`` serves the OAI-PMH endpoint, the export API
and arxiv.org's /pdf and /e-print from fixture files written for this project
(``tests/data/fixtures/{oai,arxiv_api,kaggle,arxiv_web}``), including arXiv's error behaviour
(OAI error codes, 503 + Retry-After, 429, 404, 403, HTML instead of a PDF, dropped connections,
slow answers). The harvester, downloader and the ``arxiv`` package talk real HTTP to it.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from lxml import etree

from astrollama.data.download import Downloader, Mirror, download
from astrollama.data.harvest import OAIError, harvest_oai, lookup, parse_oai_page
from astrollama.data.harvest_files import import_kaggle, import_rows
from astrollama.data.harvest_rows import HarvestError, split_authors
from astrollama.data.http import HttpClient, HttpError
from astrollama.data.manifest import Manifest, ManifestError
from astrollama.data.runner import StageAbort
from astrollama.data.shards import shard_of

FIX = Path(__file__).parent / "fixtures"
OAI = FIX / "oai"
PAGES = {
    None: "listrecords_page1.xml",
    "6960524|1001": "listrecords_page2.xml",
    "6960524|2001": "listrecords_page3.xml",
}
HARVESTED = [
    "2401.00101",
    "2401.00233",
    "2401.00345",
    "2401.00412",
    "2401.00567",
    "2401.00689",
    "astro-ph/0601050",
]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


# ----------------------------------------------------------------------------- fake arXiv


class FakeArxiv:
    """arXiv's OAI-PMH endpoint, export API, /pdf and /e-print on 127.0.0.1, from fixtures.

    ``script[route]`` is a list of one-shot actions consumed by the next requests to ``route``
    (``oai:first``, ``oai:<token>``, ``pdf:<id>``, ``e-print:<id>``, ``api``):
    ``("status", code, headers, body)``, ``("delay", seconds)`` (then answer normally),
    ``("hang",)`` (never answer until the server closes), ``("drop",)`` (close the connection).
    """

    def __init__(self) -> None:
        self.log: list[tuple[float, str, dict[str, str]]] = []
        self.script: dict[str, list[tuple]] = defaultdict(list)
        self.pdfs: dict[str, bytes] = {}
        self.eprints: dict[str, bytes] = {}
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.feed = etree.parse(str(FIX / "arxiv_api" / "entries.atom.xml")).getroot()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                fake._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def hits(self, prefix: str) -> list[tuple[float, str, dict[str, str]]]:
        with self._lock:
            return [e for e in self.log if e[1].startswith(prefix)]

    # ---- plumbing
    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str, headers: dict | None = None
    ) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        u = urlsplit(h.path)
        q = dict(parse_qsl(u.query, keep_blank_values=True))
        if u.path == "/oai":
            route = "oai:" + q.get("resumptionToken", "first")
        elif u.path.startswith("/pdf/"):
            route = "pdf:" + u.path[5:]
        elif u.path.startswith("/e-print/"):
            route = "e-print:" + u.path[9:]
        elif u.path == "/api/query":
            route = "api"
        else:
            route = "other:" + u.path
        with self._lock:
            self.log.append((time.monotonic(), route, q))
            action = self.script[route].pop(0) if self.script.get(route) else None
        if action is not None:
            kind = action[0]
            if kind == "status":
                _, code, headers, body = action
                self._send(h, code, body, "text/html; charset=utf-8", headers)
                return
            if kind == "hang":
                self.release.wait(60)
                h.close_connection = True
                return
            if kind == "drop":
                h.close_connection = True
                return
            if kind == "delay":
                time.sleep(action[1])
        if route.startswith("oai:"):
            self._oai(h, q)
        elif route.startswith(("pdf:", "e-print:")):
            self._file(h, route)
        elif route == "api":
            self._api(h, q)
        else:
            self._send(h, 404, b"<html>Not Found</html>", "text/html")

    def _oai(self, h, q: dict[str, str]) -> None:
        def xml(name: str) -> None:
            self._send(h, 200, (OAI / name).read_bytes(), "text/xml; charset=utf-8")

        if q.get("verb") != "ListRecords":
            return xml("error_badArgument.xml")
        if "resumptionToken" in q:
            if set(q) != {"verb", "resumptionToken"}:  # the token is an exclusive argument
                return xml("error_badArgument.xml")
            name = PAGES.get(q["resumptionToken"])
            return xml(name) if name else xml("error_badResumptionToken.xml")
        prefix = q.get("metadataPrefix")
        if prefix not in ("arXiv", "arXivRaw"):
            return xml("error_cannotDisseminateFormat.xml")
        if q.get("from", "") > "2024-12-31":
            return xml("noRecordsMatch.xml")
        return xml("listrecords_raw.xml" if prefix == "arXivRaw" else PAGES[None])

    def _file(self, h, route: str) -> None:
        kind, _, ident = route.partition(":")
        store = self.pdfs if kind == "pdf" else self.eprints
        bare = ident.rsplit("v", 1)[0] if ident[-1].isdigit() and "v" in ident.split("/")[-1] else ident
        body = store.get(ident, store.get(bare))
        if body is None:
            return self._send(h, 404, b"<html><body>Not found</body></html>", "text/html")
        if body.startswith(b"<!DOCTYPE html"):
            return self._send(h, 200, body, "text/html; charset=utf-8")
        ctype = "application/pdf" if kind == "pdf" else "application/x-eprint-tar"
        self._send(h, 200, body, ctype)

    def _api(self, h, q: dict[str, str]) -> None:
        atom = "{http://www.w3.org/2005/Atom}"
        os_ns = "{http://a9.com/-/spec/opensearch/1.1/}"
        entries = self.feed.findall(f"{atom}entry")

        def eid(e):
            return e.findtext(f"{atom}id").split("/abs/")[1].rsplit("v", 1)[0]

        ids = [x for x in q.get("id_list", "").split(",") if x]
        if ids:
            by_id = {eid(e): e for e in entries}
            entries = [by_id[i] for i in ids if i in by_id]
        query = q.get("search_query", "")
        if query.startswith("cat:"):
            entries = [
                e for e in entries if any(c.get("term") == query[4:] for c in e.findall(f"{atom}category"))
            ]
        start, size = int(q.get("start", 0)), int(q.get("max_results", 10))
        out = copy.deepcopy(self.feed)
        for e in out.findall(f"{atom}entry"):
            out.remove(e)
        out.find(f"{os_ns}totalResults").text = str(len(entries))
        out.find(f"{os_ns}startIndex").text = str(start)
        out.find(f"{os_ns}itemsPerPage").text = str(size)
        for e in entries[start : start + size]:
            out.append(copy.deepcopy(e))
        self._send(
            h, 200, etree.tostring(out, xml_declaration=True, encoding="UTF-8"), "application/atom+xml"
        )


@pytest.fixture
def arxiv_server():
    server = FakeArxiv()
    yield server
    server.close()


def fast_client(**kw) -> HttpClient:
    opts = {"min_interval": 0.0, "max_retries": 4, "backoff_base": 0.02, "backoff_max": 0.1, "timeout": 5.0}
    opts.update(kw)
    return HttpClient(**opts)


def papers_digest(root: Path) -> str:
    """Content hash of the merged manifest (what every later stage reads)."""
    return hashlib.sha256(json.dumps(Manifest(root).papers(), sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------- OAI-PMH


def test_oai_full_harvest_and_rerun_is_noop(arxiv_server, tmp_path):
    m = Manifest(tmp_path)
    r = harvest_oai(
        m,
        base_url=arxiv_server.url + "/oai",
        from_date="2024-01-01",
        until_date="2024-01-31",
        client=fast_client(),
    )
    assert (r.pages, r.records, r.deleted, r.complete) == (3, 8, 1, True)
    assert m.ids() == HARVESTED  # the deleted record is not a paper; 2401.00101 appears once
    first = [e[2] for e in arxiv_server.hits("oai:")]
    assert first[0] == {
        "verb": "ListRecords",
        "metadataPrefix": "arXiv",
        "set": "physics:astro-ph",
        "from": "2024-01-01",
        "until": "2024-01-31",
    }
    assert first[1:] == [
        {"verb": "ListRecords", "resumptionToken": t} for t in ("6960524|1001", "6960524|2001")
    ]
    bar = m.get("2401.00101")  # page 2 carries its newer metadata
    assert bar["title"] == "Delayed bar formation in gas-rich disc galaxies at cosmic noon"
    assert (bar["published"], bar["updated"], bar["categories"]) == (
        "2024-01-02",
        "2024-01-20",
        ["astro-ph.GA", "astro-ph.CO"],
    )
    assert bar["authors"] == ["Adaeze N. Okafor", "Maja Lindqvist"]
    old = m.get("astro-ph/0601050")
    assert old["authors"] == ["Joao Ferreira Jr"] and old["doi"] == ["10.1111/j.1365-2966.2006.00001.x"]
    assert m.get("2401.00689")["comments"] == "Ünicode in comments: Å and é"
    assert m.get("2401.00233")["categories"] == ["gr-qc", "astro-ph.HE"]
    n = len(arxiv_server.hits("oai:"))
    r2 = harvest_oai(
        m,
        base_url=arxiv_server.url + "/oai",
        from_date="2024-01-01",
        until_date="2024-01-31",
        client=fast_client(),
    )
    assert r2.complete and len(arxiv_server.hits("oai:")) == n  # finished harvest: no request


def test_oai_arxivraw_gives_versions(arxiv_server, tmp_path):
    m = Manifest(tmp_path)
    harvest_oai(m, base_url=arxiv_server.url + "/oai", metadata_prefix="arXivRaw", client=fast_client())
    row = m.get("2401.00101")
    assert (row["version"], row["published"], row["updated"]) == (2, "2024-01-02", "2024-01-20")
    assert row["authors"] == ["Adaeze N. Okafor", "Maja Lindqvist"] and row["submitter"] == "Adaeze Okafor"
    assert m.get("astro-ph/0601050")["version"] == 2


def test_arxivraw_author_strings_dois_and_primary_category():
    page = parse_oai_page((OAI / "authors_raw.xml").read_bytes(), "arXivRaw")
    rows = {r["id"]: r for r in page.rows}
    assert rows["2402.00011"]["authors"] == ["M. Rossi", "K. Tanaka", "G.A. Souliotis"]  # no "and G.A. ..."
    assert rows["2402.00011"]["doi"] == ["10.1000/aaa.1", "10.1000/aaa.2"]
    # affiliation numbers and the affiliation list are not authors
    assert rows["2402.00012"]["authors"] == ["A. Kowalski", "B. Oduya", "C. Lindgren"]
    assert rows["2402.00012"]["doi"] == ["10.1000/bbb.1", "10.1000/bbb.2", "10.1000/bbb.3"]
    assert rows["astro-ph/0602013"]["authors"] == [
        "J. Doe Jr.",
        "A. Roe",
        "C. Poe III",
        "the Halo Survey Team",
    ]
    assert rows["astro-ph/0602013"]["doi"] is None
    assert [r["categories"][0] for r in page.rows] == ["astro-ph.HE", "nucl-th", "astro-ph"]  # primary first


def test_arxiv_format_structured_authors_and_dois():
    rows = {r["id"]: r for r in parse_oai_page((OAI / "authors_arxiv.xml").read_bytes(), "arXiv").rows}
    assert rows["2402.00012"]["authors"] == ["A. Kowalski", "B. Oduya"]  # <affiliation> is not a name
    assert rows["2402.00012"]["doi"] == ["10.1000/bbb.1", "10.1000/bbb.2"]
    assert rows["astro-ph/0602013"]["authors"] == ["J. Doe Jr.", "C. Poe III", "Halo Survey Team"]
    assert rows["2402.00012"]["categories"] == ["nucl-th", "astro-ph.HE"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("A. Smith and B. Jones", ["A. Smith", "B. Jones"]),
        ("A. Smith, B. Jones, and C. Brown", ["A. Smith", "B. Jones", "C. Brown"]),
        (
            "Alexander Sandberg, Ferdinand Anderson",
            ["Alexander Sandberg", "Ferdinand Anderson"],
        ),  # "and" in names
        ("A. Smith (Univ. X (Dept. Y)), B. Jones (Inst. Z)", ["A. Smith", "B. Jones"]),
        ("R. Brown Sr., S. Green, Jr. and T. White II", ["R. Brown Sr.", "S. Green Jr.", "T. White II"]),
        ("K. Lee et al.", ["K. Lee"]),
        ("  ", None),
    ],
)
def test_split_authors(text, names):
    assert split_authors(text) == names


def test_oai_primary_only_keeps_papers_whose_first_category_is_astro_ph(arxiv_server, tmp_path):
    from astrollama.data.cli import main

    base = arxiv_server.url + "/oai"
    m = Manifest(tmp_path)
    r = harvest_oai(m, base_url=base, client=fast_client(), primary_only=True)
    assert r.complete and "2401.00233" not in m.ids()  # gr-qc primary, cross-listed to astro-ph.HE
    assert m.ids() == [i for i in HARVESTED if i != "2401.00233"]
    state = json.loads(r.state_path.read_text())
    assert state["not_primary"] == 1 and state["params"]["primary_only"] is True
    # the same harvest without the filter is another harvest (its own checkpoint) and keeps it
    assert main(["harvest", "oai", "--root", str(tmp_path), "--base-url", base, "--delay", "0"]) == 0
    assert "2401.00233" in m.ids()
    raw = tmp_path / "raw"
    assert (
        main(
            [
                "harvest",
                "oai",
                "--root",
                str(raw),
                "--base-url",
                base,
                "--delay",
                "0",
                "--metadata-prefix",
                "arXivRaw",
                "--primary-only",
            ]
        )
        == 0
    )
    assert Manifest(raw).ids() == ["2401.00101", "astro-ph/0601050"]


def test_oai_errors(arxiv_server, tmp_path):
    base = arxiv_server.url + "/oai"
    # noRecordsMatch is an empty, complete harvest
    r = harvest_oai(Manifest(tmp_path / "a"), base_url=base, from_date="2030-01-01", client=fast_client())
    assert (r.records, r.complete) == (0, True) and Manifest(tmp_path / "a").ids() == []
    # an expired token on resume: a clear error, then --restart recovers with no duplicates
    m = Manifest(tmp_path / "b")
    harvest_oai(m, base_url=base, client=fast_client(), max_pages=1)
    arxiv_server.script["oai:6960524|1001"].append(
        ("status", 200, {}, (OAI / "error_badResumptionToken.xml").read_bytes())
    )
    with pytest.raises(OAIError, match="badResumptionToken.*--restart") as err:
        harvest_oai(m, base_url=base, client=fast_client())
    assert err.value.code == "badResumptionToken"
    assert harvest_oai(m, base_url=base, client=fast_client(), restart=True).complete
    full = tmp_path / "full"
    harvest_oai(Manifest(full), base_url=base, client=fast_client())
    assert papers_digest(tmp_path / "b") == papers_digest(full)
    # garbage instead of XML, and a bad argument, are errors naming the problem
    arxiv_server.script["oai:first"].append(("status", 200, {}, b"<html><body>maintenance</body>"))
    with pytest.raises(HarvestError, match="invalid OAI-PMH XML"):
        harvest_oai(Manifest(tmp_path / "c"), base_url=base, client=fast_client())
    with pytest.raises(HarvestError, match="--from must be YYYY-MM-DD"):
        harvest_oai(Manifest(tmp_path / "c"), base_url=base, from_date="2024/01/01")
    arxiv_server.script["oai:first"].append(("status", 200, {}, (OAI / "error_badArgument.xml").read_bytes()))
    with pytest.raises(OAIError, match="badArgument"):
        harvest_oai(Manifest(tmp_path / "c"), base_url=base, client=fast_client())
    # the CLI turns bad input into one line and exit code 2 (astrollama.errors)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "astrollama",
            "data",
            "harvest",
            "oai",
            "--root",
            str(tmp_path / "d"),
            "--base-url",
            base,
            "--from",
            "Jan 2024",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "astrollama data: error: --from must be YYYY-MM-DD (a real date), got 'Jan 2024'"
    )


def test_oai_503_retry_after_429_5xx_timeouts(arxiv_server, tmp_path):
    s = arxiv_server.script
    s["oai:first"] += [
        ("status", 503, {"Retry-After": "1"}, (OAI / "503.html").read_bytes()),
        ("status", 500, {}, b"oops"),
        ("drop",),
        ("delay", 1.5),
    ]
    s["oai:6960524|1001"] += [("status", 429, {"Retry-After": "3600"}, b"slow down")]  # capped below
    s["oai:6960524|2001"] += [("status", 502, {}, b"bad gateway"), ("status", 504, {}, b"")]
    client = fast_client(max_retries=5, timeout=0.4, max_retry_after=0.2)
    t0 = time.monotonic()
    r = harvest_oai(Manifest(tmp_path), base_url=arxiv_server.url + "/oai", client=client)
    elapsed = time.monotonic() - t0
    assert r.complete and Manifest(tmp_path).ids() == HARVESTED
    first = [t for t, _, _ in arxiv_server.hits("oai:first")]
    assert len(first) == 5  # 503, 500, dropped, timed out, ok
    assert first[1] - first[0] >= 0.15  # Retry-After: 1, capped by max_retry_after=0.2
    second = [t for t, _, _ in arxiv_server.hits("oai:6960524|1001")]
    assert len(second) == 2 and 0.15 <= second[1] - second[0] < 2  # 429 Retry-After: 3600 -> 0.2 s
    assert client.requests_made == 5 + 2 + 3
    assert elapsed < 10
    # Retry-After honoured in full when under the cap
    s["oai:first"] += [("status", 503, {"Retry-After": "1"}, b"")]
    t0 = time.monotonic()
    harvest_oai(
        Manifest(tmp_path / "b"),
        base_url=arxiv_server.url + "/oai",
        client=fast_client(max_retry_after=5),
        max_pages=1,
    )
    hits = [t for t, _, _ in arxiv_server.hits("oai:first")][-2:]
    assert hits[1] - hits[0] >= 0.9  # Retry-After: 1 honoured (1 s, less server-side jitter)
    # retries are bounded: the harvest stops with a clear error and keeps its token
    m = Manifest(tmp_path / "c")
    harvest_oai(m, base_url=arxiv_server.url + "/oai", client=fast_client(), max_pages=1)
    s["oai:6960524|1001"] += [("status", 503, {"Retry-After": "0"}, b"")] * 3
    with pytest.raises(HttpError, match=r"gave up after 3 attempts: HTTP 503"):
        harvest_oai(m, base_url=arxiv_server.url + "/oai", client=fast_client(max_retries=2))
    state = json.loads(next((m.dir / "harvest").glob("oai-*.json")).read_text())
    assert state["token"] == "6960524|1001" and state["pages"] == 1


def _harvest_cmd(root: Path, base: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "astrollama",
        "data",
        "harvest",
        "oai",
        "--root",
        str(root),
        "--base-url",
        base,
        "--from",
        "2024-01-01",
        "--delay",
        "0",
        "--backoff",
        "0.01",
    ]


def test_oai_kill_9_mid_harvest_resumes_identically(arxiv_server, tmp_path):
    base = arxiv_server.url + "/oai"
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(_harvest_cmd(clean, base), check=True, env=ENV, timeout=60, capture_output=True)
    arxiv_server.log.clear()
    arxiv_server.script["oai:6960524|2001"].append(("hang",))  # page 3 never answers
    proc = subprocess.Popen(_harvest_cmd(killed, base), env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not arxiv_server.hits("oai:6960524|2001") and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads(next((killed / "manifest" / "harvest").glob("oai-*.json")).read_text())
    assert (state["pages"], state["token"], state["complete"]) == (2, "6960524|2001", False)
    assert len(Manifest(killed).ids()) == 5  # pages 1-2 merged (5 papers), page 3 missing
    arxiv_server.log.clear()
    subprocess.run(_harvest_cmd(killed, base), check=True, env=ENV, timeout=60, capture_output=True)
    # the rerun continued from the saved token: one request, for page 3
    assert [e[1] for e in arxiv_server.log] == ["oai:6960524|2001"]
    assert papers_digest(killed) == papers_digest(clean)
    assert Manifest(killed).ids() == HARVESTED


def test_oai_kill_9_at_random_points(arxiv_server, tmp_path):
    """SIGKILL at random moments (mid-request, mid-merge, mid-checkpoint): always the same result."""
    base = arxiv_server.url + "/oai"
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(_harvest_cmd(clean, base), check=True, env=ENV, timeout=60, capture_output=True)
    rng = random.Random(3)
    for _ in range(4):
        for route in ("oai:first", "oai:6960524|1001", "oai:6960524|2001"):
            arxiv_server.script[route].append(("delay", 0.15))
        proc = subprocess.Popen(_harvest_cmd(killed, base), env=ENV, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    arxiv_server.script.clear()
    subprocess.run(_harvest_cmd(killed, base), check=True, env=ENV, timeout=60, capture_output=True)
    assert papers_digest(killed) == papers_digest(clean)


# ----------------------------------------------------------------------------- Kaggle + API


def test_kaggle_import(tmp_path):
    snap = FIX / "kaggle" / "arxiv-metadata-oai-snapshot.json"
    m = Manifest(tmp_path / "a")
    r = import_kaggle(m, snap, from_date="2024-01-01", until_date="2024-01-31", batch_size=2)
    assert (r.lines, r.kept) == (8, 4)
    assert m.ids() == ["2401.00101", "2401.00233", "2401.00412", "2401.00888"]  # cross-lists included
    bar = m.get("2401.00101")
    assert (bar["version"], bar["published"], bar["updated"]) == (2, "2024-01-02", "2024-01-20")
    assert bar["title"] == "Delayed bar formation in gas-rich disc galaxies at cosmic noon"
    assert bar["authors"] == ["Adaeze N. Okafor", "Maja Lindqvist"] and bar["source"] == "kaggle"
    # primary category only; no date window (old-style ids too)
    m2 = Manifest(tmp_path / "b")
    import_kaggle(m2, snap, primary_only=True)
    assert m2.ids() == ["2312.09999", "2401.00101", "2401.00412", "2402.00011", "astro-ph/0601050"]
    assert m2.get("astro-ph/0601050")["authors"] == ["Joao Ferreira Jr"]
    # resume from a checkpoint (as after a kill between batches): same merged rows
    state_path = next((m.dir / "harvest").glob("kaggle-*.json"))
    state = json.loads(state_path.read_text())
    assert state["complete"] and state["offset"] == snap.stat().st_size
    digest = papers_digest(tmp_path / "a")
    state.update(complete=False, offset=snap.read_bytes().index(b'{"id": "2401.00412"'), lines=5, kept=2)
    state_path.write_text(json.dumps(state))
    r = import_kaggle(m, snap, from_date="2024-01-01", until_date="2024-01-31", batch_size=2)
    assert r.kept == 4 and papers_digest(tmp_path / "a") == digest
    # bad input: file and line named
    bad = tmp_path / "bad.json"
    bad.write_bytes(snap.read_bytes().replace(b'{"id": "2401.00412"', b'{"id": 2401.00412'))
    with pytest.raises(ManifestError, match=r"bad.json:6: field 'id' is not an arXiv id"):
        import_kaggle(Manifest(tmp_path / "c"), bad)
    bad.write_text('{"id": "2401.00001", "categories": "astro-ph"\n')
    with pytest.raises(ManifestError, match=r"bad.json:1: invalid JSON"):
        import_kaggle(Manifest(tmp_path / "c"), bad)


def test_kaggle_import_kill_9_resumes_identically(tmp_path):
    """A real SIGKILL between checkpoints of a 9k-line snapshot import, then a rerun."""
    snap = tmp_path / "snapshot.json"
    with open(snap, "w") as fh:
        for i in range(9_000):
            cat = "astro-ph.GA" if i % 3 else "hep-th"
            fh.write(
                json.dumps(
                    {
                        "id": f"2301.{i:05d}",
                        "title": f"Paper {i}",
                        "abstract": "Stellar bars. " * 20,
                        "categories": cat,
                        "authors_parsed": [["Person", "A.", ""]],
                        "versions": [{"version": "v1", "created": "Mon, 2 Jan 2023 10:00:00 GMT"}],
                    }
                )
                + "\n"
            )
    cmd = [sys.executable, "-m", "astrollama", "data", "harvest", "kaggle", str(snap), "--batch-size", "150"]
    subprocess.run(
        [*cmd, "--root", str(tmp_path / "clean")], check=True, env=ENV, timeout=120, capture_output=True
    )
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--root", str(killed)], env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    state: dict = {}
    while time.monotonic() < deadline:
        ck = list((killed / "manifest" / "harvest").glob("kaggle-*.json"))
        if ck:
            with contextlib.suppress(json.JSONDecodeError, FileNotFoundError):
                state = json.loads(ck[0].read_text())
            if state.get("kept", 0) >= 900:
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads(next((killed / "manifest" / "harvest").glob("kaggle-*.json")).read_text())
    assert not state["complete"] and 0 < state["offset"] < snap.stat().st_size
    assert 0 < len(Manifest(killed).ids()) < 6_000
    subprocess.run([*cmd, "--root", str(killed)], check=True, env=ENV, timeout=120, capture_output=True)
    assert len(Manifest(killed).ids()) == 6_000
    assert papers_digest(killed) == papers_digest(tmp_path / "clean")


def test_lookup_with_the_arxiv_package(arxiv_server, tmp_path):
    api = arxiv_server.url + "/api/query"
    rows = lookup(["2401.00101", "astro-ph/0601050"], page_size=1, delay_seconds=0.3, api_url=api)
    assert [(r["id"], r["version"]) for r in rows] == [("2401.00101", 2), ("astro-ph/0601050", 2)]
    assert rows[0]["title"] == "Delayed bar formation in gas-rich disc galaxies at cosmic noon"
    assert rows[0]["categories"] == ["astro-ph.GA", "astro-ph.CO"] and rows[0]["published"] == "2024-01-02"
    assert rows[1]["journal_ref"].startswith("Mon.Not.") and rows[1]["doi"] == [
        "10.1111/j.1365-2966.2006.00001.x"
    ]
    times = [t for t, _, _ in arxiv_server.hits("api")]
    assert len(times) == 2 and times[1] - times[0] >= 0.25  # the package's own delay between pages
    # a query, with one 503 that the package retries
    arxiv_server.script["api"].append(("status", 503, {}, b"busy"))
    rows = lookup(query="cat:astro-ph.EP", delay_seconds=0.0, api_url=api)
    assert [r["id"] for r in rows] == ["2401.00412"]
    arxiv_server.script["api"] += [("status", 500, {}, b"down")] * 2
    with pytest.raises(HarvestError, match="arXiv API look-up failed"):
        lookup(["2401.00101"], delay_seconds=0.0, num_retries=1, api_url=api)
    # primary category: the API's arxiv:primary_category, listed first; --primary-only drops cross-lists
    cross = lookup(query="cat:astro-ph.HE", delay_seconds=0.0, api_url=api)
    assert [(r["id"], r["categories"], r["doi"]) for r in cross] == [
        ("2401.00233", ["gr-qc", "astro-ph.HE"], ["10.1000/ring.1", "10.1000/ring.2"])
    ]
    assert lookup(query="cat:astro-ph.HE", delay_seconds=0.0, api_url=api, primary_only=True) == []
    # CLI: print and upsert
    from astrollama.data.cli import main

    assert (
        main(
            [
                "harvest",
                "lookup",
                "--root",
                str(tmp_path),
                "--query",
                "cat:astro-ph.HE",
                "--api-url",
                api,
                "--delay",
                "0",
                "--primary-only",
            ]
        )
        == 0
    )
    assert Manifest(tmp_path).ids() == []

    assert (
        main(
            [
                "harvest",
                "lookup",
                "--root",
                str(tmp_path),
                "--ids",
                "2401.00412",
                "--api-url",
                api,
                "--delay",
                "0",
            ]
        )
        == 0
    )
    assert Manifest(tmp_path).get("2401.00412")["source"] == "arxiv-api"


# ----------------------------------------------------------------------------- download


def make_pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_targz(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def seed(root: Path, ids: list[str]) -> Manifest:
    m = Manifest(root)
    m.upsert_papers([{"id": pid, "title": f"Paper {pid}"} for pid in ids])
    return m


TEX = b"\\documentclass{aastex}\\begin{document}\\section{Introduction}Bars.\\end{document}\n"
DL_IDS = ["2401.00101", "2401.00233", "2401.00345", "2401.00412", "2401.00567", "astro-ph/0601050"]


def stock(server: FakeArxiv) -> None:
    server.pdfs.update(
        {
            "2401.00101": make_pdf("Bars in discs"),
            "2401.00233": (FIX / "arxiv_web" / "not_a_pdf.html").read_bytes(),  # HTML with status 200
            "2401.00345": make_pdf("Asteroseismology")[:-200],  # truncated download
            # 2401.00412: no PDF at all -> 404
            "2401.00567": make_pdf("BAO"),
            "astro-ph/0601050v2": make_pdf("Dust lanes"),
        }
    )
    server.eprints.update(
        {
            "2401.00101": make_targz({"main.tex": TEX, "figs/f1.eps": b"%!PS-Adobe"}),
            "2401.00233": gzip.compress(TEX, mtime=0),  # single gzipped .tex
            "2401.00345": make_pdf("only a PDF"),  # no LaTeX source
            "2401.00412": make_targz({"../evil.tex": TEX}),  # path traversal
            "2401.00567": make_targz({"paper.tex": TEX}, mode="w"),  # plain tar
            "astro-ph/0601050": make_targz({"ms.tex": TEX}),
        }
    )


def test_download_checks_content_and_records_failures(arxiv_server, tmp_path):
    stock(arxiv_server)
    m = seed(tmp_path, DL_IDS)
    m.upsert_papers([{"id": "astro-ph/0601050", "version": 2}])
    arxiv_server.script["pdf:2401.00567"].append(("status", 429, {"Retry-After": "0"}, b"Too Many Requests"))
    client = fast_client(min_interval=0.2)
    starts: list[float] = []
    real_get = client.session.get

    def timed_get(*args, **kw):  # records when each request leaves the client (no behaviour change)
        starts.append(time.monotonic())
        return real_get(*args, **kw)

    client.session.get = timed_get
    d = Downloader(m, base_url=arxiv_server.url, client=client)
    stats = download(m, ids=None, downloader=d, progress=False)
    assert (stats["pdf"].ok, stats["pdf"].failed) == (3, 3)
    assert (stats["src"].ok, stats["src"].failed) == (4, 2)
    fails = m.failures("download_pdf")
    assert fails["2401.00233"].startswith("ContentError: not a PDF (text/html; charset=utf-8, ")
    assert "PDF unavailable" not in fails["2401.00233"] and "<!DOCTYPE html>" in fails["2401.00233"]
    assert fails["2401.00345"].startswith("ContentError: truncated PDF")
    assert fails["2401.00412"].startswith("HttpError: HTTP 404")
    sfails = m.failures("download_src")
    assert sfails == {
        "2401.00345": "ContentError: no LaTeX source: the e-print is a PDF",
        "2401.00412": sfails["2401.00412"],
    }
    assert (
        sfails["2401.00412"]
        == "ContentError: unsafe member in source tar: '../evil.tex' (outside destination)"
    )
    assert not (tmp_path / "src" / "evil.tex").exists()
    # files: atomic, namespaced, bucketed by yymm; the version from the manifest is in the URL
    pdf = m.status("download_pdf")["astro-ph/0601050"]
    assert pdf.outputs == {"pdf": "pdf/0601/astro-ph_0601050.pdf"}
    assert m.resolve(pdf.outputs["pdf"]).read_bytes() == arxiv_server.pdfs["astro-ph/0601050v2"]
    assert "pdf:astro-ph/0601050v2" in [e[1] for e in arxiv_server.log]
    src = m.status("download_src")
    assert sorted(p.name for p in (tmp_path / "src/2401/2401.00101").rglob("*")) == [
        "f1.eps",
        "figs",
        "main.tex",
    ]
    assert src["2401.00233"].attrs["kind"] == "tex.gz"
    assert (tmp_path / src["2401.00233"].outputs["src"] / "main.tex").read_bytes() == TEX
    assert (
        src["2401.00567"].attrs["kind"] == "tar"
        and src["astro-ph/0601050"].outputs["src"] == "src/0601/astro-ph_0601050"
    )
    assert not list(tmp_path.rglob(".*.tmp"))  # no temp files left behind
    # rate limit: every request (retries included) leaves at least 0.2 s after the previous one,
    # and the server sees the same spacing (less scheduling jitter on a loaded 2-core machine)
    assert len(starts) == 13  # 6 pdf + 1 retry after 429 + 6 e-print
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.2 - 1e-3, gaps
    times = [t for t, route, _ in arxiv_server.log if route.startswith(("pdf:", "e-print:"))]
    assert len(times) == 13
    server_gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(server_gaps) >= 0.15 and sum(server_gaps) / len(server_gaps) >= 0.195, server_gaps
    # a rerun does nothing (all terminal); --retry-failed only redoes the failures
    arxiv_server.log.clear()
    download(m, downloader=d, progress=False)
    assert arxiv_server.log == []
    arxiv_server.pdfs["2401.00412"] = make_pdf("Neptune")
    stats = download(m, ("pdf",), downloader=d, retry_failed=True, progress=False)
    assert stats["pdf"].ok == 1 and "2401.00412" not in m.failures("download_pdf")


def test_download_403_stops_the_shard(arxiv_server, tmp_path):
    stock(arxiv_server)
    m = seed(tmp_path, DL_IDS)
    arxiv_server.script["pdf:2401.00233"].append(("status", 403, {}, b"<html>Access denied</html>"))
    d = Downloader(m, base_url=arxiv_server.url, client=fast_client())
    with pytest.raises(StageAbort, match="HTTP 403"):
        download(m, ("pdf",), downloader=d, progress=False)
    assert list(m.status("download_pdf")) == ["2401.00101"]  # nothing recorded for the 403 paper
    assert len(m.pending("download_pdf")) == 5


def _download_cmd(root: Path, base: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "astrollama",
        "data",
        "download",
        "--root",
        str(root),
        "--base-url",
        base,
        "--delay",
        "0",
        "--backoff",
        "0.01",
        "--max-retries",
        "1",
    ]


def test_download_kill_9_resumes_identically(arxiv_server, tmp_path):
    stock(arxiv_server)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for root in (clean, killed):
        seed(root, DL_IDS)
    subprocess.run(
        _download_cmd(clean, arxiv_server.url), check=True, env=ENV, timeout=60, capture_output=True
    )
    arxiv_server.log.clear()
    arxiv_server.script["e-print:2401.00412"].append(("hang",))  # stuck in the middle of the src stage
    proc = subprocess.Popen(_download_cmd(killed, arxiv_server.url), env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not arxiv_server.hits("e-print:2401.00412") and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < len(Manifest(killed).status("download_src")) < len(DL_IDS)
    subprocess.run(
        _download_cmd(killed, arxiv_server.url), check=True, env=ENV, timeout=60, capture_output=True
    )

    def snapshot(root: Path):
        m = Manifest(root)
        files = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for d in ("pdf", "src")
            for p in sorted((root / d).rglob("*"))
            if p.is_file()
        }
        recs = {
            (st, pid): (r.status, r.error, r.outputs, r.attrs.get("kind"))
            for st in ("download_pdf", "download_src")
            for pid, r in m.status(st).items()
        }
        return files, recs

    (kf, kr), (cf, cr) = snapshot(killed), snapshot(clean)
    assert kf == cf
    assert {k: v for k, v in kr.items() if cr.get(k) != v} == {}
    for stage in ("download_pdf", "download_src"):  # no paper recorded twice
        lines = Manifest(killed).status_path(stage, "00000-of-00001").read_text().splitlines()
        ids = [json.loads(x)["id"] for x in lines]
        assert sorted(ids) == sorted(DL_IDS)


def test_download_from_bulk_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    files = {
        "pdf/2401/2401.00101v1.pdf": make_pdf("v1"),
        "pdf/2401/2401.00101v2.pdf": make_pdf("v2"),  # highest version wins
        "2401/2401.00233v1.pdf": make_pdf("S3 tar layout"),
        "arxiv/pdf/2401/2401.00345v3.pdf": make_pdf("GCS layout"),
        "astro-ph/pdf/0601/0601050v2.pdf": make_pdf("GCS old-style"),
        "src/2401/2401.00101.gz": make_targz({"main.tex": TEX}),
        "0601/astro-ph0601050.gz": gzip.compress(TEX, mtime=0),  # S3 src tar, old-style name
        "pdf/2401/2401.00567v1.pdf": b"<!DOCTYPE html><html>error</html>",
    }
    for rel, data in files.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(data)
    m = seed(tmp_path / "root", ["2401.00101", "2401.00233", "2401.00345", "2401.00567", "astro-ph/0601050"])
    from astrollama.data.cli import main

    assert main(["download", "--root", str(tmp_path / "root"), "--mirror", str(mirror)]) == 0
    pdf = m.status("download_pdf")
    assert {k: v.status for k, v in pdf.items()} == {
        "2401.00101": "ok",
        "2401.00233": "ok",
        "2401.00345": "ok",
        "2401.00567": "failed",
        "astro-ph/0601050": "ok",
    }
    assert m.resolve(pdf["2401.00101"].outputs["pdf"]).read_bytes() == files["pdf/2401/2401.00101v2.pdf"]
    assert pdf["astro-ph/0601050"].attrs["from"].endswith("astro-ph/pdf/0601/0601050v2.pdf")
    src = m.status("download_src")
    assert src["astro-ph/0601050"].status == "ok" and src["astro-ph/0601050"].attrs["kind"] == "tex.gz"
    assert m.failures("download_src")["2401.00233"].startswith("FileNotFoundError: not in mirror")
    # a version the mirror lacks is not silently replaced by another version
    m.upsert_papers([{"id": "2401.00345", "version": 1}])
    assert Mirror(mirror).find("2401.00345", "pdf", 1) is None
    assert Mirror(mirror).find("2401.00345", "pdf", 3).name == "2401.00345v3.pdf"


def test_local_papers_json_then_flat_mirror(tmp_path):
    """Papers that are not on arXiv (the bundled demo): metadata from JSON, PDFs from a flat dir."""
    papers, mirror = tmp_path / "papers", tmp_path / "pdfs"
    papers.mkdir()
    mirror.mkdir()
    for k in (1, 2):
        paper = {
            "id": f"demo/000{k}",
            "title": f"Demo paper {k}",
            "authors": ["I. Marwood"],
            "categories": ["astro-ph.GA"],
            "published": "2024-02-09",
            "abstract": "We present.",
            "sections": [{"heading": "Introduction", "text": "Bars."}],
            "references": ["A 2017"],
        }
        (papers / f"demo_000{k}.json").write_text(json.dumps(paper))
        (mirror / f"demo_000{k}.pdf").write_bytes(make_pdf(paper["title"]))
    from astrollama.data.cli import main

    root = tmp_path / "root"
    assert main(["harvest", "json", "--root", str(root), str(papers)]) == 0
    m = Manifest(root)
    assert m.ids() == ["demo/0001", "demo/0002"]
    assert m.get("demo/0001") == {
        "id": "demo/0001",
        "title": "Demo paper 1",
        "authors": ["I. Marwood"],
        "categories": ["astro-ph.GA"],
        "published": "2024-02-09",
        "abstract": "We present.",
        "source": "local",
    }
    assert main(["download", "--root", str(root), "--mirror", str(mirror), "--kinds", "pdf"]) == 0
    st = m.status("download_pdf")
    assert st["demo/0002"].outputs == {"pdf": "pdf/0002/demo_0002.pdf"}
    assert m.resolve(st["demo/0002"].outputs["pdf"]).read_bytes() == (mirror / "demo_0002.pdf").read_bytes()
    (papers / "bad.json").write_text('{"id": "demo_0003"}')
    with pytest.raises(ManifestError, match=r"bad.json:1: field 'id'"):
        import_rows(m, [papers])


@pytest.mark.slurm
def test_download_job_array_on_slurm(slurm_cluster, repo_root, tmp_path):
    """slurm/download.sh as a real 3-task job array over a mirror: every paper once, 3 markers."""
    ids = [f"2401.{i:05d}" for i in range(1, 13)]
    mirror = tmp_path / "mirror"
    for pid in ids:
        (mirror / "pdf" / "2401").mkdir(parents=True, exist_ok=True)
        (mirror / "pdf" / "2401" / f"{pid}v1.pdf").write_bytes(make_pdf(pid))
    root = tmp_path / "root"
    m = seed(root, ids)
    cmd = [
        "sbatch",
        "--wait",
        "--array=0-2",
        f"--output={tmp_path}/%A_%a.out",
        "--time=10",
        str(repo_root / "slurm" / "download.sh"),
        str(root),
        "--mirror",
        str(mirror),
        "--kinds",
        "pdf",
    ]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("*.out")))
    assert proc.returncode == 0, proc.stderr + logs
    st = m.status("download_pdf")
    assert sorted(st) == ids and all(r.status == "ok" for r in st.values())
    assert sorted(r.shard for r in st.values()) == sorted(
        f"{k:05d}-of-00003" for k in range(3) for pid in ids if pid in shard_of(ids, k, 3)
    )
    assert len(list((m.dir / "done" / "download_pdf").glob("*.json"))) == 3
