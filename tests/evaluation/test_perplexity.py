"""Perplexity semantics on a real (tiny) LLaMA with a real BPE tokenizer that adds BOS."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from astrollama.evaluation.perplexity import _windows, perplexity

DOCS = [
    "The galaxy rotation curve stays flat at large radii, which implies dark matter halos around "
    "spiral galaxies. Type Ia supernovae are standard candles.",
    "Exoplanets are detected by transits.",
    "Neutron stars form in core-collapse supernovae and can be observed as pulsars. The cosmic "
    "microwave background has a blackbody spectrum with a temperature of 2.725 K. Exoplanets are "
    "detected by radial velocity measurements of their host stars.",
]


@pytest.fixture(scope="module")
def lm(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    return model, tok


def hand_loop(model, tok, texts, block_size, stride):
    """Reference: one unbatched forward per window; each token scored in the first window that
    holds it with context, never twice; returns (total nll, scored positions per doc)."""
    total, scored_all = 0.0, []
    for text in texts:
        ids = tok(text)["input_ids"]
        scored: set[int] = set()
        begin = 0
        while True:
            end = min(begin + block_size, len(ids))
            window = torch.tensor([ids[begin:end]])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=window).logits[0].float(), -1)
            for t in range(begin + 1, end):
                if t not in scored:
                    total -= float(logp[t - begin - 1, ids[t]])
                    scored.add(t)
            if end == len(ids):
                break
            begin += stride
        scored_all.append(scored)
    return total, scored_all


@pytest.mark.parametrize(("block_size", "stride"), [(8, 8), (8, 3), (16, 5), (256, 256)])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_windowed_equals_hand_loop(lm, block_size, stride, batch_size):
    model, tok = lm
    res = perplexity(model, tok, DOCS, block_size=block_size, stride=stride, batch_size=batch_size)
    total, scored = hand_loop(model, tok, DOCS, block_size, stride)
    n = sum(len(s) for s in scored)
    assert res.n_tokens == n
    assert res.n_documents == len(DOCS)
    assert res.nll == pytest.approx(total / n, rel=1e-5)
    assert res.perplexity == pytest.approx(math.exp(total / n), rel=1e-5)


def test_stride_equal_block_gives_disjoint_blocks(lm):
    model, tok = lm
    assert _windows(10, 4, 4) == [(0, 4, 3), (4, 8, 4), (8, 10, 2)]
    lengths = [len(tok(d)["input_ids"]) for d in DOCS]
    res = perplexity(model, tok, DOCS, block_size=8, stride=8)
    # the first token of every block is context only, as in training on packed blocks
    assert res.n_tokens == sum(n - math.ceil(n / 8) for n in lengths)
    _, scored = hand_loop(model, tok, DOCS, 8, 8)
    for n, s in zip(lengths, scored, strict=True):
        assert s == {t for t in range(1, n) if t % 8}


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 33, 100])
@pytest.mark.parametrize(("block_size", "stride"), [(8, 1), (8, 3), (8, 7), (16, 5), (4, 2)])
def test_smaller_stride_scores_each_token_once_never_bos(n, block_size, stride):
    seen: list[int] = []
    for begin, end, n_new in _windows(n, block_size, stride):
        assert end - begin <= block_size
        targets = range(end - n_new, end)
        assert targets.start - begin >= min(block_size - stride, targets.start)  # context kept
        assert targets.start > begin  # every target has context inside its window
        seen.extend(targets)
    assert seen == list(range(1, n))  # each token once, in order; position 0 (BOS) never


def test_never_scores_bos(lm):
    model, tok = lm
    ids = tok(DOCS[1])["input_ids"]
    assert ids[0] == tok.bos_token_id  # the tokenizer adds BOS like LLaMA
    res = perplexity(model, tok, [DOCS[1]], block_size=64, stride=4)
    assert res.n_tokens == len(ids) - 1


def test_equals_exp_of_hf_loss_on_short_doc(lm):
    model, tok = lm
    ids = torch.tensor([tok(DOCS[0])["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    res = perplexity(model, tok, [DOCS[0]], block_size=512)
    assert res.perplexity == pytest.approx(math.exp(float(loss)), rel=1e-5)
    assert res.n_tokens == ids.shape[1] - 1


def test_more_context_lowers_perplexity_on_a_real_model(smollm2):
    tok = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    text = " ".join(DOCS)
    disjoint = perplexity(model, tok, [text], block_size=16, stride=16)
    sliding = perplexity(model, tok, [text], block_size=16, stride=4)
    assert sliding.perplexity < disjoint.perplexity


def test_bad_arguments(lm):
    model, tok = lm
    with pytest.raises(ValueError, match="stride"):
        perplexity(model, tok, DOCS, block_size=8, stride=9)
    with pytest.raises(ValueError, match="stride"):
        perplexity(model, tok, DOCS, block_size=8, stride=0)
    with pytest.raises(ValueError, match="no documents"):
        perplexity(model, tok, [], block_size=8)
    with pytest.raises(ValueError, match="block_size must be >= 2"):
        perplexity(model, tok, DOCS, block_size=1, stride=1)
    with pytest.raises(ValueError, match="no token to predict"):
        perplexity(model, tok, [""], block_size=8)  # BOS only


def test_per_document_sums_and_interval(lm):
    model, tok = lm
    res = perplexity(model, tok, DOCS, block_size=8, stride=3, batch_size=2)
    assert sum(res.doc_tokens) == res.n_tokens
    for d, text in enumerate(DOCS):
        single = perplexity(model, tok, [text], block_size=8, stride=3)
        assert res.doc_tokens[d] == single.n_tokens
        assert res.doc_nll[d] == pytest.approx(single.nll * single.n_tokens, rel=1e-5)
    lo, hi = res.bootstrap_ci()
    assert lo <= res.perplexity <= hi and lo < hi
    assert "doc_nll" not in res.to_dict()


def test_cli_ppl_writes_json_with_settings(tiny_model, tmp_path, capsys):
    from astrollama.cli import main  # the one entry point: bad input -> one line, exit 2
    from astrollama.lmflow_data import write_text_only

    data = tmp_path / "heldout"
    write_text_only(data / "part-0.json", DOCS)
    out = tmp_path / "ppl.json"
    assert (
        main(
            [
                "eval",
                "ppl",
                "--model",
                str(tiny_model),
                "--data",
                str(data),
                "--block-size",
                "8",
                "--stride",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rep = json.loads(out.read_text())
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    ref = perplexity(model, AutoTokenizer.from_pretrained(tiny_model), DOCS, block_size=8, stride=4)
    assert rep["perplexity"] == pytest.approx(ref.perplexity, rel=1e-6)
    assert rep["settings"]["block_size"] == 8 and rep["settings"]["stride"] == 4
    assert rep["settings"]["adds_bos"] is True and rep["settings"]["eos_appended"] is False
    assert rep["n_tokens"] == ref.n_tokens and rep["versions"]["torch"] == torch.__version__
    # bad input: one line naming the file and row, non-zero exit, no output written
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    assert (
        main(
            ["eval", "ppl", "--model", str(tiny_model), "--data", str(bad), "--out", str(tmp_path / "x.json")]
        )
        == 2
    )
    assert f"{bad}: line 2: invalid JSON" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "ppl",
                "--model",
                str(tiny_model),
                "--data",
                str(data),
                "--block-size",
                "8",
                "--stride",
                "9",
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "x.json").exists()
