"""Prompt templates, letter tokens per tokenizer (byte-level BPE and SentencePiece), answer parsing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from astrollama.benchmark import MCQInputError, load_questions
from astrollama.evaluation.mcq import score_mcq
from astrollama.evaluation.mcq.prompts import PromptTemplate, encode_prompts, parse_answer
from astrollama.evaluation.settings import ScoringSettings

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
    ours = score_mcq(sp_model_dir, qs, ScoringSettings(batch_size=5), progress=False)
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


# ------------------------------------------------------------------------------------------------
# the letter-token rule: prompt (the letter as it follows the prompt) vs reference (encoded alone)


def test_reference_rule_scores_the_word_start_piece_on_sentencepiece(sp_model_dir, tmp_path):
    """On a LLaMA-2-style SentencePiece tokenizer the two rules pick different ids (A vs ▁A); both
    score, each read at the last prompt position, and scores.json says which rule was used."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(sp_model_dir)
    model = AutoModelForCausalLM.from_pretrained(sp_model_dir).eval()
    qs = load_questions(SAMPLE).head(6)
    res = {
        rule: score_mcq(
            model, qs, ScoringSettings(batch_size=4, letter_token=rule), tokenizer=tok, progress=False
        )
        for rule in ("prompt", "reference")
    }
    ids = {rule: [res[rule].settings["letter_token_ids"][0][L]["id"] for L in "ABCD"] for rule in res}
    assert tok.convert_ids_to_tokens(ids["prompt"]) == ["A", "B", "C", "D"]
    assert tok.convert_ids_to_tokens(ids["reference"]) == ["▁A", "▁B", "▁C", "▁D"]
    assert ids["reference"] == [tok.encode(L, add_special_tokens=False)[-1] for L in "ABCD"]
    assert set(ids["prompt"]).isdisjoint(ids["reference"])
    # the reference rule reads the letters at the end of the prompt as tokenised (BOS first)
    prompt = PromptTemplate.default("token").render(qs.questions[0])
    full = tok(prompt).input_ids
    assert full[0] == tok.bos_token_id
    with torch.inference_mode():
        lp = torch.log_softmax(model(torch.tensor([full])).logits[0, -1].float(), -1)
    for rule in res:
        p0 = res[rule].predictions[0]
        assert list(p0["logprobs"].values()) == pytest.approx([lp[i].item() for i in ids[rule]], abs=1e-4)
        assert len(res[rule].letters) == len(qs) and set(res[rule].letters) <= set("ABCD")
    assert res["prompt"].predictions[0]["logprobs"] != res["reference"].predictions[0]["logprobs"]
    for rule in res:
        scores = json.loads(res[rule].write(tmp_path / rule)["scores"].read_text())
        assert scores["letter_token"] == rule and scores["settings"]["letter_token"]["rule"] == rule
    with pytest.raises(MCQInputError, match=r"letter_token 'first': use one of \('prompt', 'reference'\)"):
        score_mcq(model, qs, ScoringSettings(letter_token="first"), tokenizer=tok, progress=False)


def test_reference_rule_on_byte_level_bpe_smollm2(smol_tok, tmp_path):
    """SmolLM2 (byte-level BPE): after the default prompt's quote both rules give the same ids
    ("A"); after "Answer: " the prompt rule reads "ĠA" and the reference rule "A" after the
    prompt's own trailing space token "Ġ"."""
    q = load_questions(SAMPLE).questions[:3]
    default = [PromptTemplate.default("token").render(x) for x in q]
    spaced = [PromptTemplate.default("token", "plain").render(x) for x in q]
    enc = {
        (name, rule): encode_prompts(smol_tok, prompts, [x.id for x in q], letter_token=rule)
        for name, prompts in (("default", default), ("plain", spaced))
        for rule in ("prompt", "reference")
    }
    tokens = {k: smol_tok.convert_ids_to_tokens(list(v[0].letter_ids)) for k, v in enc.items()}
    assert tokens[("default", "prompt")] == tokens[("default", "reference")] == ["A", "B", "C", "D"]
    assert enc[("default", "prompt")][0].ids == enc[("default", "reference")][0].ids
    assert tokens[("plain", "prompt")] == ["ĠA", "ĠB", "ĠC", "ĠD"]
    assert tokens[("plain", "reference")] == ["A", "B", "C", "D"]
    assert smol_tok.convert_ids_to_tokens(enc[("plain", "reference")][0].ids[-1:]) == ["Ġ"]
    assert enc[("plain", "reference")][0].ids == smol_tok(spaced[0]).input_ids


# ------------------------------------------------------------------------------------------------
# the instruct prompt: JSON only; the chat template's default system turn, recorded


def test_instruct_prompt_asks_for_json_only():
    q = load_questions(SAMPLE).questions[0]
    text = PromptTemplate.default("instruct").render(q)
    fmt = text.index("Output format")
    last = text.splitlines()[-1]
    assert text.index(q.options["D"]) < fmt < text.index(last)
    assert "valid JSON only" in last and "no text before it" in last


def test_chat_template_default_system_turn_is_found(smol_tok, sp_model_dir):
    from transformers import AutoTokenizer

    from astrollama.evaluation.mcq.score import chat_template_turns

    smol = chat_template_turns(smol_tok)  # ChatML with a default system turn
    assert smol["default_system"] == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert smol["before_question"].startswith("<|im_start|>system\n" + smol["default_system"])
    assert smol["after_question"] == "<|im_end|>\n<|im_start|>assistant\n"
    tok = AutoTokenizer.from_pretrained(sp_model_dir)
    tok.chat_template = (  # LLaMA-2 style: a system turn only when one is given
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>{{ m['content'] }}"
        "<</SYS>>{% elif m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]{% endif %}{% endfor %}"
    )
    none = chat_template_turns(tok)
    assert none["default_system"] is None and none["before_question"] == "<s>[INST] "
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}"
        "{% endif %}<u>{{ m['content'] }}</u>{% endfor %}<a>"
    )
    refused = chat_template_turns(tok)
    assert refused["default_system"] == "unknown" and "refuses a system turn" in refused["system_note"]
    assert (refused["before_question"], refused["after_question"]) == ("<u>", "</u><a>")
