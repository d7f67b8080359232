"""Acceptance: on the bundled sample, SmolLM2-135M token-method predictions equal lm-eval's, question
by question (lm-eval 0.4.13 running the shipped task in-process, CPU, float32)."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrollama.evaluation.mcq import load_questions, score_mcq
from astrollama.evaluation.mcq_lmeval import run_lm_eval
from astrollama.evaluation.mcq_prompts import PromptTemplate

SAMPLE = Path(__file__).resolve().parents[2] / "eval" / "data" / "astro_mcq_sample.jsonl"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(smollm2)


def test_token_method_equals_lm_eval_question_by_question(smol, tmp_path):
    model, tok = smol
    qs = load_questions(SAMPLE)
    ours = score_mcq(model, qs, tokenizer=tok, batch_size=8, progress=False)
    theirs = run_lm_eval(model, qs, tmp_path, tokenizer=tok, batch_size=8)

    tpl = PromptTemplate.default("token")
    assert theirs.contexts == [tpl.render(q) for q in qs]  # the same prompt, character for character
    assert ours.settings["letter_token_ids"] == [
        {L: {"id": tok.convert_tokens_to_ids(L), "token": L} for L in "ABCD"}
    ]  # byte-level BPE: "A" after the quote, not "ĠA"
    for p, ll in zip(ours.predictions, theirs.loglikelihoods, strict=True):
        assert list(p["logprobs"].values()) == pytest.approx(ll, abs=2e-3), p["id"]
    assert ours.letters == theirs.predictions
    assert ours.accuracy == pytest.approx(theirs.accuracy)
    assert len(set(ours.letters)) >= 2  # a real model's answers, not one constant letter


def test_instruct_method_parses_smollm2_replies(smol):
    model, tok = smol
    qs = load_questions(SAMPLE).head(4)
    r = score_mcq(model, qs, tokenizer=tok, method="instruct", max_new_tokens=24, batch_size=4, progress=False)
    assert all(p["response"].strip() for p in r.predictions)
    for p in r.predictions:
        assert (p["prediction"] is None) == (p["parsed_by"] == "unparsed")
    assert r.n_unparsed < len(qs)  # the chat model follows the JSON format at least sometimes
