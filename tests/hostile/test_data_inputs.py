"""Hostile inputs and faults for the data-prep commands (``astrollama data ...``).

Every case runs the real command (``astrollama.cli.main`` in-process, via the shared
``refuse``/``run_cli`` helpers of tests/hostile/conftest.py) and asserts the exit code, the one
line it prints, no traceback, and that nothing outside the intended output was written. Inputs that
are one paper's problem (a bad e-print, a bad PDF) are not command errors: the command exits 0 and
the paper gets a terminal ``failed`` record with a one-line reason (:func:`recorded_failure`).
Faults of the machine (disk full, a killed worker) exit 1, record nothing, write no completion
marker, and the rerun does the work.
"""

from __future__ import annotations

import errno
import functools
import gzip
import http.server
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from astrollama.data import pdfgen
from astrollama.data.manifest import Manifest, paper_path
from astrollama.data.split import split_fraction
from astrollama.tools import badpdfs
from tests.hostile.conftest import snapshot

PID = "2401.00101"


VOCAB = (
    "bar",
    "disc",
    "halo",
    "spiral",
    "galaxy",
    "stellar",
    "mass",
    "gas",
    "dust",
    "orbit",
    "cluster",
    "redshift",
    "survey",
    "velocity",
    "profile",
    "metallicity",
    "bulge",
    "merger",
    "ring",
    "arm",
)


def make_paper(pid: str, words: int = 60) -> dict:
    rng = random.Random(pid)  # distinct text per paper: the build's near-duplicate filter keeps them all
    body = " ".join(rng.choice(VOCAB) + str(rng.randrange(1000)) for _ in range(words))
    return {
        "id": pid,
        "title": f"Bars in galaxy sample {pid}",
        "authors": ["A. Author"],
        "categories": ["astro-ph.GA"],
        "published": "2024-01-01",
        "abstract": body,
        "sections": [{"heading": "Introduction", "text": body}],
    }


def seeded_root(tmp_path: Path, ids=(PID,)) -> Path:
    root = tmp_path / "root"
    Manifest(root).upsert_papers([{"id": pid, "title": f"paper {pid}"} for pid in ids])
    return root


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None], gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return gzip.compress(raw) if gz else raw


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.fixture
def recorded_failure(run_astrollama):
    """``check(argv, tmp_path, root, stage, pid, expect)``: a stage run on a bad input exits 0,
    ``pid`` failed with ``expect`` in a one-line reason, nothing was written outside
    ``root/manifest`` (+ ``allow``), no traceback. Returns the reason."""
    return functools.partial(_recorded_failure, run_astrollama)


def _recorded_failure(
    run,
    argv: list[str],
    tmp_path: Path,
    root: Path,
    stage: str,
    pid: str,
    expect: str,
    allow: tuple[Path, ...] = (),
) -> str:
    """(``allow``: stage output directories where empty month directories may appear.)"""
    before = snapshot(tmp_path)
    r = run(argv)
    shown = f"exit {r.code}\n{r.stderr[-3000:]}"
    assert r.code == 0 and "Traceback" not in r.stderr + r.stdout, shown
    rec = Manifest(root).status(stage)[pid]
    assert rec.status == "failed" and expect in rec.error and "\n" not in rec.error, (rec, shown)
    after = snapshot(tmp_path)
    changed = [
        p
        for p in set(before) | set(after)
        if before.get(p) != after.get(p)
        and not p.startswith(str(root / "manifest") + os.sep)
        and not (
            after.get(p, ("",))[0] == "dir"
            and any(p.startswith(str(a) + os.sep) or p == str(a) for a in allow)
        )
    ]
    assert not changed, f"written outside the intended output: {sorted(changed)}\n{shown}"
    return rec.error


# ============================================================================ e-prints


def _gzip_bomb() -> bytes:
    """2 MB of gzip that inflates to 2 GiB: a tar whose one member is 2 GiB of zeros."""
    head = tarfile.TarInfo("main.tex")
    head.size = 2 << 30
    hdr = head.tobuf(format=tarfile.USTAR_FORMAT)
    block = gzip.compress(bytes(1 << 20), 9)
    return gzip.compress(hdr + bytes((1 << 20) - len(hdr)), 9) + block * 2047  # gzip members concatenate


