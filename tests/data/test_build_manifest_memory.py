"""The build's input list from the manifest (``manifest_docs``): the latest record of each paper,
only ``ok`` ones, texts read when needed, a tampered output path refused when read, and a per-paper
cost that stays small (the list is held for the whole build of a 400,000-paper corpus)."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from astrollama.data.build_inputs import manifest_docs
from astrollama.data.manifest import Manifest, ManifestError


def _aic(root: Path, pid: str, text: str) -> str:
    rel = f"aic/{pid}.json"
    (root / "aic").mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(json.dumps({"id": pid, "text": text}))
    return rel


def test_latest_ok_record_wins_and_texts_are_read_when_needed(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    recs = [
        m.make_record("aic", "2401.00001", "failed", "no conclusion", shard="a", outputs={}),
        m.make_record(
            "aic", "2401.00002", "ok", shard="a", outputs={"aic": _aic(tmp_path, "2401.00002", "two")}
        ),
        m.make_record(
            "aic", "2401.00003", "ok", shard="a", outputs={"aic": _aic(tmp_path, "2401.00003", "old")}
        ),
    ]
    recs = [replace(r, time=1.0) for r in recs]
    later = [
        m.make_record(
            "aic", "2401.00001", "ok", shard="b", outputs={"aic": _aic(tmp_path, "2401.00001", "one")}
        ),
        m.make_record("aic", "2401.00003", "failed", "rerun broke", shard="b", outputs={}),
    ]
    later = [replace(r, time=2.0) for r in later]
    m.record_many([*recs, *later])
    docs = manifest_docs(m, "aic")
    assert [d.id for d in docs] == ["2401.00001", "2401.00002"]  # 00003's latest record failed
    assert all(d.text is None for d in docs) and [d.read() for d in docs] == ["one", "two"]


def test_summary_flags_and_a_tampered_path(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    (tmp_path / "summary").mkdir()
    (tmp_path / "summary" / "2401.00001.txt").write_text("a summary")
    m.record_many(
        [
            m.make_record(
                "summary",
                "2401.00001",
                "ok",
                shard="a",
                outputs={"summary": "summary/2401.00001.txt"},
                length_flag="short",
                summary_tokens=812,
            ),
            m.make_record("summary", "2401.00002", "ok", shard="a", outputs={"summary": "summary/x.txt"}),
        ]
    )
    f = m.status_path("summary", "a")  # a tampered record: its output climbs out of the data root
    f.write_text(f.read_text().replace("summary/x.txt", "../../etc/passwd"))
    with pytest.raises(ManifestError, match=r"\.\./\.\./etc/passwd"):  # refused before any work
        manifest_docs(m, "summary")
    f.write_text(f.read_text().replace("../../etc/passwd", "summary/x.txt"))
    a, b = manifest_docs(m, "summary")
    assert a.flags == {"length_flag": "short", "summary_tokens": 812} and a.read() == "a summary"
    assert b.flags == {"length_flag": None, "summary_tokens": None}


def test_input_list_costs_under_1_kb_per_paper(tmp_path: Path) -> None:
    """20,000 ok records with a realistic record's fields: the list and the peak while reading the
    logs stay under 1 KB per paper (the records themselves, read whole, took ~2.5 KB: 1 GB at
    400,000 papers before the build started)."""
    n = 20_000
    m = Manifest(tmp_path)
    recs = [
        m.make_record(
            "aic",
            f"2401.{i:05d}",
            "ok",
            shard=f"{i % 16:05d}-of-00016",
            outputs={"aic": f"aic/2401.{i:05d}.json"},
            source="mmd",
            words=4100,
            sections=["abstract", "introduction", "conclusion"],
        )
        for i in range(1, n + 1)
    ]
    m.record_many(recs)
    del recs
    tracemalloc.start()
    docs = manifest_docs(m, "aic")
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(docs) == n
    assert held / n < 1024 and peak / n < 1024, (held / n, peak / n)


def test_bench_build_state_prints_peak_rss_and_bytes_per_paper() -> None:
    """``data_prep/bench_build.py --state N,N``: each size in a fresh process, its peak RSS, and the
    bytes per paper between sizes (the figures are in docs/reproduce.md)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    p = subprocess.run(
        [sys.executable, str(repo / "data_prep" / "bench_build.py"), "--state", "500,1500"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "500 papers: peak RSS " in p.stdout and "1500 papers: peak RSS " in p.stdout
    assert "500 -> 1500 papers: " in p.stdout and " bytes per paper" in p.stdout


def test_abstracts_read_line_by_line_match_the_merged_rows(tmp_path: Path) -> None:
    """The abstracts variant's input (only the abstract and what the merge compares, kept per
    paper) is what the whole merged rows give: a newer version wins, an older row only fills a
    missing abstract, a null never erases one, a paper without an abstract has no document."""
    from astrollama.data.build_inputs import abstract_docs

    rows = [
        {"id": "2401.00001", "version": 2, "abstract": "new  text", "title": "T"},
        {"id": "2401.00001", "version": 1, "abstract": "old text"},  # older: does not win
        {"id": "2401.00002", "version": 1, "abstract": None, "title": "no abstract yet"},
        {"id": "2401.00002", "version": 1, "abstract": "filled\\nlater"},
        {"id": "2401.00003", "version": 3, "abstract": "kept"},
        {"id": "2401.00003", "version": 4, "abstract": None},  # a null never erases
        {"id": "2401.00004", "title": "none at all"},
    ]
    m = Manifest(tmp_path)
    m.dir.mkdir(parents=True)
    m.papers_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    docs = manifest_docs(m, "abstracts")
    assert docs == abstract_docs(m.papers().values())
    assert [(d.id, d.text) for d in docs] == [
        ("2401.00001", "new text"),
        ("2401.00002", "filled\\nlater"),
        ("2401.00003", "kept"),
    ]
