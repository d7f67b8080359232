"""Several models evaluated side by side (astrollama.evaluation.pool): the same results as one by one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrollama.evaluation.common import EvalInputError
from astrollama.evaluation.pool import ModelJob, Settings, default_workers, evaluate_models
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
    settings = Settings(
        questions=repo_root / "eval" / "data" / "astro_mcq_sample.jsonl",
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