EPRINTS = {
    # kind: (file name in the mirror, bytes, expected reason fragment)
    "tar-absolute-name": (
        "tar.gz",
        lambda: tar_bytes((member("/abs/main.tex"), b"x")),
        "unsafe member in source tar: '/abs/main.tex' (absolute path)",
    ),
    "tar-dotdot": (
        "tar.gz",
        lambda: tar_bytes((member("ok.tex"), b"x"), (member("a/../../evil.tex"), b"x")),
        "'a/../../evil.tex' (outside destination)",
    ),
    "tar-symlink-out": (
        "tar.gz",
        lambda: tar_bytes((member("passwd", tarfile.SYMTYPE, "/etc/passwd"), None)),
        "'passwd' (link to '/etc/passwd' outside destination)",
    ),
    "tar-symlink-dotdot": (
        "tar.gz",
        lambda: tar_bytes((member("d/up", tarfile.SYMTYPE, "../../x"), None)),
        "'d/up' (link to '../../x' outside destination)",
    ),
    "tar-hardlink-out": (
        "tar.gz",
        lambda: tar_bytes((member("h", tarfile.LNKTYPE, "../outside"), None)),
        "'h' (link to '../outside' outside destination)",
    ),
    "tar-device": (
        "tar.gz",
        lambda: tar_bytes((member("dev", tarfile.CHRTYPE), None)),
        "'dev' (special file (device or fifo))",
    ),
    "tar-fifo": (
        "tar",
        lambda: tar_bytes((member("fifo", tarfile.FIFOTYPE), None), gz=False),
        "'fifo' (special file (device or fifo))",
    ),
    "truncated-gzip": (
        "gz",
        lambda: gzip.compress(b"\\documentclass{article}" * 500)[:-40],
        "corrupt gzip e-print",
    ),
    "truncated-tar": (
        "tar",
        lambda: tar_bytes((member("main.tex"), b"\\section{A}" * 3000), gz=False)[:20000],
        "truncated or corrupt tar e-print",
    ),
    "garbage-gzip": ("gz", lambda: b"\x1f\x8b\x08\x00" + os.urandom(64), "corrupt gzip e-print"),
    "html-page": (
        "tex",
        lambda: b"<!DOCTYPE html><html><body>rate limited</body></html>",
        "not a source archive",
    ),
    "pdf-only": ("gz", lambda: gzip.compress(b"%PDF-1.4\n...%%EOF"), "no LaTeX source: the e-print is a PDF"),
    "binary-junk": ("tex", lambda: b"\x00\x01\x02" * 100, "unrecognised e-print format"),
    "empty-tar": ("tar", lambda: bytes(10240), "empty tar e-print (no members)"),
}


@pytest.mark.parametrize("kind", sorted(EPRINTS))
def test_hostile_eprint_is_a_recorded_failure_and_extracts_nothing(kind, tmp_path, recorded_failure):
    ext, make, expect = EPRINTS[kind]
    root, mirror = seeded_root(tmp_path), tmp_path / "mirror"
    (mirror / "src" / "2401").mkdir(parents=True)
    (mirror / "src" / "2401" / f"{PID}.{ext}").write_bytes(make())
    recorded_failure(
        ["data", "download", "--root", root, "--mirror", mirror, "--kinds", "src"],
        tmp_path,
        root,
        "download_src",
        PID,
        expect,
        (root / "src",),
    )


