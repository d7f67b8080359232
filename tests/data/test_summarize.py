"""Summaries: prompt files, section chunking, the transformers and vLLM backends, the stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from astrollama.data.llm import SummaryError, TransformersBackend, make_backend
from astrollama.data.manifest import Manifest
from astrollama.data.summarize import (
    DEFAULT_PROMPT,
    PaperInput,
    Prompt,
    SummaryConfig,
    plan_chunks,
    read_summary,
    run_summary,
    split_sections,
    summarize_papers,
)

FIX = Path(__file__).parent / "fixtures" / "aic"


def long_mmd(sections: int = 6, words: int = 120) -> str:
    body = [
        f"## {i + 1} Section number {i + 1}\n\n" + " ".join(f"w{i}x{j}" for j in range(words))
        for i in range(sections)
    ]
    return (
        "# A long paper\n\n###### Abstract\n\nShort abstract.\n\n"
        + "\n\n".join(body)
        + "\n\nFigure 1: The caption of the first figure.\n\n## Acknowledgments\n\nThanks.\n\n"
        "## References\n\n* Ref A\n\n## Appendix A Details\n\nAppendix text.\n"
    )


@pytest.fixture(scope="module")
def tiny_backend(tiny_model: Path) -> TransformersBackend:
    # a random model decoded greedily repeats one (often special) token: sample, seeded
    return TransformersBackend(tiny_model, max_model_len=1024, temperature=1.0)


def test_split_sections_drops_back_matter_and_keeps_captions() -> None:
    title, secs = split_sections((FIX / "numbered_hash.mmd").read_text())
    assert title == "Cold Gas Streams in Dwarf Galaxy Halos"
    names = [s.title for s in secs]
    assert names == ["", "Abstract", "Introduction", "Motivation", "Observations", "Results", "Conclusions"]
    assert secs[0].text == "Ada Example, Ben Sample"  # front matter under the title heading
    text = "\n".join(s.text for s in secs)
    for gone in ("telescope operators", "Author A.", "continuity equation", "MISSING_PAGE"):
        assert gone not in text
    _, secs = split_sections(long_mmd())
    assert "Figure 1: The caption" in secs[-1].text and "Appendix text" not in "".join(s.text for s in secs)


def test_prompt_file_hash_and_validation(tmp_path: Path) -> None:
    p = Prompt.load()
    assert p.path == DEFAULT_PROMPT and len(p.sha256) == 64
    conv = p.conversation(title="T", part=1, parts=2, budget=100, previous="", chunk="CHUNK")
    assert (
        conv[0]["role"] == "system"
        and "CHUNK" in conv[1]["content"]
        and p.first_previous in conv[1]["content"]
    )
    changed = tmp_path / "p.yaml"
    changed.write_text(DEFAULT_PROMPT.read_text() + "\n# edited\n")
    assert Prompt.load(changed).sha256 != p.sha256
    changed.write_text("name: x\nsystem: s\nuser: 'no placeholders'\n")
    with pytest.raises(SummaryError, match=r"p.yaml: user: lacks the placeholder \{chunk\}"):
        Prompt.load(changed)


def test_chunks_fit_the_budget_and_keep_order(tiny_backend: TransformersBackend) -> None:
    _, secs = split_sections(long_mmd(sections=5, words=150))

    def count(t: str) -> int:
        return len(tiny_backend.encode(t))

    chunks = plan_chunks(secs, count, 400, tiny_backend.encode, tiny_backend.decode)
    assert len(chunks) > 2
    assert all(count(c) <= 400 for c in chunks)
    joined = "\n\n".join(chunks)
    pos = [joined.index(f"Section number {i}") for i in range(1, 6)]
    assert pos == sorted(pos)


def test_transformers_backend_chunked_summary_sidecar_and_resume(tmp_path: Path, tiny_backend) -> None:
    (tmp_path / "long.mmd").write_text(long_mmd(sections=6, words=40))
    (tmp_path / "empty.mmd").write_text("# Only a title\n\n## References\n\n* A\n")
    cfg = SummaryConfig(
        min_tokens=40, target_total=60, max_tokens=200, previous_tokens=64, min_chunk_budget=4
    )
    papers = [
        PaperInput("2403.00001", tmp_path / "long.mmd"),
        PaperInput("2403.00002", tmp_path / "empty.mmd"),
    ]
    res = {
        r.id: r for r in summarize_papers(papers, tiny_backend, tmp_path / "out", config=cfg, progress=False)
    }
    assert res["2403.00002"].status == "failed" and "no body text" in res["2403.00002"].reason
    ok = res["2403.00001"]
    assert ok.status == "done"
    text, side = read_summary(tmp_path / "out", "2403.00001")
    assert side["chunks"] >= 3  # a 1,024-token context forces several parts
    assert side["summary_model"] == str(tiny_backend.model_id)
    assert side["prompt_sha256"] == Prompt.load().sha256
    assert side["summary_tokens"] == len(tiny_backend.encode(text)) == ok.attrs["summary_tokens"]
    budgets = side["chunk_budgets"]
    assert abs(sum(budgets) - 60) <= len(budgets) and all(b >= cfg.min_chunk_budget for b in budgets)
    expect = "short" if side["summary_tokens"] < 40 else "long" if side["summary_tokens"] > 200 else None
    assert side["length_flag"] == expect
    # rerun: nothing regenerated, same result reported
    again = summarize_papers(papers[:1], tiny_backend, tmp_path / "out", config=cfg, progress=False)
    assert again[0].attrs == ok.attrs
    # seeded per (paper, part): a fresh run gives the same bytes
    summarize_papers(papers[:1], tiny_backend, tmp_path / "out2", config=cfg, progress=False)
    assert read_summary(tmp_path / "out2", "2403.00001")[0] == text


def test_length_flag_outside_target(tmp_path: Path, tiny_backend) -> None:
    cfg = SummaryConfig(min_tokens=100, target_total=100, max_tokens=4000, min_chunk_budget=8)
    mmd = tmp_path / "p.mmd"
    mmd.write_text("## Introduction\n\nA very short paper about dust.\n")
    (r,) = summarize_papers(
        [PaperInput("2403.00003", mmd)], tiny_backend, tmp_path / "o", config=cfg, progress=False
    )
    assert r.status == "done", r.reason
    assert r.attrs["length_flag"] == "short"  # the paper itself is shorter than the minimum


def test_vllm_backend_sets_max_tokens_and_isolates_overlong_prompts(
    tmp_path: Path, tiny_model: Path, fake_vllm
) -> None:
    # the trap the backend must avoid: vLLM's default max_tokens is 16
    assert fake_vllm.SamplingParams().max_tokens == 16
    be = make_backend(
        "vllm",
        tiny_model,
        tensor_parallel_size=2,
        max_model_len=1024,
        dtype="bfloat16",
        temperature=0.7,
        seed=3,
        model_id="tiny",
    )
    assert be.llm.init_kwargs["tensor_parallel_size"] == 2 and be.llm.init_kwargs["max_model_len"] == 1024
    for i in range(3):
        (tmp_path / f"{i}.mmd").write_text(long_mmd(sections=2 + i, words=60))
    cfg = SummaryConfig(min_tokens=10, target_total=40, max_tokens=400, batch_papers=8)
    papers = [PaperInput(f"2404.0000{i}", tmp_path / f"{i}.mmd") for i in range(3)]
    res = summarize_papers(papers, be, tmp_path / "out", config=cfg, progress=False)
    assert [r.status for r in res] == ["done"] * 3, [r.reason for r in res]
    first_round = be.llm.calls[0]
    assert len(first_round) == 3  # chunk 1 of every paper in ONE chat() call
    assert all(sp.max_tokens is not None and sp.max_tokens > 16 for call in be.llm.calls for sp in call)
    assert len({sp.seed for sp in first_round}) == 3  # per-request seeds, derived from the paper id
    for r in res:
        _, side = read_summary(tmp_path / "out", r.id)
        assert side["summary_model"] == "tiny"
        assert side["summary_tokens"] > 16 or "stop" in side["finish_reasons"]
    # one overlong prompt fails vLLM's whole batch: the backend retries one by one
    ok = [{"role": "user", "content": "short"}]
    too_long = [{"role": "user", "content": "word " * 2000}]
    gens = be.generate([ok, too_long, ok], [20, 20, 20], [1, 2, 3])
    assert isinstance(gens[1], ValueError) and "longer than the maximum model length of 1024" in str(gens[1])
    assert not isinstance(gens[0], Exception) and not isinstance(gens[2], Exception)


def test_stage_records_model_prompt_and_tokens_in_manifest(tmp_path: Path, tiny_backend) -> None:
    m = Manifest(tmp_path)
    ids = ["2405.00001", "2405.00002", "2405.00003", "2405.00004"]
    m.upsert_papers([{"id": i, "title": f"Paper {i}"} for i in ids])
    for i in ids[:3]:
        p = tmp_path / "ocr" / f"{i}.mmd"
        p.parent.mkdir(exist_ok=True)
        p.write_text((FIX / "numbered_hash.mmd").read_text().replace("twelve", i))
        m.record("ocr", i, "ok", outputs={"mmd": p})
    m.record("ocr", ids[3], "failed", "corrupt: not a PDF")
    cfg = SummaryConfig(min_tokens=20, target_total=30, max_tokens=100)
    stats = run_summary(tmp_path, tiny_backend, config=cfg, limit=2, progress=False)
    st = m.status("summary")
    assert sorted(k for k, v in st.items() if v.status == "ok") == ids[:2]  # --limit: first two pending
    assert ids[3] not in st and ids[2] not in st  # the rest stays pending
    rec = st[ids[0]]
    assert rec.attrs["summary_model"] == str(tiny_backend.model_id)
    assert rec.attrs["prompt_sha256"] == Prompt.load().sha256
    assert rec.attrs["summary_tokens"] > 0 and "length_flag" in rec.attrs
    side = json.loads(m.resolve(rec.outputs["summary_meta"]).read_text())
    assert side["summary_tokens"] == rec.attrs["summary_tokens"]
    assert stats.ok == 2
    run_summary(tmp_path, tiny_backend, config=cfg, progress=False)
    st = m.status("summary")
    assert st[ids[2]].status == "ok" and st[ids[3]].error == "upstream: ocr failed: corrupt: not a PDF"


def test_slurm_script_runs_its_array_shard(tmp_path: Path, tiny_model: Path, repo_root: Path) -> None:
    import os
    import subprocess

    from astrollama.data.shards import shard_of

    m = Manifest(tmp_path)
    ids = [f"2407.0000{i}" for i in range(1, 7)]
    m.upsert_papers([{"id": i, "title": "T"} for i in ids])
    for i in ids:
        p = tmp_path / "ocr" / f"{i}.mmd"
        p.parent.mkdir(exist_ok=True)
        p.write_text((FIX / "roman_bold.mmd").read_text())
        m.record("ocr", i, "ok", outputs={"mmd": p})
    env = {
        **os.environ,
        "SLURM_ARRAY_TASK_ID": "1",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_ARRAY_TASK_COUNT": "2",
        "ASTROLLAMA_VENV": str(Path(sys.executable).parents[1]),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("SLURM_JOB_ID", None)
    proc = subprocess.run(
        [
            "bash",
            str(repo_root / "slurm" / "summarize.sh"),
            str(tmp_path),
            "--backend",
            "transformers",
            "--model",
            str(tiny_model),
            "--temperature",
            "1.0",
            "--target-tokens",
            "30",
            "--min-tokens",
            "10",
            "--max-tokens",
            "100",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "array task 1/2" in proc.stdout
    done = sorted(pid for pid, r in m.status("summary").items() if r.status == "ok")
    assert done == sorted(shard_of(ids, 1, 2)) and 0 < len(done) < len(ids)
