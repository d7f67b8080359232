"""The report over N named stages (base -> CPT -> SFT -> merged) with the published chains beside."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from astrollama import paper
from astrollama.evaluation.common import EvalInputError
from astrollama.evaluation.report import build_report
from astrollama.evaluation.results import load_results
from astrollama.evaluation.settings import ScoringSettings
from astrollama.evaluation.suite import evaluate_model
from astrollama.evaluation.tables import paired_delta_ci
from astrollama.lmflow_data import write_text_only
from astrollama.models import tiny_llama

HELDOUT = [
    "Barred spirals show flatter gas-phase metallicity gradients than unbarred discs of the same mass.",
    "A hot Jupiter on a three-day orbit raises tides on its host star and slowly spirals inward.",
    "The dust continuum of a protoplanetary disc at millimetre wavelengths traces its pebbles.",
]
STAGES = ("base", "CPT", "SFT", "merged")


@pytest.fixture(scope="module")
def four(tmp_path_factory, tiny_model, repo_root):
    tmp = tmp_path_factory.mktemp("stages")
    write_text_only(tmp / "heldout" / "h.json", HELDOUT)
    settings = ScoringSettings(
        questions=repo_root / "eval" / "data" / "astro_mcq_sample.jsonl",
        heldout=tmp / "heldout",
        scale="toy",
        block_size=16,
        max_new_tokens=4,
    )
    dirs = []
    for i, stage in enumerate(STAGES):
        model = tiny_model if i == 0 else tiny_llama(tmp / f"m-{stage}", seed=10 + i)
        dirs.append(
            evaluate_model(
                model,
                tmp / f"r-{stage}",
                settings,
                label=f"tiny-{stage.lower()}",
                role="base" if i == 0 else "trained",
                stage=stage,
            )
        )
    return tmp, dirs


def test_four_stages_table_intervals_and_published_chains(four):
    tmp, dirs = four
    out = build_report(dirs, tmp / "out")
    md = (out / "report.md").read_text()
    data = json.loads((out / "report.json").read_text())
    res = [load_results(d) for d in dirs]
    assert [r.stage for r in res] == list(STAGES)
    assert [s["stage"] for s in data["stages"]] == list(STAGES)
    assert "## Stage by stage" in md and "## Change from the base model" in md
    # each stage's row: its accuracy with its interval, its paired change from the previous stage and
    # from the first, both recomputed here from the prediction files
    for i, r in enumerate(res):
        acc, (lo, hi), n = 100 * r.mcq["accuracy"], (100 * x for x in r.mcq["ci95"]), r.mcq["n"]
        row = f"| {STAGES[i]} | {r.label} | **{acc:.1f}** [{lo:.1f}, {hi:.1f}] (n={n}) | "
        if i == 0:
            assert row + "- | - |" in md
            continue
        cells = []
        for ref in (res[i - 1], res[0]):
            d, dlo, dhi, _ = paired_delta_ci(ref.correct_by_id, r.correct_by_id)
            cells.append(f"{100 * d:+.1f} [{100 * dlo:+.1f}, {100 * dhi:+.1f}]")
        assert row + " | ".join(cells) + " |" in md, row
        rel = r.ppl["perplexity"] / res[0].ppl["perplexity"] - 1
        assert md.split(row, 1)[1].split("\n", 1)[0].rstrip().endswith(f"{100 * rel:+.1f}% |")
        assert data["stages"][i]["vs_first"]["mcq"]["n"] == n
    # every published stage of every chain, with its citation, resolved in the references
    for chain, stages in paper.STAGE_CHAINS.items():
        line = next(x for x in md.splitlines() if x.startswith(f"| {chain} |"))
        for s in paper.STAGES:
            m = stages[s]
            if m is None:
                continue
            pub = paper.MCQ_SCORES[m]
            flag = "" if pub.verified else " (to confirm)"
            assert f"{m} {pub.value} [{pub.source}]{flag}" in line
            assert f"- [{pub.source}] {paper.SOURCES[pub.source].title}" in md
    assert "AstroSage-Llama-3.1-8B 80.9 [astromlab3]" in md
    with Image.open(out / "stages.png") as im:
        assert im.format == "PNG" and im.size[0] > 1000
    assert (out / "report.png").stat().st_size > 10_000


def test_two_stages_keep_the_two_model_report(four):
    tmp, dirs = four
    out = build_report(dirs[:2], tmp / "two")
    md = (out / "report.md").read_text()
    assert "## Change from continued pre-training" in md
    assert "## Stage by stage" not in md and not (out / "stages.png").exists()
    assert json.loads((out / "report.json").read_text())["stages"] == []


def test_bad_stage_name(four, tmp_path):
    import shutil

    _, dirs = four
    bad = tmp_path / "bad"
    shutil.copytree(dirs[1], bad)
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "meta.json").write_text(json.dumps({**meta, "stage": 3}))
    with pytest.raises(EvalInputError, match=r"bad/meta.json: field 'stage' must be a non-empty string"):
        load_results(bad)
