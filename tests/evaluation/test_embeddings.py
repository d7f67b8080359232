"""Embeddings: mean last-layer hidden state without BOS; pairwise cosine distribution; histogram."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoTokenizer

from astrollama.evaluation.embeddings import (
    compare_embeddings,
    embed_texts,
    pairwise_cosine,
    similarity_stats,
)
from astrollama.lmflow_data import write_text_only

ABSTRACTS = [
    "The galaxy rotation curve stays flat at large radii, which implies dark matter halos.",
    "Type Ia supernovae are standard candles used to measure the expansion of the Universe.",
    "The cosmic microwave background has a blackbody spectrum.",
    "Exoplanets are detected by transits and by radial velocity measurements of their host stars.",
    "Neutron stars form in core-collapse supernovae and can be observed as pulsars.",
]


@pytest.fixture(scope="module")
def lm(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval(), tok


@pytest.mark.parametrize("batch_size", [1, 3])
def test_mean_last_layer_without_bos(lm, batch_size):
    model, tok = lm
    emb = embed_texts(model, tok, ABSTRACTS, batch_size=batch_size)
    assert emb.shape == (len(ABSTRACTS), model.config.hidden_size)
    for i, text in enumerate(ABSTRACTS):
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id
        with torch.no_grad():
            h = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
        np.testing.assert_allclose(emb[i], h[1:].mean(0).numpy(), rtol=1e-4, atol=1e-5)
        # including BOS would give a different vector: the exclusion is real
        assert not np.allclose(emb[i], h.mean(0).numpy(), atol=1e-5)


def test_pairwise_cosine_and_stats():
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    sims = pairwise_cosine(emb)
    np.testing.assert_allclose(sims, [0.0, np.sqrt(0.5), np.sqrt(0.5)])
    st = similarity_stats(sims)
    assert st["n_pairs"] == 3
    assert st["mean"] == pytest.approx(np.mean(sims))
    assert st["p50"] == pytest.approx(np.sqrt(0.5))
    assert st["min"] == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_cosine(emb[:1])


def test_compare_two_models_writes_stats_and_png(tiny_model, tmp_path):
    from astrollama.models import tiny_llama

    other = tiny_llama(tmp_path / "other", seed=1)  # same tokenizer, other random weights
    data = tmp_path / "heldout"
    write_text_only(data / "heldout.json", ABSTRACTS)
    rep = compare_embeddings([("base", tiny_model), ("trained", other)], data, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "similarity.json").read_text())
    assert saved == rep
    assert set(rep["models"]) == {"base", "trained"}
    n = len(ABSTRACTS)
    for m in rep["models"].values():
        assert m["n_pairs"] == n * (n - 1) // 2
        assert m["bos_excluded"] is True
        assert -1.0 <= m["min"] <= m["p5"] <= m["p50"] <= m["p95"] <= m["max"] <= 1.0
    assert rep["models"]["base"]["mean"] != rep["models"]["trained"]["mean"]
    png = tmp_path / "out" / "similarity.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 400
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic writes leave no temp files


def test_cli_embed_and_bad_data(tiny_model, tmp_path, capsys):
    from astrollama.cli import main  # the one entry point: bad input -> one line, exit 2

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a star"}\n{"txt": "no text field"}\n')
    assert (
        main(["eval", "embed", "--model", str(tiny_model), "--data", str(bad), "--out", str(tmp_path / "o")])
        == 2
    )
    assert f"{bad}:2: field 'text'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"text": t}) + "\n" for t in ABSTRACTS))
    assert (
        main(
            [
                "eval",
                "embed",
                "--model",
                str(tiny_model),
                "--model",
                str(tiny_model),
                "--data",
                str(good),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    rep = json.loads((tmp_path / "o" / "similarity.json").read_text())
    assert list(rep["models"]) == ["tiny-llama", "tiny-llama-2"]
    assert rep["models"]["tiny-llama"]["mean"] == pytest.approx(rep["models"]["tiny-llama-2"]["mean"])
