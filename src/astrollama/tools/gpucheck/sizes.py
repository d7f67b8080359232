"""GPU check sizes and constants: the sections, the GPU and CPU-smoke sizes, datasheet peaks, FLOPs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[4]
#: Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's datasheets (H100 SXM5, H200 SXM,
#: H100 PCIe, A100 SXM/PCIe). Matched on the CUDA device name, first match wins.
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
]
FLOPS_FORMULA = (
    "flops_per_token = 6*N + 12*L*d*T (PaLM arXiv:2204.02311 app. B; N = matmul parameters, "
    "L layers, d = heads*head_dim, T = block size); mfu = tokens_per_s * flops_per_token / peak"
)
#: Order: the main figure first, LMFlow (the most likely to break on a foreign machine) last.
SECTIONS = ("prepare", "engine_bf16", "deepspeed_zero2", "deepspeed_zero3", "mcq", "nougat", "lmflow_zero2")
TRAIN_SECTIONS = {
    "engine_bf16": None,
    "deepspeed_zero2": "zero2.json",
    "deepspeed_zero3": "zero3.json",
    "lmflow_zero2": "zero2.json",
}
NEEDS_PREPARE = {*TRAIN_SECTIONS, "mcq"}  # the sections that use prepare's model

#: Sizes: the GPU run (one H100, < 8 min in all) and the CPU smoke (seconds per section).
SIZES: dict[str, dict[str, Any]] = {
    "gpu": dict(
        hidden=2048,
        layers=16,
        heads=32,
        kv_heads=8,
        intermediate=8192,
        vocab=128256,
        block=512,
        micro=16,
        steps=30,
        ds_steps=20,
        warmup=5,
        mcq_batch=16,
        mcq_repeats=2,
        nougat_preset="small",
        nougat_papers=3,
        nougat_batch=8,
        nougat_tokens=256,
        dpi=96,
        timeouts=dict(
            prepare=180,
            engine_bf16=180,
            deepspeed_zero2=200,
            deepspeed_zero3=200,
            lmflow_zero2=200,
            mcq=180,
            nougat=180,
        ),
    ),
    "cpu-smoke": dict(
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=128,
        vocab=1024,
        block=64,
        micro=2,
        steps=4,
        ds_steps=4,
        warmup=1,
        mcq_batch=8,
        mcq_repeats=1,
        nougat_preset="tiny",
        nougat_papers=1,
        nougat_batch=4,
        nougat_tokens=8,
        dpi=48,
        timeouts=dict(
            prepare=120,
            engine_bf16=180,
            deepspeed_zero2=600,
            deepspeed_zero3=180,
            lmflow_zero2=240,
            mcq=240,
            nougat=180,
        ),
    ),
}


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a CUDA device by name (None when unknown)."""
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def flops_per_token(n_matmul_params: int, layers: int, attn_dim: int, seq_len: int) -> float:
    """Training FLOPs per token: ``6 N + 12 L d T`` (see :mod:`astrollama.tools.gpucheck`)."""
    return 6.0 * n_matmul_params + 12.0 * layers * attn_dim * seq_len
