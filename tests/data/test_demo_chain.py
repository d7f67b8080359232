"""The demo data chain end to end through the pipeline runner (`astrollama data run
data_prep/demo.yaml`): bundled paper texts -> PDFs -> OCR (pdf-text) -> AIC -> SmolLM2 summaries on
CPU -> LMFlow corpora that the demo recipe accepts unchanged, and the SFT conversations."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from astrollama.data.manifest import Manifest
from astrollama.lmflow_data import read_text_only_dir

REPO = Path(__file__).resolve().parents[2]
# the demo's chain with one summary of a 24-token target (generation is the slow step on CPU)
TINY = [
    "summarize.limit=1",
    "summarize.target_tokens=24",
    "summarize.min_tokens=12",
    "summarize.max_tokens=72",
]


def run_chain(work: Path, log: list[str] | None = None) -> dict:
    """`astrollama data run data_prep/demo.yaml` with every output under ``work``."""
    from astrollama.data.pipeline import load_pipeline, run_local
    from astrollama.demo import demo_target

    sets = demo_target(work)["data"]["set"] + TINY
    p = load_pipeline(REPO / "data_prep" / "demo.yaml", sets)
    run_local(p, p.run, log=(log.append if log is not None else print))
    corpus = work / "corpus"
    return {
        "root": work / "prep",
        "corpus": corpus,
        "train_dir": corpus / "aic" / "train",
        "heldout_dir": corpus / "abstracts" / "validation",
        "variants": {v: {"stats": corpus / v / "stats.json"} for v in ("abstracts", "aic", "summary")},
    }


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_demo_chain_builds_corpora_the_demo_recipe_accepts(demo_prep, repo_root: Path) -> None:
    workdir, res, lines = demo_prep
    m = Manifest(res["root"])
    n = len(m.ids())
    assert n >= 30
    summary = m.summary()
    assert summary["ocr"] == {"ok": n} and summary["aic"] == {"ok": n}
    assert summary["summary"] == {"ok": 1}  # the CPU demo summarises one paper; the rest is pending
    assert [x.split(": ")[0] for x in lines] == [
        f"[data run {i}/7] {s}"
        for i, s in enumerate(["harvest", "download", "ocr", "aic", "summarize", "build", "demo-sft"], 1)
    ]
    assert "astrollama data ocr --root=" in lines[2] and "--backend=pdf-text" in lines[2]
    assert (workdir / "sft" / "train").is_dir()

    train, held = read_text_only_dir(res["train_dir"]), read_text_only_dir(res["heldout_dir"])
    stats = {v: json.loads(Path(p["stats"]).read_text()) for v, p in res["variants"].items()}
    assert (
        len(train) == stats["aic"]["train"]["papers"]
        and len(held) == stats["abstracts"]["validation"]["papers"]
    )
    assert stats["aic"]["papers_out"] + sum(stats["aic"]["drops"].values()) == n
    assert stats["summary"]["papers_out"] == 1
    # the same papers are held out in every variant
    splits = {
        v: {
            json.loads(x)["id"]: json.loads(x)["split"]
            for x in (res["corpus"] / v / "papers.jsonl").read_text().splitlines()
        }
        for v in ("abstracts", "aic")
    }
    assert all(splits["aic"][i] == s for i, s in splits["abstracts"].items() if i in splits["aic"])
    # AIC documents stop before acknowledgments / references / appendices
    assert not any("References" in d or "Appendix" in d for d in train)

    # the demo recipe, unchanged but for the data paths, accepts the directories
    from astrollama.train.launch import build_launch
    from astrollama.train.recipe import load_recipe

    recipe = load_recipe(
        repo_root / "recipes" / "demo-smollm2-135m.yaml",
        [f"data.dataset_path={res['train_dir']}", f"data.eval_dataset_path={res['heldout_dir']}"],
    )
    plan = build_launch(recipe, nodes=["localhost"], gpus_per_node=1, dry_run=True, check_data=True)
    assert str(res["train_dir"]) in " ".join(plan.commands[0])

    # a rerun redoes nothing and changes nothing
    before = tree_hash(res["corpus"]), tree_hash(res["root"] / "summary")
    run_chain(workdir)
    assert (tree_hash(res["corpus"]), tree_hash(res["root"] / "summary")) == before


def test_demo_recipe_names_the_demo_layout(repo_root: Path) -> None:
    """The demo recipe's own data paths are where `astrollama demo` (the toy target, workdir
    work/demo) writes its training corpus and held-out set, so its header and a bare `bash
    slurm/cpt.sh` agree with it."""
    from astrollama.demo import DEFAULT_WORKDIR, TARGET, demo_target
    from astrollama.reproduce import Plan
    from astrollama.targets import Target
    from astrollama.train.recipe import load_recipe

    r = load_recipe(repo_root / "recipes" / "demo-smollm2-135m.yaml")
    work = DEFAULT_WORKDIR.relative_to(repo_root)
    assert Path(r.data.dataset_path).as_posix().endswith(f"{work.as_posix()}/corpus/aic/train")
    assert (
        Path(r.data.eval_dataset_path).as_posix().endswith(f"{work.as_posix()}/corpus/abstracts/validation")
    )
    plan = Plan(str(TARGET), Target.model_validate(demo_target(DEFAULT_WORKDIR)), TARGET)
    assert plan.corpus == DEFAULT_WORKDIR.resolve() / "corpus"
    assert plan.target.data.variant == "aic" and plan.target.data.heldout_variant == "abstracts"
