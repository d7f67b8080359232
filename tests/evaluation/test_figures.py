"""The report's figures: readable at any model-name length (no two drawn texts overlap, measured
with matplotlib's renderer extents), published rows beside the stage they belong to, and the
similarity figure with one panel per model plus cumulative curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrollama import paper
from astrollama.evaluation import figures, report, tables
from astrollama.targets import load_target

DEMO_RECIPE = load_target("demo")[0].eval.recipe  # the published row the toy stands beside


def _rows(labels: list[str], published: list[str | None], stages: list[str] | None = None) -> list[dict]:
    rows = []
    for i, (label, pub) in enumerate(zip(labels, published, strict=True)):
        acc = 0.2 + 0.05 * (i % 5)
        rows.append(
            {
                "label": label,
                "role": "base" if i == 0 else "trained",
                "scale": "toy",
                "stage": (stages or labels)[i],
                "mcq_accuracy": acc,
                "mcq_ci_low": acc - 0.1,
                "mcq_ci_high": acc + 0.1,
                "perplexity": 20.0 - i,
                "ppl_ci_low": 18.0 - i,
                "ppl_ci_high": 22.0 - i,
                "published_model": pub,
                "published_mcq": paper.MCQ_SCORES[pub].value if pub else None,
                "published_perplexity": None,
                "published_perplexity_model": None,
            }
        )
    return rows


LONG = "a-checkpoint-name-that-goes-on/" * 6  # 186 characters, no spaces
NAMES = sorted(paper.MCQ_SCORES, key=len, reverse=True)  # the longest published names first


@pytest.mark.parametrize(
    ("labels", "stages"),
    [
        (["SmolLM2-135M-Instruct" + " + CPT" * k for k in range(4)], ["base", "CPT", "SFT", "merged"]),
        ([f"{LONG}{k}" for k in range(4)], None),
        ([f"model {k} " * (3 * k + 1) for k in range(8)], None),
        (["a", "b"], None),
    ],
)
def test_report_figure_has_no_overlapping_text(labels, stages):
    pub = [NAMES[i % len(NAMES)] if i % 3 != 2 else None for i in range(len(labels))]
    rows = _rows(labels, pub, stages)
    fig = figures.report_figure(rows)
    assert figures.text_overlaps(fig) == []
    keys = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert keys == figures.short_keys(rows)
    assert all(len(k) <= figures.KEY_MAX for k in keys)
    texts = [t.get_text() for t in figures.drawn_texts(fig)]
    for p in pub:  # every published bar is named, inside the figure
        assert p is None or p in texts
    legend = "\n".join(t for t in texts if "(trained, toy)" in t or "(base, toy)" in t)
    assert all(len(line) <= figures.WRAP for line in legend.splitlines())
    squeeze = "".join(legend.split())
    assert all("".join(label.split()) in squeeze for label in labels)  # every full name is in the key
    width, height = fig.get_size_inches() * fig.dpi
    for t in figures.drawn_texts(fig):
        bb = t.get_window_extent(fig.canvas.get_renderer())
        assert bb.x0 >= -1 and bb.y0 >= -1 and bb.x1 <= width + 1 and bb.y1 <= height + 1, t.get_text()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_stage_names_are_the_axis_keys_when_short():
    rows = _rows(["x" * 80, "y" * 80, "z" * 80], [None] * 3, ["base", "CPT", "SFT"])
    assert figures.short_keys(rows) == ["base", "CPT", "SFT"]
    assert figures.short_keys(_rows(["a", "b"], [None, None], ["same", "same"])) == ["M1", "M2"]
    fig = figures.stages_figure(rows, tables.stage_reference())
    assert figures.text_overlaps(fig) == []
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["base", "CPT", "SFT"]


def test_similarity_figure_one_panel_per_model_and_cumulative_curves():
    rng = np.random.default_rng(0)
    sims = {f"SmolLM2-135M-Instruct{' + stage' * k}": rng.normal(0.8 + 0.01 * k, 0.02, 15) for k in range(4)}
    sims[next(iter(sims))] = sims[next(iter(sims))].copy()
    fig = figures.similarity_figure(sims)
    hist_axes, cdf = fig.axes[:-1], fig.axes[-1]
    assert len(hist_axes) == len(sims)  # one histogram per model: none can hide another
    for ax in hist_axes:
        assert sum(p.get_height() for p in ax.patches) == pytest.approx(1.0)  # fraction of pairs
        assert ax.get_shared_x_axes().joined(ax, hist_axes[0])  # same bins and range for every model
    lines = cdf.get_lines()
    assert len(lines) == len(sims)
    assert len({(ln.get_color(), ln.get_linestyle()) for ln in lines}) == len(sims)
    for ln, s in zip(lines, sims.values(), strict=True):
        assert np.allclose(np.sort(ln.get_xdata()), np.sort(s)) and ln.get_ydata()[-1] == pytest.approx(1.0)
    assert figures.text_overlaps(fig) == []


def test_demo_rows_stand_beside_the_recipe_they_train_on():
    """The demo continues pre-training on the AIC corpus: its base and CPT rows sit beside the AIC
    recipe's published rows, and report.json says why (published_basis)."""
    assert DEMO_RECIPE == "astrollama-3-8b-base_aic"
    trained, base = paper.RECIPE_SCORES[DEMO_RECIPE]
    for role, name in (("base", base), ("trained", trained)):
        meta = {"role": role, "recipe": DEMO_RECIPE}
        assert tables.published_mcq(meta)[0] == name
        assert tables.published_basis(meta) == f"recipe {DEMO_RECIPE}: its {role} model (role {role})"
    assert trained == "AstroLLaMA-3-8B-Base_AIC"


