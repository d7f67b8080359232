"""slurm/aic.sh and slurm/build.sh run the real stages outside Slurm (SLURM_JOB_ID unset): aic.sh
takes the array task's shard, build.sh passes the job's CPUs as --workers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from astrollama.data.manifest import Manifest
from astrollama.data.shards import shard_of

FIX = Path(__file__).parent / "fixtures" / "aic"
PAPERS = {
    "2401.00011": "numbered_hash.mmd",
    "2401.00012": "roman_bold.mmd",
    "2401.00013": "unnumbered_inline.mmd",
    "2401.00014": "discussion_conclusions.mmd",
}


def run_script(repo: Path, script: str, *args: str, **slurm: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ASTROLLAMA_VENV"))}
    if (Path(sys.prefix) / "bin" / "activate").exists():
        env["ASTROLLAMA_VENV"] = sys.prefix  # the environment running the tests
    r = subprocess.run(
        ["bash", str(repo / "slurm" / script), *args],
        env={**env, **slurm},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_aic_array_then_build(tmp_path: Path, repo_root: Path, tiny_model: Path) -> None:
    root = tmp_path / "data"
    m = Manifest(root)
    m.upsert_papers(
        [{"id": pid, "title": f"Paper {pid}", "abstract": f"Abstract of {pid}."} for pid in PAPERS]
    )
    for pid, name in PAPERS.items():
        (root / "ocr").mkdir(exist_ok=True)
        shutil.copy(FIX / name, root / "ocr" / f"{pid}.mmd")
        m.record("ocr", pid, "ok", outputs={"mmd": root / "ocr" / f"{pid}.mmd"})
    first = shard_of(PAPERS, 0, 2)
    assert 0 < len(first) < len(PAPERS)  # both array tasks have work

    r = run_script(
        repo_root,
        "aic.sh",
        str(root),
        SLURM_ARRAY_TASK_ID="3",
        SLURM_ARRAY_TASK_MIN="3",
        SLURM_ARRAY_TASK_COUNT="2",
    )
    assert "array task 0/2" in r.stdout
    assert set(m.status("aic")) == set(first)
    run_script(
        repo_root,
        "aic.sh",
        str(root),
        SLURM_ARRAY_TASK_ID="4",
        SLURM_ARRAY_TASK_MIN="3",
        SLURM_ARRAY_TASK_COUNT="2",
    )
    st = m.status("aic")
    assert set(st) == set(PAPERS) and all(s.status == "ok" for s in st.values())

    out = tmp_path / "corpora"
    r = run_script(
        repo_root,
        "build.sh",
        str(root),
        "--variants",
        "aic",
        "--out",
        str(out),
        "--tokenizer",
        str(tiny_model),
        "--validation-fraction",
        "0",
        SLURM_CPUS_PER_TASK="2",
    )
    assert "2 CPU(s)" in r.stdout
    kept = [json.loads(line)["id"] for line in (out / "aic" / "papers.jsonl").read_text().splitlines()]
    assert sorted(kept) == sorted(PAPERS)
    assert list((out / "aic" / "train").iterdir())
