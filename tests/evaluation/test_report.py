"""The reproduction report: published numbers with citations beside ours with intervals."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from astrollama import paper
from astrollama.evaluation.common import EvalInputError
from astrollama.evaluation.embeddings import compare_embeddings
from astrollama.evaluation.report import build_report
from astrollama.evaluation.results import load_results
from astrollama.evaluation.settings import ScoringSettings
from astrollama.evaluation.suite import evaluate_model
from astrollama.evaluation.tables import paired_delta_ci
from astrollama.lmflow_data import write_text_only
from astrollama.models import tiny_llama

RECIPE = "astrollama-3-8b-base_summary"
HELDOUT = [
    "The galaxy rotation curve stays flat at large radii, which implies dark matter halos.",
    "Neutron stars form in core-collapse supernovae and can be observed as pulsars.",
    "Type Ia supernovae are standard candles used to measure the expansion of the Universe.",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_model, repo_root):
    tmp = tmp_path_factory.mktemp("report")
    trained = tiny_llama(tmp / "trained-model", seed=7)
    write_text_only(tmp / "heldout" / "h.json", HELDOUT)
    q = repo_root / "eval" / "data" / "astro_mcq_sample.jsonl"
    settings = ScoringSettings(
        questions=q, heldout=tmp / "heldout", scale="toy", block_size=16, max_new_tokens=8
    )
    kw = {"recipe": RECIPE}
    a = evaluate_model(tiny_model, tmp / "r-base", settings, label="tiny-base", role="base", **kw)
    b = evaluate_model(trained, tmp / "r-trained", settings, label="tiny-cpt", role="trained", **kw)
    compare_embeddings([("tiny-base", tiny_model), ("tiny-cpt", trained)], tmp / "heldout", tmp / "emb")
    return tmp, a, b


def test_results_dir_layout(results):
    _, a, _ = results
    meta = json.loads((a / "meta.json").read_text())
    assert meta == {**meta, "label": "tiny-base", "role": "base", "recipe": RECIPE, "scale": "toy"}
    for f in (
        "mcq/scores.json",
        "mcq/predictions.jsonl",
        "mcq/submission.csv",
        "ppl.json",
        "completion.json",
    ):
        assert (a / f).is_file(), f
    r = load_results(a)
    assert r.mcq["accuracy"] is not None and len(r.correct_by_id) == r.mcq["n"]
    lo, hi = r.ppl["ci95"]
    assert lo <= r.ppl["perplexity"] <= hi


def test_report_has_published_with_citations_and_ours_with_intervals(results):
    tmp, a, b = results
    out = build_report([a, b], tmp / "out", embed_dir=tmp / "emb")
    md = (out / "report.md").read_text()
    # every published number of the paper-scale table, from astrollama.paper, with its citation
    for trained, base in paper.RECIPE_SCORES.values():
        for name in (trained, base):
            pub = paper.MCQ_SCORES[name]
            assert f"{name} | {pub.value} [{pub.source}]" in md
    for key in {paper.MCQ_SCORES[n].source for pair in paper.RECIPE_SCORES.values() for n in pair}:
        assert f"- [{key}] {paper.SOURCES[key].title}" in md  # the reference list resolves every key
    # each of our models beside the published row its role maps to, with our interval
    t_name, b_name = paper.RECIPE_SCORES[RECIPE]
    for d, name in ((a, b_name), (b, t_name)):
        s = json.loads((d / "mcq" / "scores.json").read_text())
        acc, (lo, hi) = 100 * s["accuracy"], (100 * x for x in s["ci95"])
        ppl = json.loads((d / "ppl.json").read_text())
        pub = paper.MCQ_SCORES[name]
        label = json.loads((d / "meta.json").read_text())["label"]
        assert (
            f"| {label} | {json.loads((d / 'meta.json').read_text())['role']} | toy | **{acc:.1f}** "
            f"[{lo:.1f}, {hi:.1f}] (n={s['n']}) | {pub.value:.1f} ({name}) [{pub.source}] | "
            f"**{ppl['perplexity']:.2f}** [{ppl['ci95'][0]:.2f}, {ppl['ci95'][1]:.2f}]"
        ) in md
    assert "Toy scale" in md and "not comparable in absolute terms" in md
    a1 = paper.ASTROLLAMA1
    assert f"{a1['perplexity_base'].value} -> AstroLLaMA-1 {a1['perplexity_astrollama'].value}" in md
    assert "paired bootstrap" in md and "## Completions" in md and "## Embedding similarity" in md

    rows = list(csv.DictReader((out / "table.csv").read_text().splitlines()))
    assert [r["label"] for r in rows] == ["tiny-base", "tiny-cpt"]
    assert float(rows[1]["published_mcq"]) == paper.MCQ_SCORES[t_name].value
    assert rows[1]["published_mcq_source"] == paper.MCQ_SCORES[t_name].source
    data = json.loads((out / "report.json").read_text())
    assert (
        data["models"][0]["mcq_ci_low"]
        <= data["models"][0]["mcq_accuracy"]
        <= data["models"][0]["mcq_ci_high"]
    )
    assert data["changes"][0]["published_mcq_delta"]["value"] == pytest.approx(
        paper.MCQ_SCORES[t_name].value - paper.MCQ_SCORES[b_name].value
    )
    for png in ("report.png", "similarity.png"):
        assert (out / png).stat().st_size > 10_000
        with Image.open(out / png) as im:
            assert im.format == "PNG"


def test_paired_delta_ci():
    base = {str(i): i % 2 == 0 for i in range(40)}
    same = paired_delta_ci(base, dict(base))
    assert same[:3] == (0.0, 0.0, 0.0) and same[3] == 40
    better = paired_delta_ci({k: False for k in base}, {k: True for k in base})
    assert better[:3] == (1.0, 1.0, 1.0)
    d, lo, hi, n = paired_delta_ci(base, {k: True for k in base})
    assert d == 0.5 and lo < 0.5 < hi and n == 40
    with pytest.raises(ValueError, match="common question ids"):
        paired_delta_ci({"a": True}, {"b": True})


def test_bad_results_dirs(results, tmp_path):
    _, a, _ = results
    with pytest.raises(EvalInputError, match="no meta.json"):
        build_report([tmp_path], tmp_path / "o")
    with pytest.raises(EvalInputError, match="duplicate labels"):
        build_report([a, a], tmp_path / "o")
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(a, bad)
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "meta.json").write_text(json.dumps({**meta, "role": "finetuned"}))
    with pytest.raises(EvalInputError, match=r"bad/meta.json: field 'role' is 'finetuned'"):
        load_results(bad)
    (bad / "meta.json").write_text(json.dumps({**meta, "paper_model": "GPT-5"}))
    with pytest.raises(EvalInputError, match="'paper_model' is 'GPT-5', not a row"):
        load_results(bad)
    assert not (tmp_path / "o").exists()


def test_cli_model_and_report(results, tiny_model, repo_root, tmp_path, capsys):
    from astrollama.cli import main  # the one entry point: bad input -> one line, exit 2

    tmp, a, _ = results
    r = tmp_path / "r"
    assert (
        main(
            [
                "eval",
                "model",
                "--model",
                str(tiny_model),
                "--label",
                "again",
                "--role",
                "trained",
                "--paper-model",
                "AstroLLaMA-2-70B-Base_AIC",
                "--questions",
                str(repo_root / "eval" / "data" / "astro_mcq_sample.jsonl"),
                "--heldout",
                str(tmp / "heldout"),
                "--block-size",
                "16",
                "--max-new-tokens",
                "4",
                "--out",
                str(r),
            ]
        )
        == 0
    )
    assert main(["eval", "report", "--results", str(a), str(r), "--out", str(tmp_path / "rep")]) == 0
    md = capsys.readouterr().out
    pub = paper.MCQ_SCORES["AstroLLaMA-2-70B-Base_AIC"]
    assert f"{pub.value:.1f} (AstroLLaMA-2-70B-Base_AIC) [{pub.source}]" in md
    assert (tmp_path / "rep" / "report.png").is_file()
    assert main(["eval", "report", "--results", str(tmp_path), "--out", str(tmp_path / "rep2")]) == 2
    assert "no meta.json" in capsys.readouterr().err
