"""kill -9 at any point, rerun: the output equals an uninterrupted run's (AIC, summary, build).

Each stage runs in a subprocess (tests/data/resume_driver.py) that is SIGKILLed either at an
injected crash point (``ASTROLLAMA_KILLPOINT``: between a paper's output file and its manifest
record, after a shard file, before the final rename) or after a random delay; the rerun then
finishes the work in this process and the output tree plus the manifest's view of the stage
are compared, by hash, with a clean run in another directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from astrollama.data.aic import run_aic
from astrollama.data.build import run_build
from astrollama.data.build_config import BuildConfig
from astrollama.data.llm import TransformersBackend
from astrollama.data.manifest import Manifest
from astrollama.data.summarize import SummaryConfig, run_summary
from astrollama.io import OWNER_FILE

DRIVER = Path(__file__).parent / "resume_driver.py"
MCQ = Path(__file__).parent / "fixtures" / "corpus" / "mcq.jsonl"
WORDS = [
    "galaxy",
    "star",
    "dust",
    "gas",
    "halo",
    "disk",
    "planet",
    "orbit",
    "spectrum",
    "redshift",
    "cluster",
    "mass",
    "luminosity",
    "field",
    "magnetic",
    "accretion",
    "jet",
    "pulsar",
    "noise",
    "model",
    "survey",
    "telescope",
    "emission",
    "velocity",
    "bar",
    "merger",
]
CONCLUSIONS = ("5 Conclusions", "6. Summary and conclusions", "Concluding remarks", "IV. SUMMARY")


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def stage_view(root: Path, stage: str) -> dict:
    """The manifest's merged view of a stage, without times and shard names."""
    return {
        pid: (r.status, r.error, r.outputs, r.attrs)
        for pid, r in sorted(Manifest(root).status(stage).items())
    }


def make_root(root: Path, n: int, seed: int = 0) -> list[str]:
    """A data root: ``n`` papers in the manifest, each with an OCR ``.mmd`` (ok record)."""
    rng = random.Random(seed)
    m = Manifest(root)
    ids = [f"2406.{i:05d}" for i in range(1, n + 1)]

    def para(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)) + "."

    m.upsert_papers([{"id": pid, "title": f"Paper {pid}", "abstract": para(40)} for pid in ids])
    for i, pid in enumerate(ids):
        mmd = (
            f"# Paper {pid}\n\n###### Abstract\n\n{para(40)}\n\n## 1 Introduction\n\n{para(60)}\n\n"
            f"## 2 Method\n\n{para(50)}\n\n[MISSING_PAGE_EMPTY:2]\n\n## {CONCLUSIONS[i % 4]}\n\n{para(40)}\n\n"
            f"## References\n\n* A. 2020\n"
        )
        if i % 9 == 8:  # some papers fail extraction: the failure must survive the kill too
            mmd = f"# Paper {pid}\n\n## Erratum\n\n{para(20)}\n"
        p = root / "ocr" / pid[:4] / f"{pid}.mmd"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(mmd)
        m.record("ocr", pid, "ok", outputs={"mmd": p})
    return ids


def run_killed(args: list[str], *, killpoint: str | None = None, delay: float | None = None) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    if killpoint:
        env["ASTROLLAMA_KILLPOINT"] = killpoint
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if delay is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    if killpoint:
        assert proc.returncode == -signal.SIGKILL, out.decode()[-3000:]
    return proc.returncode


def test_aic_resumes_after_kill(tmp_path: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    make_root(clean, 40)
    make_root(killed, 40)
    run_aic(clean, progress=False)
    # killed between a paper's JSON and its manifest record, then again at a random moment
    run_killed(["aic", str(killed)], killpoint=f"aic.between:{random.Random(1).randint(2, 30)}")
    partial = stage_view(killed, "aic")
    assert 0 < len(partial) < 40
    run_killed(["aic", str(killed)], delay=random.Random(2).uniform(0.5, 2.0))
    run_aic(killed, progress=False)
    assert tree_hash(killed / "aic") == tree_hash(clean / "aic")
    assert stage_view(killed, "aic") == stage_view(clean, "aic")
    assert sum(1 for v in stage_view(clean, "aic").values() if v[0] == "failed") == 4


def test_summary_resumes_after_kill(tmp_path: Path, tiny_model: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    make_root(clean, 6)
    make_root(killed, 6)
    backend = TransformersBackend(tiny_model, max_model_len=1024, temperature=1.0, model_id="tiny")
    cfg = SummaryConfig(min_tokens=20, target_total=30, max_tokens=200, batch_papers=3)
    run_summary(clean, backend, config=cfg, progress=False)
    # between the summary .txt and its sidecar (paper 2), then after a paper's record (paper 4)
    run_killed(["summary", str(killed), str(tiny_model)], killpoint="summary.between:2")
    assert len(stage_view(killed, "summary")) == 1
    run_killed(["summary", str(killed), str(tiny_model)], killpoint="summary.paper:3")
    run_summary(killed, backend, config=cfg, progress=False)
    assert tree_hash(killed / "summary") == tree_hash(clean / "summary")
    assert stage_view(killed, "summary") == stage_view(clean, "summary")
    assert sum(1 for v in stage_view(clean, "summary").values() if v[0] == "ok") == 6


@pytest.mark.parametrize("kill", ["build.shard:3", "build.before_rename:2", "delay"])
def test_build_resumes_after_kill(tmp_path: Path, tiny_model: Path, kill: str) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for root in (clean, killed):
        make_root(root, 60)
        run_aic(root, progress=False)
    run_build(
        clean,
        ["abstracts", "aic"],
        clean / "corpus",
        tokenizer_dir=tiny_model,
        mcq_path=MCQ,
        config=BuildConfig(max_shard_docs=7),
        workers=2,
        progress=False,
    )
    args = ["build", str(killed), str(killed / "corpus"), str(tiny_model), str(MCQ)]
    if kill == "delay":
        t0 = time.monotonic()
        run_killed(args, delay=random.Random(3).uniform(1.0, 4.0))
        print(f"killed after {time.monotonic() - t0:.2f}s")
    else:
        run_killed(args, killpoint=kill)
        assert not (killed / "corpus" / "aic" / "build.json").exists()
    run_build(
        killed,
        ["abstracts", "aic"],
        killed / "corpus",
        tokenizer_dir=tiny_model,
        mcq_path=MCQ,
        config=BuildConfig(max_shard_docs=7),
        workers=2,
        progress=False,
    )
    assert tree_hash(killed / "corpus") == tree_hash(clean / "corpus")
    leftovers = [p for p in (killed / "corpus").iterdir() if p.name.startswith(".") and p.name != OWNER_FILE]
    assert not leftovers  # no temporaries left (the owner marker is the build's, astrollama.io)
    for v in ("abstracts", "aic"):
        assert stage_view(killed, f"build_{v}") == stage_view(clean, f"build_{v}")
        stats = json.loads((clean / "corpus" / v / "stats.json").read_text())
        assert stats["papers_out"] + sum(stats["drops"].values()) == stats["papers_in"]
