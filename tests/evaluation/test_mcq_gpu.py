"""GPU path of the MCQ scorer (transformers backend, bf16 on CUDA). Skips without CUDA.

Run on a GPU machine:  python -m pytest tests/evaluation/test_mcq_gpu.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astrollama.evaluation.settings import ScoringSettings

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SAMPLE = Path(__file__).resolve().parents[2] / "eval" / "data" / "astro_mcq_sample.jsonl"


def test_cuda_bf16_matches_cpu_fp32(tiny_model):
    from astrollama.benchmark import load_questions
    from astrollama.evaluation.mcq import score_mcq

    qs = load_questions(SAMPLE)
    cpu = score_mcq(tiny_model, qs, ScoringSettings(device="cpu", batch_size=8), progress=False)
    gpu = score_mcq(
        tiny_model, qs, ScoringSettings(device="cuda", batch_size=8, dtype="auto"), progress=False
    )  # dtype auto -> bf16
    assert gpu.settings["dtype"] == "bfloat16" and gpu.settings["device"] == "cuda"
    gpu32 = score_mcq(
        tiny_model, qs, ScoringSettings(device="cuda", dtype="float32", batch_size=16), progress=False
    )
    assert gpu32.letters == cpu.letters
    for a, b, c in zip(cpu.predictions, gpu.predictions, gpu32.predictions, strict=True):
        assert list(c["logprobs"].values()) == pytest.approx(list(a["logprobs"].values()), abs=1e-3)
        assert list(b["logprobs"].values()) == pytest.approx(list(a["logprobs"].values()), abs=0.1)
    one = score_mcq(
        tiny_model, qs, ScoringSettings(device="cuda", batch_size=1, dtype="auto"), progress=False
    )
    agree = sum(x == y for x, y in zip(one.letters, gpu.letters, strict=True))
    assert agree >= len(qs) - 2  # bf16 batch/padding differences may flip a near-tie, no more
