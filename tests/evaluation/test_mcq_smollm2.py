"""Acceptance: on the bundled sample, SmolLM2-135M token-method predictions equal lm-eval's, question
by question (lm-eval 0.4.13 running the shipped task in-process, CPU, float32)."""

from __future__ import annotations

from pathlib import Path

import pytest

from astrollama.benchmark import load_questions
from astrollama.evaluation.mcq import score_mcq
from astrollama.evaluation.mcq.lmeval import run_lm_eval
from astrollama.evaluation.mcq.prompts import PromptTemplate
from astrollama.evaluation.settings import ScoringSettings

SAMPLE = Path(__file__).resolve().parents[2] / "eval" / "data" / "astro_mcq_sample.jsonl"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(
        smollm2, dtype=torch.float32
    ).eval(), AutoTokenizer.from_pretrained(smollm2)


def test_token_method_equals_lm_eval_question_by_question(smol, tmp_path):
    model, tok = smol
    qs = load_questions(SAMPLE)
    ours = score_mcq(model, qs, ScoringSettings(batch_size=8), tokenizer=tok, progress=False)
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
    r = score_mcq(
        model,
        qs,
        ScoringSettings(method="instruct", max_new_tokens=24, batch_size=4),
        tokenizer=tok,
        progress=False,
    )
    assert all(p["response"].strip() for p in r.predictions)
    for p in r.predictions:
        assert (p["prediction"] is None) == (p["parsed_by"] == "unparsed")
    assert r.n_unparsed < len(qs)  # the chat model follows the JSON format at least sometimes


def test_instruct_prompt_is_the_smollm2_chat_turn(smol):
    """The instruct method wraps the prompt in SmolLM2-Instruct's own chat template (user turn, then
    the opened assistant turn), exactly as apply_chat_template tokenises it."""
    from astrollama.evaluation.mcq.score import chat_prompt_ids

    _, tok = smol
    text = PromptTemplate.default("instruct").render(load_questions(SAMPLE).questions[0])
    [ids] = chat_prompt_ids(tok, [text])
    assert ids == tok.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    decoded = tok.decode(ids)
    assert f"<|im_start|>user\n{text}<|im_end|>\n" in decoded and decoded.endswith("<|im_start|>assistant\n")


def test_cached_batches_equal_one_question_at_a_time_on_smollm2(smol):
    """The question-first default prompt on the real model: the shared opening computed once,
    length-sorted batches, only the last position's logits, against each whole prompt alone."""
    import torch

    from astrollama.evaluation.mcq.prompts import encode_prompts

    model, tok = smol
    qs = load_questions(SAMPLE).head(8)
    r = score_mcq(model, qs, ScoringSettings(batch_size=3), tokenizer=tok, progress=False)
    assert r.settings["prefix_cache_tokens"] >= 20
    tpl = PromptTemplate.default("token")
    with torch.inference_mode():
        for e, p in zip(
            encode_prompts(tok, [tpl.render(q) for q in qs], [q.id for q in qs]), r.predictions, strict=True
        ):
            lp = torch.log_softmax(model(input_ids=torch.tensor([e.ids])).logits[0, -1].float(), -1)
            want = [float(lp[i]) for i in e.letter_ids]
            assert list(p["logprobs"].values()) == pytest.approx(want, abs=1e-4)
            assert p["prediction"] == "ABCD"[max(range(4), key=want.__getitem__)]