def test_gzip_bomb_is_refused_fast_in_constant_memory_with_the_true_reason(tmp_path, recorded_failure):
    root, mirror = seeded_root(tmp_path), tmp_path / "mirror"
    (mirror / "src" / "2401").mkdir(parents=True)
    bomb = _gzip_bomb()
    assert len(bomb) < 3 << 20
    (mirror / "src" / "2401" / f"{PID}.tar.gz").write_bytes(bomb)
    rss0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()
    err = recorded_failure(
        ["data", "download", "--root", root, "--mirror", mirror, "--kinds", "src"],
        tmp_path,
        root,
        "download_src",
        PID,
        "decompressed size exceeds 1073741824 bytes",
        (root / "src",),
    )
    seconds, rss_mb = (
        time.monotonic() - t0,
        (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024,
    )
    assert "empty tar" not in err
    assert seconds < 30 and rss_mb < 200, (seconds, rss_mb)
    # a smaller cap refuses at the cap, and a tar member that declares more than the cap is refused
    # from its header alone
    m = Manifest(root)
    recorded_failure(
        [
            "data",
            "download",
            "--root",
            root,
            "--mirror",
            mirror,
            "--kinds",
            "src",
            "--retry-failed",
            "--max-unpacked-mb",
            "8",
        ],
        tmp_path,
        root,
        "download_src",
        PID,
        "decompressed size exceeds 8388608 bytes",
        (root / "src",),
    )
    assert m.failures("download_src")[PID].startswith("ContentError: decompressed size exceeds")


# ============================================================================ PDFs


@pytest.fixture(scope="module")
def good_pdf() -> bytes:
    return pdfgen.render_paper_pdf(make_paper(PID))


PDFS = {
    "not-a-pdf": (lambda good: b"hello, this is not a PDF at all\n" * 20, "corrupt"),
    "truncated": (lambda good: good[: len(good) // 3], "corrupt"),
    "encrypted": (badpdfs.encrypted_pdf, "encrypted"),
    "zero-pages": (lambda good: badpdfs.zero_page_pdf(), "no-pages"),
    "zero-bytes": (lambda good: badpdfs.empty_file_pdf(), "empty-file"),
}


@pytest.mark.parametrize("kind", sorted(PDFS))
def test_hostile_pdf_is_a_recorded_ocr_failure(kind, good_pdf, tmp_path, recorded_failure):
    make, reason = PDFS[kind]
    root = seeded_root(tmp_path)
    pdf = paper_path(root / "pdf", PID, ".pdf")
    pdf.parent.mkdir(parents=True)
    pdf.write_bytes(make(good_pdf))
    recorded_failure(
        ["data", "ocr", "--root", root, "--backend", "pdf-text", "--workers", "0", "--no-progress"],
        tmp_path,
        root,
        "ocr",
        PID,
        f"{reason}: ",
        (root / "ocr",),
    )
    assert Manifest(root).status("ocr")[PID].attrs["reason"] == reason


@pytest.mark.parametrize(
    "body, expect",
    [
        (b"<!DOCTYPE html><html>Just a moment...</html>", "not a PDF"),
        (b"%PDF-1.5\n1 0 obj <<>> endobj\n" + b"x" * 5000, "truncated PDF: no %%EOF"),
    ],
)
def test_download_refuses_pdfs_that_are_not_pdfs(body, expect, tmp_path, recorded_failure):
    root, mirror = seeded_root(tmp_path), tmp_path / "mirror"
    (mirror / "pdf" / "2401").mkdir(parents=True)
    (mirror / "pdf" / "2401" / f"{PID}.pdf").write_bytes(body)
    recorded_failure(
        ["data", "download", "--root", root, "--mirror", mirror, "--kinds", "pdf"],
        tmp_path,
        root,
        "download_pdf",
        PID,
        expect,
        (root / "pdf",),
    )


# ============================================================================ manifests and ids


@pytest.mark.parametrize(
    "bad_id",
    [
        "demo/..",
        "demo/.",
        "/",
        "..",
        "/etc/passwd",
        "demo/00\x001",
        "demo/0001\n",
        "a/b/c",
        "demo\\..\\x",
        "",
    ],
)
def test_harvest_json_refuses_ids_that_are_not_paper_ids(bad_id, tmp_path, refuse):
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "p.json").write_text(json.dumps({"id": bad_id, "title": "t"}))
    refuse(
        ["data", "harvest", "json", "--root", tmp_path / "root", papers],
        tmp_path,
        expect=[str(papers / "p.json"), "field 'id'"],
    )


def test_a_tampered_manifest_id_is_refused_before_any_stage_path_is_built(tmp_path, refuse):
    root, mirror = seeded_root(tmp_path), tmp_path / "mirror"
    mirror.mkdir()
    with open(root / "manifest" / "papers.jsonl", "a") as fh:
        fh.write(json.dumps({"id": "demo/.."}) + "\n")
    refuse(
        ["data", "download", "--root", root, "--mirror", mirror],
        tmp_path,
        expect=["papers.jsonl:2", "field 'id'", "'demo/..'"],
    )
    clean = seeded_root(tmp_path / "clean")
    refuse(
        ["data", "download", "--root", clean, "--mirror", mirror, "--ids", "demo/.."],
        tmp_path,
        expect=["--ids", "'demo/..'"],
    )


@pytest.mark.parametrize(
    "content, expect",
    [
        (b'{"id": "2401.00101", "title": "caf\xe9"}\n', "papers.jsonl: line 1: not UTF-8"),
        (b'{"id": "2401.00101"}\n{"id": \n{"id": "2401.00102"}\n', "papers.jsonl: line 2: invalid JSON"),
        (b'["2401.00101"]\n', "papers.jsonl: line 1: expected a JSON object"),
    ],
)
def test_corrupt_papers_log_is_one_line(content, expect, tmp_path, refuse):
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "papers.jsonl").write_bytes(content)
    refuse(["data", "manifest", "summary", "--root", tmp_path], tmp_path, expect=expect)


def test_tampered_status_record_and_outputs_path(tmp_path, refuse):
    root = seeded_root(tmp_path)
    status = root / "manifest" / "status" / "aic" / "00000-of-00001.jsonl"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"id": PID, "stage": "aic", "status": "won"}) + "\n")
    refuse(
        ["data", "manifest", "summary", "--root", root], tmp_path, expect=["00000-of-00001.jsonl:1", "status"]
    )
    # an ok record whose output points outside the data root is never read into a corpus
    status.write_text(
        json.dumps(
            {
                "id": PID,
                "stage": "aic",
                "status": "ok",
                "time": 1.0,
                "outputs": {"aic": "../../../../etc/hostname"},
            }
        )
        + "\n"
    )
    refuse(
        [
            "data",
            "build",
            "--root",
            root,
            "--variants",
            "aic",
            "--out",
            tmp_path / "out",
            "--tokenizer",
            tmp_path / "no-tokenizer",
        ],
        tmp_path,
        expect=["field 'outputs'", "outside the data root"],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["download", "--mirror", "{m}"],
        ["aic"],
        ["ocr", "--backend", "pdf-text"],
    ],
)
def test_stage_on_a_root_without_manifest_writes_nothing(argv, tmp_path, refuse):
    (tmp_path / "mirror").mkdir()
    root = tmp_path / "empty-root"
    root.mkdir()
    args = ["data", argv[0], "--root", root, *[a.format(m=tmp_path / "mirror") for a in argv[1:]]]
    refuse(args, tmp_path, expect=["papers.jsonl", "no manifest"])
    assert not (root / "manifest").exists()


