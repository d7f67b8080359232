"""Prompt templates, letter tokens per tokenizer (byte-level BPE and SentencePiece), answer parsing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from astrollama.evaluation.mcq import MCQInputError, load_questions, score_mcq
from astrollama.evaluation.mcq.prompts import PromptTemplate, encode_prompts, parse_answer

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "eval" / "data" / "astro_mcq_sample.jsonl"


def _template(tmp_path: Path, tail: str) -> PromptTemplate:
    p = tmp_path / "t.txt"
    p.write_text("Question: $question\nA: $A\nB: $B\nC: $C\nD: $D\n" + tail + "\n")
    return PromptTemplate.load(p)


# ------------------------------------------------------------------------------------------------
# templates


def test_default_token_prompt_follows_astromlab_structure():
    """Question and options first, then the instructions and the output format, then a Response:
    line that opens the JSON answer, so that the next token is the letter."""
    q = load_questions(SAMPLE).questions[0]
    tok = PromptTemplate.default("token").render(q)
    assert tok == PromptTemplate.default("token", "astromlab").render(q)
    block = f"Question: {q.question}\nOptions:\nA: {q.options['A']}\nB: {q.options['B']}\nC: {q.options['C']}\nD: {q.options['D']}\n"
    opening, rest = tok.split(block)
    assert "expert in general astrophysics" in opening and "ANSWER" not in opening and len(opening) < 250
    instruction, response = rest.split("Output format:")
    assert "correct" in instruction and "explain" in instruction  # the instruction block follows the options
    assert '"ANSWER"' in response and '"EXPLANATION"' in response
    assert response.endswith('\nResponse:\n{\n"ANSWER": "')  # final newline of the file dropped
    ins = PromptTemplate.default("instruct").render(q)
    assert ins.index(q.question) < ins.index('"ANSWER"') and not ins.endswith('"ANSWER": "')


def test_other_shipped_prompts_and_unknown_names():
    q = load_questions(SAMPLE).questions[0]
    ours = PromptTemplate.default("token", "ours").render(q)
    assert ours.index('"EXPLANATION"') < ours.index(q.question) and ours.endswith('{"ANSWER": "')
    plain = PromptTemplate.default("token", "plain").render(q)
    assert (
        plain == f"Question: {q.question}\n" + "".join(f"{L}. {q.options[L]}\n" for L in "ABCD") + "Answer: "
    )
    with pytest.raises(
        MCQInputError, match=r"prompt 'plain': method 'instruct' has the prompts \['astromlab'\]"
    ):
        PromptTemplate.default("instruct", "plain")


def test_template_errors(tmp_path):
    (tmp_path / "missing.txt").write_text("Q: $question A: $A B: $B C: $C\n")
    with pytest.raises(MCQInputError, match=r"missing\.txt: missing placeholders \['D'\]"):
        PromptTemplate.load(tmp_path / "missing.txt")
    (tmp_path / "extra.txt").write_text("$question $A $B $C $D $E\n")
    with pytest.raises(MCQInputError, match=r"unknown placeholders \['E'\]"):
        PromptTemplate.load(tmp_path / "extra.txt")
    t = _template(tmp_path, "Costs $$5")
    q = load_questions(SAMPLE).questions[0]
    assert t.render(q).endswith("Costs $5")


# ------------------------------------------------------------------------------------------------
# letter tokens: byte-level BPE (SmolLM2, the LLaMA-3 family of tokenizers)


@pytest.fixture(scope="module")
def smol_tok(smollm2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2)


def test_letters_after_quote_and_after_space_bytelevel(smol_tok, tmp_path):
    q = load_questions(SAMPLE).questions[:3]
    quote = encode_prompts(
        smol_tok, [PromptTemplate.default("token").render(x) for x in q], [x.id for x in q]
    )
    assert smol_tok.convert_ids_to_tokens(list(quote[0].letter_ids)) == ["A", "B", "C", "D"]
    spaced = _template(tmp_path, "Answer: ")  # trailing space: scored as " A", lm-eval style
    enc = encode_prompts(smol_tok, [spaced.render(x) for x in q], [x.id for x in q])
    assert smol_tok.convert_ids_to_tokens(list(enc[0].letter_ids)) == ["ĠA", "ĠB", "ĠC", "ĠD"]
    assert enc[0].ids == smol_tok(spaced.render(q[0]).rstrip()).input_ids
    assert set(quote[0].letter_ids).isdisjoint(enc[0].letter_ids)


def test_letter_that_merges_with_the_prompt_is_an_error(smol_tok, tmp_path):
    q = load_questions(SAMPLE).questions[:1]
    bad = _template(tmp_path, "The agency is NAS")  # "NAS" + "A" -> one token "ĠNASA"
    with pytest.raises(MCQInputError, match=r"after the prompt of question 'astro-001'.*not one new token"):
        encode_prompts(smol_tok, [bad.render(q[0])], [q[0].id])


# ------------------------------------------------------------------------------------------------
# letter tokens: SentencePiece (LLaMA-2 style), built offline


@pytest.fixture(scope="module")
def sp_model_dir(tmp_path_factory) -> Path:
    """A SentencePiece BPE model trained here, wrapped as a LLaMA tokenizer (BOS added), with a
    tiny random LlamaForCausalLM: the LLaMA-2 tokenizer family without the hub."""
    import sentencepiece as spm
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("sp-llama")
    text = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    sentences = [r["question"] + " " + " ".join(r[k] for k in "ABCD") for r in text]
    sentences += ['Reply: {"ANSWER": "A", "EXPLANATION": "B C D"}', "Answer: A B C D"] * 20
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buf,
        vocab_size=600,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    (d / "tokenizer.model").write_bytes(buf.getvalue())
    (d / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "add_bos_token": True,
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
            }
        )
    )
    tok = AutoTokenizer.from_pretrained(d)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_sentencepiece_letters_follow_the_prompt_not_the_word_start(sp_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(sp_model_dir)
    q = load_questions(SAMPLE).questions[:4]
    prompts = [PromptTemplate.default("token").render(x) for x in q]
    enc = encode_prompts(tok, prompts, [x.id for x in q])
    assert enc[0].ids[0] == tok.bos_token_id  # LLaMA-style BOS, as the model was trained
    assert tok.convert_ids_to_tokens(list(enc[0].letter_ids)) == ["A", "B", "C", "D"]
    # the trap: the letter encoded on its own is a word start "▁A", a different token
    naive = [tok(L, add_special_tokens=False).input_ids[-1] for L in "ABCD"]
    assert tok.convert_ids_to_tokens(naive) == ["▁A", "▁B", "▁C", "▁D"]
    assert set(naive).isdisjoint(enc[0].letter_ids)
    spaced = _template(tmp_path, "Answer: ")
    enc2 = encode_prompts(tok, [spaced.render(x) for x in q], [x.id for x in q])
    assert tok.convert_ids_to_tokens(list(enc2[0].letter_ids)) == ["▁A", "▁B", "▁C", "▁D"]


def test_sentencepiece_model_matches_lm_eval(sp_model_dir, tmp_path):
    """End to end on the SentencePiece model: our token method vs lm-eval, question by question."""
    from astrollama.evaluation.mcq.lmeval import run_lm_eval

    qs = load_questions(SAMPLE).head(12)
    ours = score_mcq(sp_model_dir, qs, batch_size=5, progress=False)
    theirs = run_lm_eval(sp_model_dir, qs, tmp_path / "lmeval", batch_size=5)
    assert ours.letters == theirs.predictions
    for p, ll in zip(ours.predictions, theirs.loglikelihoods, strict=True):
        assert list(p["logprobs"].values()) == pytest.approx(ll, abs=1e-4)
    assert ours.settings["letter_token_ids"][0]["A"]["token"] == "A"


# ------------------------------------------------------------------------------------------------
# answer parsing (instruct method)


@pytest.mark.parametrize(
    ("text", "letter", "how"),
    [
        ('{"ANSWER": "C", "EXPLANATION": "because"}', "C", "json"),
        ('Sure!\n```json\n{\n  "answer": "b",\n  "EXPLANATION": "x"\n}\n```', "B", "json"),
        ('{"ANSWER": "D) Radioactive decay", "EXPLANATION": "x"}', "D", "json"),
        ('{"ANSWER": "A", "EXPLANATION": "truncated because max_new_tok', "A", "key"),
        ("ANSWER: (B)\nEXPLANATION: ...", "B", "key"),
        ("I think the correct answer is C, since the core...", "C", "phrase"),
        ("The answer is option D.", "D", "phrase"),
        ("B", "B", "letter"),
        ("(A)\nBecause hydrogen fuses.", "A", "letter"),
        ("The answer is a star that fuses hydrogen.", None, "unparsed"),
        ("I do not know.", None, "unparsed"),
        ("", None, "unparsed"),
    ],
)
def test_parse_answer(text, letter, how):
    assert parse_answer(text) == (letter, how)
