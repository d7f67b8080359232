"""How fast could exact MCQ scoring get on this CPU? The matrix products of one SmolLM2-135M layer
over one batch of the MCQ benchmark (8 questions x ~178 computed tokens), timed in three precisions:

* ``fp32``: what the scorer and lm-eval run (torch's default CPU GEMM);
* ``bf16``: bfloat16 inputs and weights (AMX tiles where the CPU has them); not fp32-grade:
  its relative error is ~1e-3, enough to flip close MCQ predictions (docs/eval-mcq.md);
* ``bf16x2``: fp32-grade from bfloat16 products: the activations split into a bfloat16 high part
  and a bfloat16 low part, multiplied with bfloat16-exact weights (as checkpoints trained in
  bfloat16 are) through oneDNN's bf16 math mode, float32 accumulation and output.

Prints GFLOP/s, the ratio to fp32, and the largest relative error against float64.

    .venv/bin/python eval/bench_matmul.py [--threads 1] [--rows 1424] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# SmolLM2-135M: hidden 576, 9 query / 3 key-value heads of 64, MLP 1536 (its config.json)
SHAPES = {"q/o": (576, 576), "k/v": (576, 192), "gate/up": (576, 1536), "down": (1536, 576)}


def measure(rows: int = 1424, repeats: int = 20, threads: int = 1) -> dict[str, dict[str, float]]:
    """{precision: {"seconds", "gflops", "vs_fp32", "max_rel_error"}} over one layer's products."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mk = torch.backends.mkldnn.matmul

    def split(x: torch.Tensor) -> torch.Tensor:
        hi = x.bfloat16().float()
        return torch.cat([hi, (x - hi).bfloat16().float()], dim=-1)

    def timed(f) -> tuple[float, torch.Tensor]:
        out = f()
        t0 = time.perf_counter()
        for _ in range(repeats):
            f()
        return (time.perf_counter() - t0) / repeats, out

    seconds = dict.fromkeys(("fp32", "bf16", "bf16x2"), 0.0)
    errors = dict.fromkeys(seconds, 0.0)
    flops = 0
    for k, n in SHAPES.values():
        x = torch.randn(rows, k)
        w = (torch.randn(n, k) / k**0.5).bfloat16().float()  # bfloat16-exact weights
        w2 = torch.cat([w, w], dim=1)
        ref = x.double() @ w.double().T
        scale = ref.abs().max().item()
        xb, wb = x.bfloat16(), w.bfloat16()
        runs = {
            "fp32": lambda x=x, w=w: torch.nn.functional.linear(x, w),
            "bf16": lambda xb=xb, wb=wb: torch.nn.functional.linear(xb, wb),
            "bf16x2": lambda x=x, w2=w2: torch.nn.functional.linear(split(x), w2),
        }
        for name, f in runs.items():
            mk.fp32_precision = "bf16" if name == "bf16x2" else "none"
            try:
                sec, out = timed(f)
            finally:
                mk.fp32_precision = "none"
            seconds[name] += sec
            errors[name] = max(errors[name], (out.double() - ref).abs().max().item() / scale)
        flops += 2 * rows * k * n
    return {
        name: {
            "seconds": sec,
            "gflops": flops / sec / 1e9,
            "vs_fp32": seconds["fp32"] / sec,
            "max_rel_error": errors[name],
        }
        for name, sec in seconds.items()
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=1424, help="tokens per product (8 questions x 178)")
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args(argv)
    res = measure(a.rows, a.repeats, a.threads)
    try:
        amx = "yes" if " amx_bf16" in Path("/proc/cpuinfo").read_text() else "no"
    except OSError:
        amx = "unknown"
    print(f"one SmolLM2-135M layer's products, {a.rows} tokens, {a.threads} thread(s); AMX-BF16: {amx}")
    for name, r in res.items():
        print(
            f"  {name:7s} {r['gflops']:7.1f} GFLOP/s  {r['vs_fp32']:5.2f}x fp32"
            f"   max relative error {r['max_rel_error']:.1e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
