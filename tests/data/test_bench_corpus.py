"""Smoke test of the corpus throughput benchmark (the figures themselves are in docs/data-corpus.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_runs_every_stage_with_1_and_2_workers(
    tmp_path: Path, tiny_model: Path, repo_root: Path
) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(repo_root / "data_prep" / "bench_build.py"),
            "--docs",
            "200",
            "--workers",
            "1,2",
            "--tokenizer",
            str(tiny_model),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["docs"] == 200
    assert set(res["docs_per_s"]) == {"aic", "clean", "hash", "tokenize", "dedup", "shard", "build"}
    assert all(v["1"] > 0 and v["2"] > 0 for v in res["docs_per_s"].values())
    assert "| build |" in proc.stdout and "scaling 2 vs 1" in proc.stdout
    assert (
        "build kept" in proc.stdout and "duplicate_text" in proc.stdout
    )  # the generated duplicates are found


def test_bench_scale_reports_peak_rss_per_corpus_size(
    tmp_path: Path, tiny_model: Path, repo_root: Path
) -> None:
    """``--scale``: one fresh process per size, lazy documents of the asked length, the generated
    duplicates dropped, a peak RSS and docs/s per size and the ratio to the smallest."""
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(repo_root / "data_prep" / "bench_build.py"),
            "--scale",
            "150,300",
            "--doc-chars",
            "3000",
            "--workers",
            "2",
            "--tokenizer",
            str(tiny_model),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["scale"]
    assert [r["docs"] for r in rows] == [150, 300]
    for r in rows:
        assert 3000 <= r["chars_per_doc"] < 4000  # the asked length (a paragraph over at most)
        assert r["kept"] < r["docs"] and "duplicate_text" in r["drops"]
        assert r["peak_rss_mb"] > 50 and r["worker_peak_rss_mb"] > 0 and r["docs_per_s"] > 0
        # the whole job (the build process and its two forked workers), sampled from /proc: more
        # than the build process's own pages at its fork, less than the three RSS peaks summed
        assert 20 < r["job_peak_pss_mb"] < r["peak_rss_mb"] + 2 * r["worker_peak_rss_mb"]
    assert (
        "| 300 |" in proc.stdout and "RSS vs smallest" in proc.stdout and "peak PSS, whole job" in proc.stdout
    )
