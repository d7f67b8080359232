"""How fast can the demo train on this CPU? SmolLM2-135M-Instruct on 256-token blocks, each
setting timed back to back, round by round (A B A B ...), so the ratios hold on a busy machine:

* forward + backward of one micro-batch in ``fp32`` (what the demo did) and under bfloat16
  autocast (``bf16``: the Trainer's ``bf16=True`` on CPU; float32 master weights), per 1,000 tokens;
* one AdamW update of all weights (paid once per optimizer step: what fewer, larger steps with the
  same tokens save).

Prints the median of wall and CPU seconds (CPU seconds of this process: less disturbed by other
jobs than wall time), the bf16/fp32 ratio, and the loss of the same blocks in both precisions.

    .venv/bin/python scripts/bench_train.py [--rounds 3] [--batch 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=2, help="blocks per timed forward + backward")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--block-size", type=int, default=256)
    a = p.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from astrollama.models import smollm2_checkpoint
    from astrollama.train.engine import cpu_bf16_units

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(smollm2_checkpoint(), dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)  # the full update's work, weights unchanged
    x = torch.randint(0, model.config.vocab_size, (a.batch, a.block_size))
    tokens = a.batch * a.block_size

    def fwd_bwd(bf16: bool) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        return float(loss.detach())

    def timed(f, *args) -> tuple[float, float, float]:
        w, c = time.perf_counter(), time.process_time()
        out = f(*args)
        return time.perf_counter() - w, time.process_time() - c, out

    fwd_bwd(False)  # warm-up: allocator, kernels, optimizer state
    fwd_bwd(True)
    opt.step()
    units = cpu_bf16_units()
    print(
        f"SmolLM2-135M-Instruct, {a.batch} x {a.block_size}-token blocks, {a.threads} thread(s), "
        f"bfloat16 units: {', '.join(units) or 'none'}; {a.rounds} rounds",
        flush=True,
    )
    res: dict[str, list[tuple[float, float, float]]] = {"fp32": [], "bf16": [], "adamw": []}
    for r in range(a.rounds):
        for name in ("fp32", "bf16"):
            opt.zero_grad(set_to_none=False)
            res[name].append(timed(fwd_bwd, name == "bf16"))
        res["adamw"].append(timed(opt.step))
        print(f"  round {r + 1}/{a.rounds} done", flush=True)

    def med(name: str, i: int, per: float = 1.0) -> float:
        return statistics.median(t[i] for t in res[name]) * per

    k = 1000 / tokens
    for name in ("fp32", "bf16"):
        print(
            f"  forward+backward {name}: {med(name, 0, k):6.2f} s wall, {med(name, 1, k):6.2f} s CPU "
            f"per 1k tokens; loss {res[name][0][2]:.4f}"
        )
    print(
        f"  bf16 vs fp32: {med('fp32', 0) / med('bf16', 0):4.2f}x wall, "
        f"{med('fp32', 1) / med('bf16', 1):4.2f}x CPU"
    )
    print(f"  AdamW update: {med('adamw', 0):6.2f} s wall, {med('adamw', 1):6.2f} s CPU per optimizer step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
