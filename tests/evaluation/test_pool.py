"""Several models evaluated side by side (astrollama.evaluation.pool): the same results as one by one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from astrollama.evaluation.common import EvalInputError
from astrollama.evaluation.pool import ModelJob, default_workers, evaluate_models
from astrollama.evaluation.settings import ScoringSettings
from astrollama.lmflow_data import write_text_only
from astrollama.models import tiny_llama

HELDOUT = [
    "Cepheid variables pulsate with a period that grows with their luminosity.",
    "The cosmic microwave background is nearly isotropic black-body radiation.",
    "Accretion discs around black holes heat up and radiate in X-rays.",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model, repo_root):
    tmp = tmp_path_factory.mktemp("pool")
    other = tiny_llama(tmp / "other", seed=3)
    write_text_only(tmp / "heldout" / "h.json", HELDOUT)
    jobs = [
        ModelJob("base", tiny_model, "tiny", "base", recipe="astrollama-3-8b-base_summary", stage="base"),
        ModelJob("cpt", other, "tiny + CPT", "trained", recipe="astrollama-3-8b-base_summary", stage="CPT"),
    ]
    settings = ScoringSettings(
        questions=repo_root / "eval" / "data" / "astro_mcq_sample.jsonl",
        scale="toy",
        heldout=tmp / "heldout",
        block_size=16,
        max_new_tokens=4,
    )
    return tmp, jobs, settings


def _outputs(d):
    mcq = [json.loads(line)["prediction"] for line in (d / "mcq" / "predictions.jsonl").open()]
    return (
        json.loads((d / "ppl.json").read_text())["perplexity"],
        mcq,
        json.loads((d / "completion.json").read_text())["completion"],
        json.loads((d / "meta.json").read_text())["stage"],
    )


def test_side_by_side_equals_one_by_one(setup):
    tmp, jobs, settings = setup
    finished = []
    one = evaluate_models(jobs, settings, tmp / "one", workers=1)
    two = evaluate_models(
        jobs, settings, tmp / "two", workers=2, on_done=lambda r: finished.append(r.job.key)
    )
    assert [r.job.key for r in two] == ["base", "cpt"] and sorted(finished) == ["base", "cpt"]
    for a, b in zip(one, two, strict=True):
        assert a.results.parent == tmp / "one" and b.results.parent == tmp / "two"
        pa, ma, ca, sa = _outputs(a.results)
        pb, mb, cb, sb = _outputs(b.results)
        assert pa == pytest.approx(pb, rel=1e-5) and ma == mb and ca == cb and sa == sb
        assert a.embeddings.shape == (len(HELDOUT), 64) and a.bos_excluded
        np.testing.assert_allclose(a.embeddings, b.embeddings, rtol=1e-4, atol=1e-5)
        assert b.seconds > 0
    # the two models differ: the pool did not evaluate one model twice
    assert _outputs(two[0].results)[0] != _outputs(two[1].results)[0]


def test_a_failing_model_fails_the_run(setup):
    tmp, jobs, settings = setup
    bad = ModelJob("bad", tmp / "missing-model", "missing", "trained")
    with pytest.raises(EvalInputError, match="missing-model: model directory does not exist"):
        evaluate_models([jobs[0], bad], settings, tmp / "bad", workers=2)
    with pytest.raises(ValueError, match="unique"):
        evaluate_models([jobs[0], jobs[0]], settings, tmp / "dup", workers=1)


def test_default_workers():
    assert default_workers(1) == 1
    assert 1 <= default_workers(4) <= 4


# ------------------------------------------------------------------ astrollama eval models


def _tree(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_eval_models_writes_what_eval_model_and_eval_embed_write(setup, capsys):
    """One `eval models` command = `eval model` per model + `eval embed` over them, with the same
    config: the same files, the same numbers (letter rule, sizes and seed read from the config)."""
    from astrollama.cli import main

    tmp, jobs, settings = setup
    cfg = tmp / "eval.yaml"
    cfg.write_text(
        f"model:\n  questions: {settings.questions}\n  heldout: {settings.heldout}\n"
        "  letter_token: reference\n  scale: toy\n  block_size: 16\n  max_docs: 3\n  batch_size: 2\n"
        "  seed: 3\n  max_new_tokens: 4\n"
        f"embed:\n  data: {settings.heldout}\n  max_docs: 3\n  max_length: 12\n  batch_size: 2\n"
    )
    recipe = "astrollama-3-8b-base_summary"
    per = [
        ["--model", str(jobs[0].path), "--label", "tiny", "--role", "base", "--stage", "base"],
        ["--model", str(jobs[1].path), "--label", "tiny + CPT", "--role", "trained", "--stage", "CPT"],
    ]
    per[0] += ["--recipe", recipe]
    one = tmp / "cli-one"
    for args, key in zip(per, ("base", "cpt"), strict=True):
        assert main(["eval", "model", "--config", str(cfg), *args, "--out", str(one / key)]) == 0
    embed = ["eval", "embed", "--config", str(cfg), "--out", str(one / "emb")]
    for args in per:
        embed += [*args[:4]]
    assert main(embed) == 0
    pooled = tmp / "cli-pool"
    argv = ["eval", "models", "--config", str(cfg), "--embed-out", str(pooled / "emb"), "--workers", "2"]
    for args, key in zip(per, ("base", "cpt"), strict=True):
        argv += [*args, "--out", str(pooled / key)]
    assert main(argv) == 0
    assert "[eval model] tiny + CPT" in capsys.readouterr().out
    for key in ("base", "cpt", "emb"):
        assert _tree(one / key) == _tree(pooled / key), key
    for key in ("base", "cpt"):
        a, b = one / key, pooled / key
        assert (a / "mcq" / "predictions.jsonl").read_text() == (b / "mcq" / "predictions.jsonl").read_text()
        sa, sb = (json.loads((d / "mcq" / "scores.json").read_text()) for d in (a, b))
        assert sa["settings"] == sb["settings"] and sa["accuracy"] == sb["accuracy"]
        assert sa["settings"]["letter_token"]["rule"] == "reference"  # the config, not the default
        pa, pb = (json.loads((d / "ppl.json").read_text()) for d in (a, b))
        assert pa["settings"] == pb["settings"] and pa["perplexity"] == pytest.approx(
            pb["perplexity"], rel=1e-5
        )
        ca, cb = (json.loads((d / "completion.json").read_text()) for d in (a, b))
        assert ca["completion"] == cb["completion"] and ca.get("seed") == cb.get("seed")
        ma, mb = (json.loads((d / "meta.json").read_text()) for d in (a, b))
        ma.pop("seconds"), mb.pop("seconds")
        assert ma == mb
    ea, eb = (json.loads((d / "emb" / "similarity.json").read_text()) for d in (one, pooled))
    assert ea["settings"] == eb["settings"] and ea["n_documents"] == eb["n_documents"] == 3
    assert ea["pairs"] == eb["pairs"] and ea["settings"]["max_length"] == 12
    for label in ea["models"]:
        assert ea["models"][label]["mean"] == pytest.approx(eb["models"][label]["mean"], rel=1e-4)
    za, zb = (np.load(d / "emb" / "similarity_pairs.npz") for d in (one, pooled))
    for k in za.files:
        np.testing.assert_allclose(za[k], zb[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--label", "x", "--model", "M"], "--label: a per-model option: give it after its --model"),
        (["--model", "M", "--label", "x", "--label", "y"], "--label: given twice for --model M"),
        (["--model", "M", "--label", "x", "--role", "base", "--out", "O", "--model", "M"], "missing"),
        (["--model", "M", "--label", "x", "--role", "base", "--out", "E"], "also the --embed-out"),
        (
            ["--model", "M", "--label", "x", "--role", "base", "--out", "O", "--embed-dtype", "float16"],
            "--embed-dtype",
        ),
    ],
)
def test_eval_models_refuses_in_one_line(tmp_path, capsys, extra, message):
    from astrollama.cli import main

    argv = ["eval", "models", "--questions", "q", "--heldout", "h", "--embed-out", "E", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_eval_models_refuses_per_model_keys_in_the_config(tmp_path, capsys):
    from astrollama.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  questions: q.jsonl\n  recipe: astrollama-3-8b-base_summary\n")
    argv = ["eval", "models", "--config", str(cfg), "--model", "M", "--label", "x", "--role", "base"]
    assert main([*argv, "--out", "O", "--embed-out", "E"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{cfg}: model.recipe: per model in `eval models`: give it after its --model"), err


def test_the_slurm_entry_passes_eval_models_through(repo_root):
    """`slurm/eval.sh models ...` runs `astrollama eval models` (here locally: refused in one line)."""
    import subprocess
    import sys

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "ASTROLLAMA_VENV": str(Path(sys.prefix))}
    env["PYTHONPATH"] = str(repo_root / "src")
    p = subprocess.run(
        ["bash", str(repo_root / "slurm" / "eval.sh"), "models", "--label", "x"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2, p.stderr[-2000:]
    assert "eval models" in p.stdout and "astrollama eval: error: models: argument --label" in p.stderr
