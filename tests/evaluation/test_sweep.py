"""Checkpoint sweeps over a fake run directory holding real tiny-model checkpoints."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoTokenizer

from astrollama.evaluation.common import EvalInputError, load_causal_lm
from astrollama.evaluation.perplexity import perplexity
from astrollama.evaluation.settings import ScoringSettings
from astrollama.evaluation.sweep import discover_points, sweep
from astrollama.lmflow_data import write_text_only
from astrollama.models import tiny_llama

HELDOUT = [
    "The galaxy rotation curve stays flat at large radii, which implies dark matter halos.",
    "Neutron stars form in core-collapse supernovae and can be observed as pulsars.",
    "The cosmic microwave background has a blackbody spectrum.",
]


def _checkpoint(dest, step: int, seed: int):
    d = tiny_llama(dest / f"checkpoint-{step}", seed=seed)
    (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return d


@pytest.fixture
def run(tmp_path, tiny_model, repo_root):
    ck = tmp_path / "run" / "checkpoints"
    _checkpoint(ck, 10, seed=1)
    _checkpoint(ck, 20, seed=2)
    # a checkpoint the Trainer is still writing: trainer_state.json not yet for this step
    partial = _checkpoint(ck, 30, seed=3)
    (partial / "trainer_state.json").write_text(json.dumps({"global_step": 20}))
    write_text_only(tmp_path / "heldout" / "h.json", HELDOUT)
    return {
        "run": tmp_path / "run",
        "heldout": tmp_path / "heldout",
        "base": tiny_model,
        "questions": repo_root / "eval" / "data" / "astro_mcq_sample.jsonl",
        "partial": partial,
    }


def _settings(run, **kw):
    return ScoringSettings(base=run["base"], questions=run["questions"], heldout=run["heldout"], **kw)


def _rows(out):
    with open(out / "curves.csv") as fh:
        return list(csv.DictReader(fh))


def test_sweep_curves_and_resume(run, caplog):
    out = run["run"] / "eval" / "sweep"
    rep = sweep(run["run"], _settings(run, block_size=16))
    assert rep["out"] == str(out)
    rows = _rows(out)
    assert [(r["label"], int(r["step"])) for r in rows] == [
        ("base", 0),
        ("checkpoint-10", 10),
        ("checkpoint-20", 20),
    ]
    n_questions = len(run["questions"].read_text().splitlines())
    for r in rows:
        assert int(r["mcq_n"]) == n_questions
        assert float(r["mcq_ci_low"]) <= float(r["mcq_accuracy"]) <= float(r["mcq_ci_high"])
        assert float(r["ppl_ci_low"]) <= float(r["perplexity"]) <= float(r["ppl_ci_high"])
    # the perplexity column is the checkpoint's real perplexity with the same semantics
    ck10 = run["run"] / "checkpoints" / "checkpoint-10"
    ref = perplexity(
        AutoModelForCausalLM.from_pretrained(ck10),
        AutoTokenizer.from_pretrained(ck10),
        HELDOUT,
        block_size=16,
    )
    assert float(rows[1]["perplexity"]) == pytest.approx(ref.perplexity, rel=1e-6)
    assert len({r["perplexity"] for r in rows}) == 3  # three different models
    with Image.open(out / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] >= 800
    assert (out / "points" / "checkpoint-10" / "mcq" / "predictions.jsonl").is_file()

    # rerun: nothing rescored
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("points/*/point.json")}
    with caplog.at_level(logging.INFO, logger="astrollama.evaluation.sweep"):
        sweep(run["run"], _settings(run, block_size=16))
    assert {p: p.stat().st_mtime_ns for p in out.glob("points/*/point.json")} == stamps
    assert caplog.text.count("already scored, skipping") == 3

    # the checkpoint finishes writing: only it is scored
    (run["partial"] / "trainer_state.json").write_text(json.dumps({"global_step": 30}))
    sweep(run["run"], _settings(run, block_size=16))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert [r["label"] for r in _rows(out)] == ["base", "checkpoint-10", "checkpoint-20", "checkpoint-30"]

    # other settings -> rescored, not silently reused
    sweep(run["run"], _settings(run, block_size=8))
    assert all(p.stat().st_mtime_ns != t for p, t in stamps.items())


def test_discover_points_layouts(tmp_path, tiny_model):
    # checkpoints directly in the run dir, and a half-written checkpoint
    run = tmp_path / "r"
    _checkpoint(run, 5, seed=1)
    empty = run / "checkpoint-7"
    empty.mkdir()
    (empty / "config.json").write_text("{}")  # no weights yet
    pts = discover_points(run, base=tiny_model)
    assert [(p.label, p.step) for p in pts] == [("base", 0), ("checkpoint-5", 5)]
    # the training engine's layout: <run>/checkpoints, final model + trainer_state.json in it
    run2 = tmp_path / "r2"
    _checkpoint(run2 / "checkpoints", 5, seed=1)
    for f in tiny_model.iterdir():
        shutil.copy(f, run2 / "checkpoints" / f.name)
    (run2 / "checkpoints" / "trainer_state.json").write_text(json.dumps({"global_step": 8}))
    pts = discover_points(run2)
    assert [(p.label, p.step) for p in pts] == [("checkpoint-5", 5), ("final", 8)]
    with pytest.raises(EvalInputError, match="does not exist"):
        discover_points(tmp_path / "nope")


def test_lora_adapter_checkpoint_is_merged(tmp_path, tiny_model):
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    ck = tmp_path / "run" / "checkpoints" / "checkpoint-3"
    peft_model.save_pretrained(ck)
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    tok = AutoTokenizer.from_pretrained(tiny_model)
    expected = perplexity(peft_model.eval(), tok, HELDOUT, block_size=16)
    merged, tok2 = load_causal_lm(ck, base=tiny_model)
    got = perplexity(merged, tok2, HELDOUT, block_size=16)
    assert got.perplexity == pytest.approx(expected.perplexity, rel=1e-5)
    plain = perplexity(AutoModelForCausalLM.from_pretrained(tiny_model), tok, HELDOUT, block_size=16)
    assert got.perplexity != pytest.approx(plain.perplexity, rel=1e-5)  # the adapter really applied
    cfg = json.loads((ck / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "meta-llama/Not-Here"
    (ck / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(EvalInputError, match="adapter_config.json: base_model_name_or_path"):
        load_causal_lm(ck)
    assert [(p.label, p.step) for p in discover_points(tmp_path / "run")] == [("checkpoint-3", 3)]


def test_cli_sweep(run, tmp_path, capsys):
    from astrollama.cli import main  # the one entry point: bad input -> one line, exit 2

    out = tmp_path / "sw"
    argv = [
        "sweep",
        "--run-dir",
        str(run["run"]),
        "--questions",
        str(run["questions"]),
        "--heldout",
        str(run["heldout"]),
        "--block-size",
        "16",
        "--out",
        str(out),
    ]
    assert main(["eval", *argv]) == 0
    assert [r["label"] for r in _rows(out)] == ["checkpoint-10", "checkpoint-20"]
    assert "curves.png" in capsys.readouterr().out
    assert (
        main(["eval", *argv[:-2], "--heldout", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    )
    assert "missing: no such file or directory" in capsys.readouterr().err
    assert main(["eval", *argv, "--base", str(tmp_path / "no-base")]) == 2
    assert "no-base: base model directory does not exist" in capsys.readouterr().err
