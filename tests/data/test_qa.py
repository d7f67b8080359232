"""Astro Q&A stage: output parsing, quality filters, the prompt file, the vLLM and transformers paths,
the Slurm array script, and the hand-off to sft-convert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from astrollama.cli import main
from astrollama.data.aic import run_aic
from astrollama.data.decontam import Benchmark
from astrollama.data.llm import make_backend
from astrollama.data.manifest import Manifest
from astrollama.data.qa import (
    DEFAULT_PROMPT,
    QAConfig,
    QAError,
    QAPrompt,
    filter_pairs,
    grounding,
    parse_qa,
    qa_path,
    run_qa,
)

sys.path.insert(0, str(Path(__file__).parent))
from qa_recorded import RecordedOutputs, recorded_outputs  # noqa: E402
from test_resume_corpus import make_root  # noqa: E402

MCQ = Path(__file__).parent / "fixtures" / "corpus" / "mcq.jsonl"
SOURCE = (
    "Cold gas streams feed dwarf galaxy halos. We measured the neutral hydrogen column density along "
    "twelve sight lines with a radio interferometer and found that the streams carry about one solar "
    "mass of gas per year into the inner halo, enough to sustain the observed star formation rate."
)


def test_parse_keeps_pairs_and_reports_malformed_text() -> None:
    out = (
        "Sure! Here are the questions.\n\n1. Q: What feeds dwarf galaxy halos?\nA: Cold gas streams.\n"
        "**Question 2:** How was the column density measured?\n**Answer 2:** With a radio interferometer\n"
        "along twelve sight lines.\nQ: A question left without its answer?\nA: first\nA: second answer alone"
    )
    pairs, rejects = parse_qa(out)
    assert pairs == [
        ("What feeds dwarf galaxy halos?", "Cold gas streams."),
        ("How was the column density measured?", "With a radio interferometer along twelve sight lines."),
        ("A question left without its answer?", "first"),
    ]
    assert [(r["reason"], r["detail"]) for r in rejects] == [("parse", "answer without a question")]
    none, rej = parse_qa("The model rambled without any labels.")
    assert none == [] and rej[0]["detail"] == "no Q:/A: pairs in the output"


def test_filters_give_each_rejection_its_reason() -> None:
    mcq_q = json.loads(MCQ.read_text().splitlines()[0])["question"]
    pairs = [
        (
            "How much gas do cold streams carry into the inner halo of a dwarf galaxy?",
            "About one solar mass of gas per year, enough to sustain the observed star formation rate.",
        ),
        ("Why?", "Because the streams carry gas into the inner halo."),
        ("What carries gas into the inner halo?", "Cold streams."),
        ("What did this paper measure along the sight lines?", "The neutral hydrogen column density."),
        (
            "What is the mass of the Andromeda galaxy in solar masses?",
            "Roughly one trillion solar masses according to rotation curve modelling of its satellites.",
        ),
        (
            "How much gas do cold streams carry into the inner halo of a dwarf galaxy?",
            "About one solar mass of gas per year into the inner halo.",
        ),
        (mcq_q, "A massive halo of dark matter feeds the gas of the dwarf galaxy streams per year."),
        (
            "What instrument measured the neutral hydrogen column density of the streams?",
            "A radio interferometer measured it along twelve sight lines of the",
        ),
    ]
    cfg = QAConfig(min_question_words=3, min_answer_words=5, min_grounding=0.6)
    kept, rejects = filter_pairs(pairs, SOURCE, cfg, benchmark=Benchmark.from_file(MCQ, 13), truncated=True)
    assert kept == [pairs[0]]
    assert [r["reason"] for r in rejects] == [
        "question_length",
        "answer_length",
        "not_standalone",
        "ungrounded",
        "duplicate",
        "contaminated",
        "truncated",
    ]
    assert rejects[3]["detail"].startswith("0.") and "13-grams from questions [0]" in rejects[5]["detail"]
    assert (
        grounding(
            "The radio interferometer measured hydrogen.", set(SOURCE.lower().replace(".", " ").split())
        )
        == 1.0
    )
    assert grounding("the and of", {"the"}) == 0.0  # no content words: not grounded


def test_prompt_file_is_checked_and_hashed(tmp_path: Path) -> None:
    p = QAPrompt.load()
    assert p.path == DEFAULT_PROMPT and len(p.sha256) == 64
    conv = p.conversation(title="T", text="BODY", n_questions=3)
    assert [m["role"] for m in conv] == ["system", "user"] and "BODY" in conv[1]["content"]
    bad = tmp_path / "qa.yaml"
    bad.write_text("name: x\nsystem: s\nuser: 'Write {n_questions} about {title}.'\n")
    with pytest.raises(QAError, match=r"qa.yaml: user: lacks the placeholder \{text\}"):
        QAPrompt.load(bad)


def test_bad_options_exit_2_before_a_model_loads(tmp_path: Path, capsys) -> None:
    rc = main(
        [
            "data",
            "qa",
            "--root",
            str(tmp_path),
            "--model",
            str(tmp_path / "no-model"),
            "--min-answer-words",
            "50",
            "--max-answer-words",
            "10",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--min-answer-words/--max-answer-words: must be 1 <= min <= max" in err
    assert len(err.splitlines()) == 1


def _root(path: Path, n: int) -> list[str]:
    ids = make_root(path, n)
    run_aic(path, progress=False)
    return ids


def test_vllm_path_batches_papers_with_explicit_limits_and_seeds(
    tmp_path: Path, tiny_model: Path, fake_vllm
) -> None:
    ids = _root(tmp_path, 9)  # the 9th paper has no AIC: upstream failure recorded
    be = make_backend("vllm", tiny_model, max_model_len=1024, temperature=0.8, seed=1, model_id="tiny")
    cfg = QAConfig(max_new_tokens=40, batch_papers=16)
    stats = run_qa(tmp_path, be, config=cfg, mcq_path=MCQ, progress=False)
    assert (stats.ok, stats.failed) == (8, 1)
    (call,) = be.llm.calls  # the eight papers in ONE chat() call
    assert len(call) == 8 and all(sp.max_tokens == 40 for sp in call) and len({sp.seed for sp in call}) == 8
    st = Manifest(tmp_path).status("qa")
    assert st[ids[8]].error.startswith("upstream: aic failed")
    for pid in ids[:8]:
        rec = st[pid]
        res = json.loads(qa_path(tmp_path / "qa", pid).read_text())
        assert rec.attrs["qa_model"] == "tiny" and rec.attrs["qa_kept"] == len(res["conversations"])
        n_out = len(res["conversations"]) + len(res["rejected"])
        assert n_out >= 1 and sum(rec.attrs["qa_rejected"].values()) == len(res["rejected"])
        assert res["finish_reason"] in ("stop", "length") and res["prompt_sha256"] == QAPrompt.load().sha256
    # a rerun has nothing to do
    assert run_qa(tmp_path, be, config=cfg, progress=False).complete and len(be.llm.calls) == 1


def test_slurm_script_runs_its_array_shard(tmp_path: Path, tiny_model: Path, repo_root: Path) -> None:
    from astrollama.data.shards import shard_of

    ids = _root(tmp_path, 6)
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
            str(repo_root / "slurm" / "qa.sh"),
            str(tmp_path),
            "--backend",
            "transformers",
            "--model",
            str(tiny_model),
            "--max-new-tokens",
            "24",
            "--max-model-len",
            "1024",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "array task 1/2" in proc.stdout
    done = sorted(pid for pid, r in Manifest(tmp_path).status("qa").items() if r.status == "ok")
    assert done == sorted(shard_of(ids, 1, 2)) and 0 < len(done) < len(ids)


def test_kept_pairs_reach_lmflow_shards_split_by_paper(tmp_path: Path, tiny_model: Path, capsys) -> None:
    from astrollama.data.split import assign_split
    from astrollama.lmflow_data import read_conversation_dir

    ids = _root(tmp_path / "data", 9)
    m = Manifest(tmp_path / "data")
    outputs = recorded_outputs(tmp_path / "data")  # per paper: one pair kept, one not_standalone
    assert sorted(outputs) == ids[:8]
    run_qa(tmp_path / "data", RecordedOutputs(tiny_model, outputs), mcq_path=MCQ, progress=False)
    st = m.status("qa")
    assert all(
        st[p].attrs["qa_kept"] == 1 and st[p].attrs["qa_rejected"] == {"not_standalone": 1} for p in ids[:8]
    )
    out = tmp_path / "sft"
    rc = main(
        [
            "data",
            "sft-convert",
            "--input",
            f"qa={tmp_path / 'data'}",
            "--validation-fraction",
            "0.5",
            "--mcq",
            str(MCQ),
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    got = {
        split: [c["conversation_id"] for c in read_conversation_dir(out / split)]
        for split in ("train", "validation")
    }
    assert sorted(got["train"] + got["validation"]) == sorted(f"{p}#0" for p in ids[:8])
    for split, cids in got.items():
        assert all(assign_split(c.split("#")[0], 0.5) == split for c in cids)  # the CPT corpora's split
    src = json.loads((out / "stats.json").read_text())["sources"][0]
    assert src["papers"] == 8 and src["qa_rejected"] == {"not_standalone": 8}