def test_non_utf8_metadata_files(tmp_path, refuse):
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "p.json").write_bytes(b'{"id": "2401.00101", "title": "\xff\xfe"}')
    refuse(
        ["data", "harvest", "json", "--root", tmp_path / "root", papers],
        tmp_path,
        expect=[str(papers / "p.json"), "not UTF-8"],
    )
    snap = tmp_path / "snapshot.json"
    snap.write_bytes(b'{"id": "2401.00101", "categories": "astro-ph.GA", "title": "\xe9"}\n')
    refuse(
        ["data", "harvest", "kaggle", "--root", tmp_path / "root", snap],
        tmp_path,
        expect=[f"{snap}:1", "not UTF-8"],
    )
    snap.write_bytes(b"[1, 2]\n")
    refuse(
        ["data", "harvest", "kaggle", "--root", tmp_path / "root", snap],
        tmp_path,
        expect=[f"{snap}:1", "expected a JSON object"],
    )
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"2401.00101\n\xff\n")
    root = seeded_root(tmp_path)
    (tmp_path / "mirror").mkdir()
    refuse(
        ["data", "download", "--root", root, "--mirror", tmp_path / "mirror", "--ids-file", ids],
        tmp_path,
        expect=[str(ids), "not UTF-8"],
    )


class _OneAnswer(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def _laughs(levels: int) -> bytes:
    ents = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, levels))
    return (
        f'<?xml version="1.0"?><!DOCTYPE OAI-PMH [{ents}]><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
        f"<responseDate>&l{levels - 1};</responseDate><ListRecords/></OAI-PMH>"
    ).encode()


