"""Throughput of the CPU corpus stages: ``python data_prep/bench_build.py --docs 20000 --workers 1,2``.

Thin entry point; the logic is ``astrollama.tools.bench_corpus`` (also ``astrollama data bench``), with one
addition here, ``--state 100000,400000``: the build's per-paper state at N papers without the text
work (each size in a fresh process): the input list ``manifest_docs`` reads from a synthetic AIC
status log (N ``ok`` records with a real record's fields), then what ``build_variant`` keeps per
kept paper (the (id, sha256, doc) entries, the exact-duplicate digests, the MinHash-LSH index of
128 permutations in 16 bands fed random signatures so that every band key is new, the ids and
token counts). It prints the peak RSS per size and the bytes per paper between sizes: the part of
the build's memory that grows with the number of papers (docs/reproduce.md, "Corpus build at scale").
"""

from __future__ import annotations

import sys


def state_point(n: int) -> dict[str, float]:
    """Peak RSS (MB) of the build's per-paper state at ``n`` papers, in this process."""
    import hashlib
    import resource
    import tempfile
    from array import array

    import numpy as np

    from astrollama.data.build_inputs import manifest_docs
    from astrollama.data.dedup import LSHIndex
    from astrollama.data.manifest import Manifest

    with tempfile.TemporaryDirectory() as tmp:
        m = Manifest(tmp)
        for start in range(0, n, 20_000):
            m.record_many(
                m.make_record(
                    "aic",
                    f"{2000 + i // 99999:04d}.{i % 99999 + 1:05d}",
                    "ok",
                    shard=f"{i % 16:05d}-of-00016",
                    outputs={"aic": f"aic/{2000 + i // 99999:04d}.{i % 99999 + 1:05d}.json"},
                    source="mmd",
                    words=4100,
                    sections=["abstract", "introduction", "conclusion"],
                )
                for i in range(start, min(n, start + 20_000))
            )
        docs = manifest_docs(m, "aic")
        list_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        entries = sorted((d.id, hashlib.sha256(d.id.encode()).digest(), d) for d in docs)
        rng = np.random.default_rng(0)
        lsh = LSHIndex(128, 16)
        seen: dict[bytes, int] = {}
        ids: list[str] = []
        tokens = array("q")
        for i, (pid, digest, _d) in enumerate(entries):
            sig = rng.integers(0, 2**32, 128, dtype=np.uint32)
            if i % 50 == 0:
                lsh.query(sig, 0.8)
            seen[digest] = lsh.insert(sig)
            ids.append(pid)
            tokens.append(6000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"papers": n, "input_list_peak_mb": list_mb, "peak_rss_mb": peak}


def run_state(sizes: list[int]) -> int:
    import json
    import os
    import subprocess

    print(f"build state: {sizes} papers; load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for n in sizes:
        code = f"import json, bench_build; print(json.dumps(bench_build.state_point({n})))"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{n} papers: peak RSS {r['peak_rss_mb']:.0f} MB (input list alone {r['input_list_peak_mb']:.0f} MB)",
            flush=True,
        )
    for a, b in zip(rows, rows[1:], strict=False):
        per = (b["peak_rss_mb"] - a["peak_rss_mb"]) * 2**20 / (b["papers"] - a["papers"])
        print(f"{a['papers']} -> {b['papers']} papers: {per:.0f} bytes per paper")
    return 0


if __name__ == "__main__":
    if "--state" in sys.argv:
        from astrollama.tools.bench_corpus import corpus_sizes

        raise SystemExit(run_state(corpus_sizes(sys.argv[sys.argv.index("--state") + 1])))
    from astrollama.tools.bench_corpus import main

    raise SystemExit(main())
