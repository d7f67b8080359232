"""The demo's toy SFT conversations: deterministic, grounded in the demo papers, LMFlow-valid,
split like the CPT corpora, and decontaminated against the benchmark."""

from __future__ import annotations

import json

import pytest

from astrollama.data.build_config import BuildConfig
from astrollama.data.demo_sft import MCQ_SAMPLE, PAPERS_DIR, TEMPLATES, build_sft_data, generate
from astrollama.data.split import assign_split
from astrollama.lmflow_data import read_conversation_dir, summarize_dataset


@pytest.fixture(scope="module")
def papers():
    return {p["id"]: p for p in (json.loads(f.read_text()) for f in sorted(PAPERS_DIR.glob("*.json")))}


def _files(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_valid_lmflow(tmp_path, papers):
    a = build_sft_data(tmp_path / "a")
    b = build_sft_data(tmp_path / "b")
    assert a == b and _files(tmp_path / "a") == _files(tmp_path / "b")
    assert generate(seed=1) != generate(seed=0)
    n = a["conversations"]["train"] + a["conversations"]["validation"]
    assert 300 <= n <= 500  # a few hundred
    assert a["kinds"] == {
        "conclusion": 36,
        "findings": 36,
        "general": 30,
        "metadata": 36,
        "methods": 36,
        "motivation": 36,
        "summary": 36,
        "task": 96,
    }
    convs = []
    for split in ("train", "validation"):
        s = summarize_dataset(tmp_path / "a" / split)  # the checks LMFlow's reader needs
        assert s.kind == "conversation" and s.documents == a["conversations"][split]
        convs += read_conversation_dir(tmp_path / "a" / split)
    assert sorted(c["conversation_id"] for c in convs) == sorted(c["conversation_id"] for c in generate())
    assert any(len(c["messages"]) == 6 for c in convs) and all(
        c["messages"][0]["role"] == "user" for c in convs
    )


def test_paper_answers_come_from_the_paper_and_split_by_paper(tmp_path, papers):
    templates = json.loads(TEMPLATES.read_text())
    build_sft_data(tmp_path / "d")
    frac = BuildConfig().validation_fraction  # the CPT build's split
    for split in ("train", "validation"):
        for c in read_conversation_dir(tmp_path / "d" / split):
            cid = c["conversation_id"]
            if not cid.startswith("demo/"):
                continue
            pid, kind = cid.split(":")
            p = papers[pid]
            assert split == assign_split(pid, frac), cid  # a held-out paper stays held out
            assert p["title"] in c["messages"][0]["content"]
            answer = c["messages"][1]["content"]
            source = {
                "summary": p["abstract"],
                "findings": p["abstract"],
                "motivation": p["sections"][0]["text"],
                "methods": p["sections"][1]["text"],
                "conclusion": p["sections"][-1]["text"],
            }.get(kind)
            if source is not None:  # the template's lead-in, then a run of the paper's own words
                heading = {"methods": p["sections"][1]["heading"], "conclusion": p["sections"][-1]["heading"]}
                leads = [
                    x.split("{text}")[0].format(heading=heading.get(kind, ""))
                    for x in templates["paper"][kind]["answers"]
                ]
                lead = max((x for x in leads if answer.startswith(x)), key=len)
                assert len(answer) - len(lead) > 100 and answer[len(lead) :][:200] in source, cid
            else:
                assert p["authors"][0] in answer and p["published"] in answer


def test_decontamination_drops_a_planted_benchmark_question(tmp_path):
    convs = generate()
    q = json.loads(MCQ_SAMPLE.read_text().splitlines()[4])
    planted = {
        "conversation_id": "general:planted",
        "system": "",
        "messages": [
            {"role": "user", "content": f"{q['question']} A) {q['A']} B) {q['B']} C) {q['C']} D) {q['D']}"},
            {"role": "assistant", "content": f"The answer is {q['correct']}."},
        ],
    }
    s = build_sft_data(tmp_path / "with", convs=[*convs, planted])
    assert s["decontamination"]["dropped"] == 1
    assert s["decontamination"]["matches"][0]["conversation_id"] == "general:planted"
    assert s["decontamination"]["matches"][0]["questions"] == [4]
    kept = [
        c["conversation_id"]
        for sp in ("train", "validation")
        for c in read_conversation_dir(tmp_path / "with" / sp)
    ]
    assert "general:planted" not in kept and len(kept) == len(convs)
    # without a benchmark the same conversation is kept
    s = build_sft_data(tmp_path / "without", convs=[*convs, planted], mcq_path=None)
    assert s["decontamination"]["dropped"] == 0


def test_a_benchmark_quoting_a_paper_removes_that_papers_conversation(tmp_path, papers):
    # the other direction: a question written from a demo paper's abstract contaminates the
    # conversation that quotes that abstract, and only that one
    sentence = papers["demo/0007"]["abstract"].split(". ")[0]
    mcq = tmp_path / "bench.jsonl"
    mcq.write_text(
        json.dumps(
            {
                "id": "x1",
                "question": f"{sentence}. What is the distance?",
                "A": "25 Mpc",
                "B": "2 Mpc",
                "C": "250 Mpc",
                "D": "2.5 kpc",
                "correct": "A",
            }
        )
        + "\n"
    )
    s = build_sft_data(tmp_path / "o", mcq_path=mcq)
    assert [m["conversation_id"] for m in s["decontamination"]["matches"]] == ["demo/0007:summary"]


def test_demo_sft_then_merge_at_tiny_scale(tmp_path, smollm2):
    """The toy target's second half through its scripts: the demo-sft stage, SFT (slurm/cpt.sh, 2
    steps) of SmolLM2 on the demo conversations, then the merge (slurm/merge.sh) with
    SmolLM2-135M-Instruct: the merged weights are 0.75 SFT + 0.25 instruct, tensor for tensor."""
    import os
    import subprocess

    from safetensors.torch import load_file

    from astrollama.cli import main

    repo = PAPERS_DIR.parents[2]
    assert main(["data", "demo-sft", "--out", str(tmp_path / "sft")]) == 0
    assert main(["data", "demo-sft", "--out", str(tmp_path / "sft")]) == 0  # complete: nothing to do
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    sft = [
        "bash",
        "slurm/cpt.sh",
        "recipes/demo-smollm2-135m-sft.yaml",
        f"model.name_or_path={smollm2}",
        f"data.dataset_path={tmp_path / 'sft' / 'train'}",
        "data.eval_dataset_path=null",
        f"launch.run_dir={tmp_path / 'sft-run'}",
        "trainer.max_steps=2",
        "trainer.save_steps=2",
    ]
    assert subprocess.run(sft, cwd=repo, env=env).returncode == 0
    ckpt = tmp_path / "sft-run" / "checkpoints"
    state = json.loads(next((tmp_path / "sft-run").rglob("trainer_state.json")).read_text())
    assert state["global_step"] == 2
    merged = tmp_path / "merged"
    merge = ["bash", "slurm/merge.sh", "recipes/demo-smollm2-135m-merge.yaml", f"models.sft.path={ckpt}"]
    assert subprocess.run([*merge, f"output_dir={merged}"], cwd=repo, env=env).returncode == 0
    prov = json.loads((merged / "provenance" / "merge.json").read_text())
    assert prov["method"] == "linear" and str(ckpt) in json.dumps(prov["inputs"])
    a, b = load_file(ckpt / "model.safetensors"), load_file(smollm2 / "model.safetensors")
    m = {}
    for f in merged.glob("*.safetensors"):
        m |= load_file(f)
    name = "model.layers.0.mlp.down_proj.weight"
    assert not (a[name] == b[name]).all()  # SFT moved the weights
    assert (m[name] - (0.75 * a[name] + 0.25 * b[name])).abs().max() < 1e-6