def test_report_json_records_the_pairing_and_redraws_similarity(tmp_path):
    """build_report: each row's published model and basis in report.json, the stage keys on the
    figure, and similarity.png redrawn from the kept pair similarities."""
    rng = np.random.default_rng(1)
    dirs = []
    for i, (stage, role) in enumerate((("base", "base"), ("CPT", "trained"), ("SFT", "trained"))):
        d = tmp_path / stage
        (d / "mcq").mkdir(parents=True)
        correct = rng.random(20) < 0.3 + 0.1 * i
        preds = [
            {"id": str(j), "prediction": "A", "correct": "A" if c else "B", "is_correct": bool(c)}
            for j, c in enumerate(correct)
        ]
        (d / "mcq" / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
        acc = float(correct.mean())
        (d / "mcq" / "scores.json").write_text(
            json.dumps(
                {
                    "accuracy": acc,
                    "ci95": [acc - 0.1, acc + 0.1],
                    "n": 20,
                    "settings": {"letter_token": {"rule": "prompt"}},
                }
            )
        )
        recipe = DEMO_RECIPE if stage != "SFT" else None
        (d / "meta.json").write_text(
            json.dumps(
                {
                    "label": f"toy {stage}",
                    "model": str(d),
                    "role": role,
                    "recipe": recipe,
                    "scale": "toy",
                    "stage": stage,
                }
            )
        )
        dirs.append(d)
    emb = tmp_path / "emb"
    emb.mkdir()
    sims = {f"toy {s}": rng.normal(0.8, 0.02, 15) for s in ("base", "CPT", "SFT")}
    with open(emb / "similarity_pairs.npz", "wb") as fh:
        np.savez(fh, **{f"m{i}": s for i, s in enumerate(sims.values())})
    stats = {
        k: {"n_pairs": 15, "mean": float(v.mean()), "std": float(v.std()), "p5": 0, "p50": 0, "p95": 0}
        for k, v in sims.items()
    }
    (emb / "similarity.json").write_text(
        json.dumps(
            {
                "n_documents": 6,
                "models": stats,
                "plot": "similarity.png",
                "pairs": {"file": "similarity_pairs.npz", "labels": list(sims)},
            }
        )
    )
    out = report.build_report(dirs, tmp_path / "rep", embed_dir=emb)
    data = json.loads((out / "report.json").read_text())
    pairing = {m["stage"]: (m["published_model"], m["published_basis"]) for m in data["models"]}
    assert pairing["base"][0] == "LLaMA-3-8B" and pairing["CPT"][0] == "AstroLLaMA-3-8B-Base_AIC"
    assert DEMO_RECIPE in pairing["CPT"][1] and pairing["SFT"] == (None, None)
    assert (out / "similarity.png").stat().st_size > 20_000 and not (emb / "similarity.png").exists()
    md = (out / "report.md").read_text()
    assert "letter token `prompt`" in md