@pytest.mark.parametrize("levels, expect", [(10, "invalid OAI-PMH XML"), (3, "carries a DOCTYPE")])
def test_oai_entity_bombs_are_refused_without_expansion(levels, expect, tmp_path, refuse):
    handler = type("H", (_OneAnswer,), {"body": _laughs(levels)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        refuse(
            [
                "data",
                "harvest",
                "oai",
                "--root",
                tmp_path / "root",
                "--delay",
                "0",
                "--max-retries",
                "0",
                "--base-url",
                f"http://127.0.0.1:{server.server_port}/oai",
            ],
            tmp_path,
            code=1,
            expect=expect,
        )
        assert time.monotonic() - t0 < 10
    finally:
        server.shutdown()


# ============================================================================ value ranges


@pytest.mark.parametrize(
    "argv, expect",
    [
        (
            ["harvest", "oai", "--from", "2024-13-45"],
            "--from must be YYYY-MM-DD (a real date), got '2024-13-45'",
        ),
        (["harvest", "oai", "--until", "2023-02-29"], "--until must be YYYY-MM-DD"),
        (
            ["harvest", "oai", "--from", "2024-02-01", "--until", "2024-01-01"],
            "--from/--until: 2024-02-01 is after",
        ),
        (["harvest", "oai", "--max-pages", "0"], "argument --max-pages: must be an integer >= 1, got '0'"),
        (["harvest", "kaggle", "{snap}", "--from", "2024-00-10"], "--from must be YYYY-MM-DD"),
        (["ocr", "--timeout", "0"], "argument --timeout: must be a number > 0, got '0'"),
        (["ocr", "--timeout", "nan"], "argument --timeout: must be a number > 0, got 'nan'"),
        (["ocr", "--workers", "-1"], "argument --workers: must be an integer >= 0"),
        (["ocr", "--dpi", "0"], "argument --dpi"),
        (["ocr", "--shard", "3/2"], "--shard must be i/n"),
        (["download", "--delay", "-1"], "argument --delay: must be a number >= 0"),
        (["download", "--timeout", "inf"], "argument --timeout"),
        (["download", "--num-shards", "0"], "argument --num-shards: must be an integer >= 1"),
        (["download", "--shard-index", "2", "--num-shards", "2"], "shard index 2 not in [0, 2)"),
        (["download", "--max-unpacked-mb", "0"], "argument --max-unpacked-mb"),
        (["download", "--kinds", "exe"], "argument --kinds: invalid choice: 'exe'"),
        (["build", "--max-shard-mb", "0"], "--max-shard-mb: must be > 0"),
        (["build", "--near-dup-jaccard", "2"], "--near-dup-jaccard: must be in (0, 1], got 2.0"),
        (["build", "--validation-fraction", "1"], "--validation-fraction: must be in [0, 1), got 1.0"),
        (["build", "--min-words", "-5"], "--min-words: must be >= 0, got -5"),
        (["build", "--decontam-ngram", "0"], "--decontam-ngram: must be >= 1"),
        (["build", "--workers", "0"], "argument --workers: must be an integer >= 1"),
    ],
)
def test_out_of_range_options_are_one_line_exit_2(argv, expect, tmp_path, refuse):
    root = seeded_root(tmp_path)
    (tmp_path / "mirror").mkdir()
    snap = tmp_path / "snapshot.json"
    snap.write_text("")
    extra = {
        "harvest": ["--base-url", "http://127.0.0.1:9/oai"] if argv[1] == "oai" else [],
        "ocr": ["--backend", "pdf-text"],
        "download": ["--mirror", tmp_path / "mirror"],
        "build": ["--out", tmp_path / "out", "--tokenizer", tmp_path / "tok"],
    }[argv[0]]
    args = [a.format(snap=snap) for a in argv]
    cmd = (
        ["data", *args[:2], "--root", root, *args[2:], *extra]
        if argv[0] == "harvest"
        else ["data", args[0], "--root", root, *args[1:], *extra]
    )
    refuse(cmd, tmp_path, expect=expect)


def test_bad_slurm_array_environment(tmp_path, refuse):
    root = seeded_root(tmp_path)
    (tmp_path / "mirror").mkdir()
    refuse(
        ["data", "download", "--root", root, "--mirror", tmp_path / "mirror"],
        tmp_path,
        env={"SLURM_ARRAY_TASK_ID": "abc"},
        expect="SLURM_ARRAY_TASK_ID: not an integer",
    )


# ============================================================================ build inputs


def _ids_in(split: str, n: int) -> list[str]:
    cands = (f"2401.{k:05d}" for k in range(100, 10_000))
    return [c for c in cands if (split_fraction(c) < 0.2) == (split == "validation")][:n]


def test_build_refuses_to_publish_an_empty_split(tiny_model, tmp_path, refuse, run_astrollama):
    root = tmp_path / "root"
    ids = _ids_in("train", 3)
    Manifest(root).upsert_papers(
        [
            {"id": pid, "title": "t", "abstract": make_paper(pid, words=20 + i)["abstract"]}
            for i, pid in enumerate(ids)
        ]
    )
    out = tmp_path / "out"
    r = refuse(
        ["data", "build", "--root", root, "--variants", "abstracts", "--out", out, "--tokenizer", tiny_model],
        [root, out],
        expect=["abstracts: validation split: empty", "--validation-fraction 0"],
    )
    assert "validation" in r.message
    # a deliberately train-only corpus is allowed, and publishes no empty validation/ directory
    ok = run_astrollama(
        [
            "data",
            "build",
            "--root",
            root,
            "--variants",
            "abstracts",
            "--out",
            out,
            "--tokenizer",
            tiny_model,
            "--validation-fraction",
            "0",
        ]
    )
    assert ok.code == 0, ok.stderr[-2000:]
    assert (out / "abstracts" / "train").is_dir() and not (out / "abstracts" / "validation").exists()


def test_build_bad_benchmark_and_tokenizer_files(tiny_model, tmp_path, refuse):
    root = tmp_path / "root"
    ids = _ids_in("train", 2) + _ids_in("validation", 1)
    Manifest(root).upsert_papers(
        [
            {"id": pid, "title": "t", "abstract": make_paper(pid, words=20 + i)["abstract"]}
            for i, pid in enumerate(ids)
        ]
    )
    out, mcq = tmp_path / "out", tmp_path / "mcq.jsonl"
    mcq.write_bytes(b'{"question": "caf\xe9?", "A": "1", "B": "2", "C": "3", "D": "4"}\n')
    refuse(
        [
            "data",
            "build",
            "--root",
            root,
            "--variants",
            "abstracts",
            "--out",
            out,
            "--tokenizer",
            tiny_model,
            "--mcq",
            mcq,
        ],
        [root, out],
        expect=[str(mcq)],
    )
    refuse(
        [
            "data",
            "build",
            "--root",
            root,
            "--variants",
            "abstracts",
            "--out",
            out,
            "--tokenizer",
            tmp_path / "nowhere",
        ],
        [root, out],
        expect=["nowhere"],
    )


# ============================================================================ faults of the machine


def _two_paper_root(tmp_path: Path) -> Path:
    ids = ["2401.00101", "2401.00102"]
    root = seeded_root(tmp_path, ids)
    for pid in ids:
        pdf = paper_path(root / "pdf", pid, ".pdf")
        pdf.parent.mkdir(parents=True, exist_ok=True)
        pdf.write_bytes(pdfgen.render_paper_pdf(make_paper(pid)))
    return root


def _assert_retryable(root: Path, stage: str) -> None:
    """Nothing terminal was recorded and the shard is not marked complete."""
    m = Manifest(root)
    assert not m.failures(stage) and not (m.dir / "done" / stage).exists()


@pytest.fixture
def full_disk():
    """``full_disk(directory)`` mounts a 64 KiB tmpfs there and fills it (real ENOSPC from the
    kernel on the next write); returns the filler file, whose removal frees the space. Needs root."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)], capture_output=True
        )
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(directory)
        filler = directory / "filler"
        with open(filler, "wb", buffering=0) as fh, pytest.raises(OSError) as full:
            while True:
                fh.write(b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC
        return filler

    yield mount
    for d in mounted:
        subprocess.run(["umount", str(d)], capture_output=True)


def test_disk_full_during_ocr_is_retryable_never_a_terminal_failure(
    tmp_path, full_disk, refuse, run_astrollama
):
    root = _two_paper_root(tmp_path)
    ocr = root / "ocr"
    filler = full_disk(ocr)
    argv = ["data", "ocr", "--root", root, "--backend", "pdf-text", "--workers", "0", "--no-progress"]
    r = refuse(
        argv,
        tmp_path,
        code=1,
        expect=[str(ocr / "2401"), ".mmd", "No space left on device"],
        allow=[root / "manifest", ocr],
    )
    assert r.message.endswith("(retry once fixed)")
    _assert_retryable(root, "ocr")
    filler.unlink()  # free the space: the rerun does the work
    again = run_astrollama(argv)
    assert again.code == 0, again.stderr[-2000:]
    m = Manifest(root)
    assert {rec.status for rec in m.status("ocr").values()} == {"ok"} and len(m.status("ocr")) == 2
    assert (m.dir / "done" / "ocr" / "00000-of-00001.json").is_file()


def test_disk_full_while_unpacking_an_eprint_is_retryable(tmp_path, full_disk, refuse, run_astrollama):
    root, mirror = seeded_root(tmp_path), tmp_path / "mirror"
    (mirror / "src" / "2401").mkdir(parents=True)
    text = "".join(f"\\section{{S{i}}} {os.urandom(24).hex()}\n" for i in range(500)).encode()  # ~35 KB
    (mirror / "src" / "2401" / f"{PID}.tar.gz").write_bytes(tar_bytes((member("main.tex"), text)))
    filler = full_disk(root / "src")
    argv = ["data", "download", "--root", root, "--mirror", mirror, "--kinds", "src"]
    refuse(
        argv,
        tmp_path,
        code=1,
        expect=[str(root / "src" / "2401" / PID), "No space left on device"],
        allow=[root / "manifest", root / "src"],
    )
    _assert_retryable(root, "download_src")
    assert sorted(p.name for p in (root / "src").rglob("*")) == ["2401", "filler"]  # the partial tree is gone
    filler.unlink()
    assert run_astrollama(argv).code == 0
    rec = Manifest(root).status("download_src")[PID]
    assert rec.status == "ok" and (root / rec.outputs["src"] / "main.tex").read_bytes() == text


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_status_log_that_is_not_a_file_is_refused_not_read_forever(device, tmp_path):
    """A log replaced by /dev/zero (endless) or a FIFO (blocks): one line, exit 2. Runs in a
    subprocess with a 2 GiB address-space cap and a timeout, so a regression cannot eat the machine."""
    root = seeded_root(tmp_path)
    log = root / "manifest" / "status" / "ocr" / "00000-of-00001.jsonl"
    log.parent.mkdir(parents=True)
    if device == "fifo":
        os.mkfifo(log)
    else:
        log.symlink_to(device)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    r = subprocess.run(
        [sys.executable, "-m", "astrollama", "data", "manifest", "summary", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=cap,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == f"astrollama data: error: {log}: not a regular file"


def test_killed_pdf_worker_is_retryable(tmp_path, refuse, run_astrollama):
    """A PDF worker SIGKILLed (as by the OOM killer) stops the shard with exit 1, records nothing;
    the rerun finishes it."""
    root = _two_paper_root(tmp_path)
    argv = [
        "data",
        "ocr",
        "--root",
        root,
        "--backend",
        "pdf-text",
        "--workers",
        "1",
        "--timeout",
        "60",
        "--no-progress",
    ]
    t0 = time.monotonic()
    refuse(
        argv,
        tmp_path,
        code=1,
        env={"ASTROLLAMA_KILLPOINT": "ocr-worker:1"},
        expect=["PDF worker process", "killed by signal 9"],
        allow=[root / "manifest", root / "ocr"],
    )
    assert time.monotonic() - t0 < 30  # noticed at once, not after --timeout
    _assert_retryable(root, "ocr")
    assert not Manifest(root).status("ocr")
    again = run_astrollama(argv)
    assert again.code == 0, again.stderr[-2000:]
    assert {rec.status for rec in Manifest(root).status("ocr").values()} == {"ok"}


def test_killed_build_worker_is_retryable_not_a_hang(tiny_model, tmp_path, refuse, run_astrollama):
    root = tmp_path / "root"
    ids = _ids_in("train", 3) + _ids_in("validation", 2)
    Manifest(root).upsert_papers(
        [
            {"id": pid, "title": "t", "abstract": make_paper(pid, words=20 + i)["abstract"]}
            for i, pid in enumerate(ids)
        ]
    )
    out = tmp_path / "out"
    argv = [
        "data",
        "build",
        "--root",
        root,
        "--variants",
        "abstracts",
        "--out",
        out,
        "--tokenizer",
        tiny_model,
        "--workers",
        "2",
    ]
    t0 = time.monotonic()
    refuse(
        argv,
        [root, out],
        code=1,
        env={"ASTROLLAMA_KILLPOINT": "build-worker:1"},
        expect=["build worker process", "killed by signal 9"],
        allow=[out],
    )
    assert time.monotonic() - t0 < 60 and not (out / "abstracts").exists()
    ok = run_astrollama(argv)
    assert ok.code == 0, ok.stderr[-2000:]
    assert (out / "abstracts" / "validation").is_dir()
