"""Manifest scale check: N synthetic astro-ph papers through the operations every stage uses.

    .venv/bin/python scripts/bench_manifest.py --papers 300000

Prints seconds for: upserting base rows in OAI-sized pages of 1,000, reading + merging them,
recording one status per paper (batched and one-by-one), and computing ``pending``. Runs in a
temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from astrollama.data.manifest import Manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=int, default=300_000)
    ap.add_argument("--single-records", type=int, default=5_000, help="how many record() calls to time")
    a = ap.parse_args()
    abstract = "We study the formation of stellar bars in gas-rich discs. " * 20  # ~1.2 kB, like astro-ph
    rows = [
        {
            "id": f"{2000 + i // 99_999:04d}.{i % 99_999:05d}",
            "version": 1,
            "published": "2020-01-01",
            "categories": ["astro-ph.GA"],
            "title": "A paper about galaxies",
            "abstract": abstract,
            "authors": ["A. Person", "B. Person"],
        }
        for i in range(a.papers)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        m = Manifest(tmp)
        t = time.perf_counter()
        for k in range(0, len(rows), 1000):
            m.upsert_papers(rows[k : k + 1000])
        t_upsert = time.perf_counter() - t
        t = time.perf_counter()
        ids = Manifest(tmp).ids()
        t_read = time.perf_counter() - t
        t = time.perf_counter()
        m.record_many(
            m.make_record(
                "download_pdf", pid, "ok", shard="00000-of-00001", outputs={"pdf": f"pdf/{pid[:4]}/{pid}.pdf"}
            )
            for pid in ids
        )
        t_batch = time.perf_counter() - t
        t = time.perf_counter()
        for pid in ids[: a.single_records]:
            m.record("ocr", pid, "ok", shard="00000-of-00001")
        t_single = (time.perf_counter() - t) / min(a.single_records, len(ids))
        t = time.perf_counter()
        todo = m.pending("download_pdf")
        t_pending = time.perf_counter() - t
        size = Path(m.papers_path).stat().st_size / 1e6
    assert not todo
    print(
        f"papers={len(ids)} papers.jsonl={size:.0f} MB | upsert (pages of 1000) {t_upsert:.1f}s | "
        f"read+merge {t_read:.1f}s | record_many {t_batch:.1f}s | record() {t_single * 1e3:.2f} ms each | "
        f"pending {t_pending:.1f}s"
    )


if __name__ == "__main__":
    main()
