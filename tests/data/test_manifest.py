"""The manifest: base-row merging, status logs, torn lines, concurrent shards, export."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from astrollama.data.manifest import (
    Manifest,
    ManifestError,
    from_namespaced,
    is_paper_id,
    namespaced,
    paper_path,
    parse_arxiv_id,
)
from astrollama.data.runner import Outcome, SkipItem, StageRunner, write_outputs
from astrollama.data.shards import shard_from_env, shard_of

ROWS = [
    {
        "id": "2401.01234",
        "version": 1,
        "published": "2024-01-02",
        "updated": "2024-01-02",
        "categories": ["astro-ph.GA"],
        "title": "Bars in disc galaxies",
        "abstract": "We study bars.",
    },
    {
        "id": "astro-ph/0601001",
        "version": 2,
        "published": "2006-01-02",
        "updated": "2006-03-01",
        "categories": "astro-ph",
        "title": "Hot Jupiter rates",
        "abstract": "Transit surveys.",
    },
]


def test_ids_and_namespacing():
    assert namespaced("astro-ph/0601001") == "astro-ph_0601001"
    assert namespaced("2401.01234") == "2401.01234"
    for pid in ("astro-ph/0601001", "2401.01234", "cond-mat.str-el/0601001", "physics.gen-ph/0701001"):
        assert from_namespaced(namespaced(pid)) == pid
    assert parse_arxiv_id("http://arxiv.org/abs/astro-ph/0601001v2") == ("astro-ph/0601001", 2)
    assert parse_arxiv_id("oai:arXiv.org:2401.01234") == ("2401.01234", None)
    assert parse_arxiv_id("https://arxiv.org/pdf/2401.01234v3") == ("2401.01234", 3)
    assert parse_arxiv_id("arXiv:0704.0001v1") == ("0704.0001", 1)
    with pytest.raises(ManifestError, match="not an arXiv id"):
        parse_arxiv_id("hello/world")
    assert paper_path("pdf", "astro-ph/0601001", ".pdf").as_posix() == "pdf/0601/astro-ph_0601001.pdf"
    # local (non-arXiv) ids such as the bundled demo papers round-trip too; junk does not pass
    assert is_paper_id("demo/0001") and from_namespaced(namespaced("demo/0001")) == "demo/0001"
    assert not any(map(is_paper_id, ["demo_0001", "2401.123", "../x", "Demo/1", "demo/a_b", ""]))


def test_upsert_merge_is_idempotent_and_version_aware(tmp_path):
    m = Manifest(tmp_path)
    m.upsert_papers(ROWS)
    first = json.dumps(m.papers(), sort_keys=True)
    m.upsert_papers(ROWS)  # a rerun appends the same rows again
    assert json.dumps(m.papers(), sort_keys=True) == first
    assert m.get("astro-ph/0601001")["categories"] == ["astro-ph"]
    # an OLDER version never overrides a newer one, but fills missing fields
    m.upsert_papers([{"id": "astro-ph/0601001", "version": 1, "title": "Old title", "doi": "10.1/x"}])
    row = m.get("astro-ph/0601001")
    assert row["title"] == "Hot Jupiter rates" and row["version"] == 2 and row["doi"] == ["10.1/x"]
    # a newer version wins; None never erases
    m.upsert_papers(
        [{"id": "2401.01234", "version": 2, "title": "Bars v2", "abstract": None, "updated": "2024-02-01"}]
    )
    row = m.get("2401.01234")
    assert (row["version"], row["title"], row["abstract"]) == (2, "Bars v2", "We study bars.")
    assert m.ids() == ["2401.01234", "astro-ph/0601001"]
    m.upsert_papers([{"id": "2401.01234", "comments": "line\u2028separator, é, \u00c5"}])  # escaped: one line
    assert m.get("2401.01234")["comments"] == "line\u2028separator, é, \u00c5"
    # compaction keeps the merged view and leaves one line per paper
    before = json.dumps(m.papers(), sort_keys=True)
    assert m.compact() == 2
    assert len(m.papers_path.read_text().splitlines()) == 2
    assert json.dumps(Manifest(tmp_path).papers(), sort_keys=True) == before


def test_bad_rows_are_rejected_before_writing(tmp_path):
    m = Manifest(tmp_path)
    with pytest.raises(ManifestError, match=r"row 1: field 'id'"):
        m.upsert_papers([ROWS[0], {"id": "not an id"}])
    with pytest.raises(ManifestError, match=r"row 0 \(2401.01234\): field 'published'"):
        m.upsert_papers([{"id": "2401.01234", "published": "Jan 2024"}])
    assert not m.papers_path.exists() or m.papers_path.read_text() == ""
    with pytest.raises(ManifestError, match="status must be one of"):
        m.record("ocr", "2401.01234", "done")
    with pytest.raises(ManifestError, match="needs an error"):
        m.record("ocr", "2401.01234", "failed")


def test_status_latest_wins_pending_and_failures(tmp_path):
    m = Manifest(tmp_path)
    m.upsert_papers(ROWS)
    assert m.pending("ocr") == ["2401.01234", "astro-ph/0601001"]
    m.record("ocr", "2401.01234", "skipped", "pdf not downloaded yet", shard="a")
    assert m.pending("ocr") == ["2401.01234", "astro-ph/0601001"]  # skipped is not terminal
    m.record("ocr", "2401.01234", "failed", "encrypted PDF", shard="a")
    m.record("ocr", "astro-ph/0601001", "ok", shard="b", outputs={"mmd": tmp_path / "mmd" / "x.mmd"}, pages=3)
    assert m.pending("ocr") == []
    assert m.pending("ocr", retry_failed=True) == ["2401.01234"]
    assert m.failures("ocr") == {"2401.01234": "encrypted PDF"}
    m.record(
        "abs", "2401.01234", "ok", shard="b", outputs={"a": str(tmp_path / "x" / "a.txt"), "b": "y/b.txt"}
    )
    assert m.status("abs")["2401.01234"].outputs == {"a": "x/a.txt", "b": "y/b.txt"}
    rec = m.status("ocr")["astro-ph/0601001"]
    assert rec.outputs == {"mmd": "mmd/x.mmd"} and rec.attrs == {"pages": 3} and rec.shard == "b"
    m.record("ocr", "2401.01234", "ok", shard="c", outputs={"mmd": "mmd/y.mmd"})  # retry succeeded
    assert m.failures("ocr") == {}
    assert m.summary() == {"abs": {"ok": 1}, "ocr": {"ok": 2}}


def test_torn_last_line_is_ignored_then_truncated(tmp_path):
    m = Manifest(tmp_path)
    m.upsert_papers(ROWS)
    m.record("pdf", "2401.01234", "ok", shard="s0")
    path = m.status_path("pdf", "s0")
    torn = '{"id": "astro-ph/0601001", "stage": "pdf", "status": "ok", "tim'
    with open(path, "a") as fh:
        fh.write(torn)
    # reading ignores the torn line
    assert set(m.status("pdf")) == {"2401.01234"}
    # the next append cuts it first, so the file stays valid JSONL
    m.record("pdf", "astro-ph/0601001", "failed", "HTTP 404", shard="s0")
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    assert m.failures("pdf") == {"astro-ph/0601001": "HTTP 404"}
    # same for the papers log
    with open(m.papers_path, "ab") as fh:
        fh.write(b'{"id": "2402.00001", "title": "half')
    assert m.ids() == ["2401.01234", "astro-ph/0601001"]
    m.upsert_papers([{"id": "2402.00001", "title": "whole"}])
    assert m.get("2402.00001") == {"id": "2402.00001", "title": "whole"}
    # a corrupt line in the middle is an error naming file and line
    text = path.read_text().splitlines()
    path.write_text(text[0] + "\n" + "garbage\n" + text[1] + "\n")
    with pytest.raises(ManifestError, match=r"s0.jsonl: line 2: invalid JSON"):
        m.status("pdf")


def _writer(root: str, shard: str, ids: list[str]) -> None:
    m = Manifest(root)
    for pid in ids:
        m.record("stress", pid, "ok", shard=shard, outputs={"out": f"out/{pid}"}, n=len(pid))


def _same_shard_writer(root: str, ids: list[str]) -> None:
    m = Manifest(root)
    for pid in ids:
        m.record("shared", pid, "ok", shard="same")


def test_concurrent_shards_writing_statuses(tmp_path):
    ids = [f"2401.{i:05d}" for i in range(400)]
    Manifest(tmp_path).upsert_papers([{"id": pid} for pid in ids])
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_writer, args=(str(tmp_path), f"{k:05d}-of-00004", shard_of(ids, k, 4)))
        for k in range(4)
    ]
    # plus two processes appending to ONE shard file (misconfiguration): the lock keeps lines whole
    procs += [ctx.Process(target=_same_shard_writer, args=(str(tmp_path), ids[k::2])) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    m = Manifest(tmp_path)
    st = m.status("stress")
    assert sorted(st) == ids and all(
        r.status == "ok" and r.outputs == {"out": f"out/{r.id}"} for r in st.values()
    )
    assert len(list((m.status_dir / "stress").glob("*.jsonl"))) == 4
    assert sorted(m.status("shared")) == ids
    assert len(m.status_path("shared", "same").read_text().splitlines()) == 400
    assert m.pending("stress") == [] and m.pending("shared") == []


def test_table_and_export(tmp_path):
    m = Manifest(tmp_path)
    m.upsert_papers(ROWS)
    m.record("download_pdf", "2401.01234", "ok", shard="x", outputs={"pdf": "pdf/2401/2401.01234.pdf"})
    m.record("download_pdf", "astro-ph/0601001", "failed", "not a PDF (text/html)", shard="x")
    df = m.table()
    assert list(df["id"]) == ["2401.01234", "astro-ph/0601001"]
    assert {"pdf", "download_pdf_status", "download_pdf_error", "title", "categories"} <= set(df.columns)
    assert df.loc[0, "pdf"] == "pdf/2401/2401.01234.pdf" and pd.isna(df.loc[1, "pdf"])
    assert df.loc[1, "download_pdf_error"] == "not a PDF (text/html)"
    from astrollama.data.cli import main

    assert main(["manifest", "export", "--root", str(tmp_path), "--out", str(tmp_path / "m.csv")]) == 0
    csv = pd.read_csv(tmp_path / "m.csv")
    assert csv.loc[1, "categories"] == "astro-ph" and csv.loc[0, "download_pdf_status"] == "ok"
    assert (
        main(
            [
                "manifest",
                "export",
                "--root",
                str(tmp_path),
                "--format",
                "parquet",
                "--out",
                str(tmp_path / "m.parquet"),
            ]
        )
        == 0
    )
    pq = pd.read_parquet(tmp_path / "m.parquet")
    assert list(pq["categories"][0]) == ["astro-ph.GA"] and len(pq) == 2
    assert main(["manifest", "failures", "--root", str(tmp_path), "--stage", "download_pdf"]) == 1


# ----------------------------------------------------------------------------- stage runner


def test_shard_assignment_is_a_stable_partition(monkeypatch):
    ids = [f"2301.{i:05d}" for i in range(1000)] + [f"astro-ph/06{i:05d}" for i in range(200)]
    parts = [shard_of(ids, k, 7) for k in range(7)]
    assert sorted(sum(parts, [])) == sorted(ids)
    assert min(map(len, parts)) > 120  # roughly balanced
    # adding papers never moves existing ones
    grown = [shard_of(ids + ["2401.99999"], k, 7) for k in range(7)]
    assert all(set(p) <= set(g) for p, g in zip(parts, grown, strict=True))
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "10")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "10")
    assert shard_from_env() == (4, 10)
    assert shard_of(ids) == shard_of(ids, 4, 10)
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", "19")  # --array=1-19:2 has 10 tasks: refused
    with pytest.raises(ValueError, match="contiguous"):
        shard_from_env()


def test_runner_isolates_failures_and_resumes(tmp_path):
    m = Manifest(tmp_path)
    ids = [f"2402.{i:05d}" for i in range(30)]
    m.upsert_papers([{"id": pid} for pid in ids])
    calls: list[str] = []

    def work(pid: str):
        calls.append(pid)
        n = int(pid[-2:])
        if n % 10 == 3:
            raise ValueError(f"bad paper {pid}")
        if n % 10 == 7:
            raise SkipItem("input missing")
        if n % 10 == 9:
            return Outcome("failed", error="too short")
        out = write_outputs({"txt": (paper_path(tmp_path / "txt", pid, ".txt"), pid.upper())})
        return Outcome(outputs=out, attrs={"chars": len(pid)})

    r = StageRunner(m, "toy", shard_index=0, num_shards=1, progress=False)
    stats = r.run(work)
    assert (stats.ok, stats.failed, stats.skipped, stats.complete) == (21, 6, 3, False)
    assert m.failures("toy")["2402.00003"] == "ValueError: bad paper 2402.00003"
    assert m.failures("toy")["2402.00009"] == "too short"
    assert not r.marker_path.exists()  # skipped papers keep the shard open
    calls.clear()
    stats = StageRunner(m, "toy", shard_index=0, num_shards=1, progress=False).run(work)
    assert sorted(calls) == [p for p in ids if p.endswith("7")] and stats.already_done == 27
    # skipped ones are still skipped: now make them succeed
    stats = StageRunner(m, "toy", shard_index=0, num_shards=1, progress=False).run(lambda pid: {"x": "y"})
    assert stats.complete and stats.ok == 3 and r.marker_path.exists()
    calls.clear()
    stats = StageRunner(m, "toy", shard_index=0, num_shards=1, progress=False).run(work)
    assert calls == [] and stats.complete  # the marker makes a finished shard a no-op
    stats = StageRunner(m, "toy", shard_index=0, num_shards=1, retry_failed=True, progress=False).run(work)
    assert sorted(calls) == [p for p in ids if p[-1] in "39"]
    assert (tmp_path / "txt" / "2402" / "2402.00000.txt").read_text() == "2402.00000"
    assert m.status("toy")["2402.00000"].outputs == {"txt": "txt/2402/2402.00000.txt"}


def test_runner_resumes_after_kill_9_with_identical_output(tmp_path):
    """A stage killed with SIGKILL mid-shard and rerun gives the same files and records."""
    script = (
        "import sys, time\n"
        "from astrollama.data.manifest import Manifest, paper_path\n"
        "from astrollama.data.runner import StageRunner, write_outputs\n"
        "root, delay = sys.argv[1], float(sys.argv[2])\n"
        "m = Manifest(root)\n"
        "def work(pid):\n"
        "    time.sleep(delay)\n"
        "    return write_outputs({'txt': (paper_path(root + '/txt', pid, '.txt'), pid * 100)})\n"
        "StageRunner(m, 'toy', shard_index=0, num_shards=1, progress=False).run(work)\n"
    )
    ids = [f"2403.{i:05d}" for i in range(40)]
    roots = [tmp_path / "killed", tmp_path / "clean"]
    for root in roots:
        Manifest(root).upsert_papers([{"id": pid} for pid in ids])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-c", script, str(roots[1]), "0"], check=True, env=env, timeout=60)
    proc = subprocess.Popen([sys.executable, "-c", script, str(roots[0]), "0.02"], env=env)
    status_file = Manifest(roots[0]).status_path("toy", "00000-of-00001")
    deadline = time.time() + 30
    while time.time() < deadline:
        if status_file.exists() and len(status_file.read_text().splitlines()) >= 10:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(Manifest(roots[0]).status("toy"))
    assert 10 <= done_at_kill < 40
    subprocess.run([sys.executable, "-c", script, str(roots[0]), "0"], check=True, env=env, timeout=60)

    def snapshot(root):
        m = Manifest(root)
        files = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted((root / "txt").rglob("*"))
            if p.is_file()
        }
        recs = {pid: (r.status, r.outputs) for pid, r in m.status("toy").items()}
        return files, recs

    assert snapshot(roots[0]) == snapshot(roots[1])
    lines = status_file.read_text().splitlines()
    assert len({json.loads(x)["id"] for x in lines}) == 40 and len(lines) == 40
