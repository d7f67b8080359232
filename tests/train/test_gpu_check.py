"""The GPU check (scripts/gpu_check.sh -> astrollama.tools.gpucheck) in CPU-smoke mode, as CI runs it.

Every section runs for real at toy size: the random LLaMA-3-shaped model, the local engine, the MCQ
scorer against lm-evaluation-harness, the transformers Nougat path; DeepSpeed and LMFlow in the
LMFlow training environment (``lmflow_python``), where they must give the local engine's losses.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from astrollama.tools.gpucheck import sections, sizes

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _run(tmp_path: Path, *args: str, timeout: int = 900) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    p = subprocess.run(
        ["bash", str(SCRIPT), "--cpu-smoke", "--out", str(out), "--work", str(tmp_path / "work"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=tmp_path,
    )
    written = json.loads((out / "gpu_check.json").read_text())
    assert json.loads(p.stdout) == written  # ONE JSON on stdout, the same as the file
    return p, written


def _llama_parameters(c: dict) -> int:
    """Parameters of a LLaMA with tied embeddings, counted by hand."""
    h, kv_dim = c["hidden"], c["kv_heads"] * c["hidden"] // c["heads"]
    layer = 2 * h * h + 2 * h * kv_dim + 3 * h * c["intermediate"] + 2 * h
    return c["vocab"] * h + c["layers"] * layer + h


def _finite_numbers(x) -> bool:
    if isinstance(x, dict):
        return all(_finite_numbers(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite_numbers(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


@pytest.mark.slow
def test_cpu_smoke_every_section(tmp_path):
    p, r = _run(tmp_path, "--peak-tflops", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    assert r["mode"] == "cpu-smoke" and r["ok"] is True and r["device"]["name"] == "cpu"
    assert r["peak_bf16_tflops"] == 1.0 and "6*N + 12*L*d*T" in r["flops_formula"]
    assert list(r["sections"]) == list(sizes.SECTIONS)
    assert _finite_numbers(r)
    s = sizes.SIZES["cpu-smoke"]
    for name, sec in r["sections"].items():
        assert sec["status"] in ("ok", "skipped"), (name, sec)
        assert sec["section_s"] > 0

    prep = r["sections"]["prepare"]
    assert prep["parameters"] == prep["matmul_parameters"] == _llama_parameters(prep["config"])

    packages = prep["packages"]
    deepspeed_here = packages["deepspeed"] is not None
    for name in ("engine_bf16", "deepspeed_zero2", "deepspeed_zero3"):
        sec = r["sections"][name]
        if name != "engine_bf16" and not deepspeed_here:
            assert sec["status"] == "skipped" and "deepspeed is not importable" in sec["reason"]
            continue
        assert sec["status"] == "ok", sec
        steps = s["steps"] if name == "engine_bf16" else s["ds_steps"]
        assert len(sec["losses"]) == sec["steps"] == steps
        assert all(5.0 < x < 8.0 for x in sec["losses"])  # ~ln(1024) = 6.93 for a random model
        assert sec["tokens_per_step"] == s["micro"] * s["block"] and sec["tokens_per_s"] > 0
        assert (
            sec["flops_per_token"]
            == 6 * prep["matmul_parameters"] + 12 * s["layers"] * s["hidden"] * s["block"]
        )
        assert sec["mfu"] == pytest.approx(sec["tokens_per_s"] * sec["flops_per_token"] / 1e12)
        assert sec["attn_implementation"] == "sdpa" and sec["engine"] == "local"
    if packages["lmflow"] is None:
        assert "lmflow is not importable" in r["sections"]["lmflow_zero2"]["reason"]

    mcq = r["sections"]["mcq"]
    assert mcq["status"] == "ok" and mcq["n_questions"] == 68 and mcq["device"] == "cpu"
    assert mcq["identical_predictions"] is True and mcq["mismatches"] == []
    assert set(mcq["questions_per_s"]) == {"lm_eval", "ours", "ours_no_prefix_cache"}

    ocr = r["sections"]["nougat"]
    assert ocr["status"] == "ok" and ocr["preset"] == "tiny" and ocr["pages"] >= 2
    assert 0 < ocr["tokens"] <= ocr["pages"] * ocr["max_new_tokens"]
    assert ocr["pages_per_s"] == pytest.approx(ocr["pages"] / ocr["seconds"])


@pytest.mark.slow
@pytest.mark.lmflow
def test_cpu_smoke_deepspeed_and_lmflow_agree_with_the_local_engine(tmp_path, lmflow_python):
    """ZeRO-2 and ZeRO-3 through the local engine, and LMFlow's finetune.py with ZeRO-2 through the
    shim, in the LMFlow environment: the same per-step losses as the plain local engine (fp32 on CPU).
    The first DeepSpeed run on a machine JIT-compiles its CPU shared-memory op (minutes, then cached)."""
    p, r = _run(
        tmp_path,
        "--only",
        "engine_bf16,deepspeed_zero2,deepspeed_zero3,lmflow_zero2",
        "--python",
        str(lmflow_python),
        "--peak-tflops",
        "1",
        "--budget-s",
        "1500",
        timeout=1800,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    secs = r["sections"]
    assert secs["prepare"]["packages"]["deepspeed"] and secs["prepare"]["packages"]["lmflow"]
    ref = secs["engine_bf16"]
    assert ref["status"] == "ok" and len(ref["losses"]) == sizes.SIZES["cpu-smoke"]["steps"]
    for name, engine, config in (
        ("deepspeed_zero2", "local", "zero2.json"),
        ("deepspeed_zero3", "local", "zero3.json"),
        ("lmflow_zero2", "lmflow", "zero2.json"),
    ):
        sec = secs[name]
        assert sec["status"] == "ok", (name, sec)
        assert sec["engine"] == engine and sec["deepspeed_config"] == config
        assert sec["loss_max_abs_diff_vs_engine_bf16"] <= 1e-5, (name, sec["losses"], ref["losses"])
        assert sec["tokens_per_s"] > 0 and math.isfinite(sec["mfu"])


@pytest.mark.slow
def test_a_crashed_section_is_recorded_and_the_rest_go_on(tmp_path):
    # the MCQ section's process is killed (as by the OOM killer); the Nougat section still runs
    python = tmp_path / "python"
    python.write_text(
        f'#!/usr/bin/env bash\n[[ " $* " == *" --section mcq "* ]] && kill -9 $$\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    p, r = _run(tmp_path, "--only", "mcq,nougat", "--python", str(python))
    assert p.returncode == 1
    assert list(r["sections"]) == ["prepare", "mcq", "nougat"] and r["ok"] is False
    assert r["sections"]["mcq"]["status"] == "error" and r["sections"]["mcq"]["error"].startswith("exit -9")
    assert r["sections"]["nougat"]["status"] == "ok" and r["sections"]["nougat"]["pages_per_s"] > 0


def test_time_budget_skips_the_sections_it_cannot_start(tmp_path):
    p, r = _run(tmp_path, "--only", "mcq", "--budget-s", "1", timeout=300)
    assert p.returncode == 0
    assert r["sections"] == {
        "prepare": {"status": "skipped", "reason": "time budget 1 s spent"},
        "mcq": {"status": "skipped", "reason": "time budget 1 s spent"},
    }


def test_peak_by_device_name_and_the_1b_shape():
    assert sizes.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert sizes.peak_tflops("NVIDIA H200") == 989.0
    assert sizes.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert sizes.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert sizes.peak_tflops("NVIDIA GeForce RTX 4090") is None
    torch = pytest.importorskip("torch")
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(sections.llama3_config(sizes.SIZES["gpu"]))
    n = sum(p.numel() for p in model.parameters())
    assert n == _llama_parameters(sizes.SIZES["gpu"]) == 1_235_814_400  # Llama-3.2-1B's count
    assert model.config.num_key_value_heads == 8 and model.config.vocab_size == 128256
