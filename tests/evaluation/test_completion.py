"""Seeded completions: deterministic on CPU, seed-sensitive, saved with settings."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from astrollama.evaluation.completion import bundled_prompt_file, read_prompt, sample_completion


@pytest.fixture(scope="module")
def lm(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval(), tok


def test_same_seed_same_text_other_seed_other_text(lm):
    model, tok = lm
    prompt = "The cosmic microwave background"
    a = sample_completion(model, tok, prompt, seed=1, max_new_tokens=24, temperature=1.0)
    torch.manual_seed(123)  # the global RNG must not matter
    b = sample_completion(model, tok, prompt, seed=1, max_new_tokens=24, temperature=1.0)
    c = sample_completion(model, tok, prompt, seed=2, max_new_tokens=24, temperature=1.0)
    assert a == b
    assert a != c
    assert len(tok(a, add_special_tokens=False)["input_ids"]) > 5


def test_greedy_matches_transformers_generate(lm):
    model, tok = lm
    prompt = "Neutron stars form in"
    ids = tok(prompt, return_tensors="pt").input_ids
    ref = model.generate(
        ids, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id
    )
    expected = tok.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
    assert sample_completion(model, tok, prompt, temperature=0, max_new_tokens=12) == expected


def test_bundled_prompt_and_cli(tiny_model, tmp_path):
    from astrollama.cli import main  # the one entry point: bad input -> one line, exit 2

    prompt = read_prompt(bundled_prompt_file())
    assert prompt and not prompt.endswith("\n")
    out = tmp_path / "c.json"
    assert (
        main(
            [
                "eval",
                "complete",
                "--model",
                str(tiny_model),
                "--seed",
                "3",
                "--max-new-tokens",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rep = json.loads(out.read_text())
    assert rep["prompt"] == prompt
    assert rep["settings"]["seed"] == 3 and rep["settings"]["prompt_file"].endswith("completion.txt")
    assert (
        main(
            [
                "eval",
                "complete",
                "--model",
                str(tiny_model),
                "--seed",
                "3",
                "--max-new-tokens",
                "8",
                "--out",
                str(tmp_path / "d.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "d.json").read_text())["completion"] == rep["completion"]
    assert (
        main(
            [
                "eval",
                "complete",
                "--model",
                str(tiny_model),
                "--top-p",
                "0",
                "--out",
                str(tmp_path / "e.json"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "e.json").exists()
