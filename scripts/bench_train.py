"""How fast can the demo train on this CPU? Optimizer steps of SmolLM2-135M-Instruct on 256-token
blocks, timed back to back in each setting so the ratios hold on a busy machine:

* ``fp32 b4``: what the demo did (float32, 4 blocks per step);
* ``bf16 b4``: bfloat16 autocast (the Trainer's ``bf16=True`` on CPU), fp32 master weights;
* ``fp32 b8`` / ``bf16 b8``: fewer, larger steps with the same tokens (8 blocks per step).

Settings are interleaved round by round (A B C D A B C D ...) and the median step is reported
per 1,000 tokens, with the ratio to ``fp32 b4`` and the mean loss of the measured steps (the same
blocks in every setting: bf16 rounding shows as a loss difference of ~1e-2).

    .venv/bin/python scripts/bench_train.py [--rounds 3] [--steps 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="timed steps per setting per round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--block-size", type=int, default=256)
    a = p.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from astrollama.models import smollm2_checkpoint
    from astrollama.train.engine import cpu_bf16_units

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ckpt = smollm2_checkpoint()
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)  # full update work, weights unchanged
    vocab = model.config.vocab_size
    data = torch.randint(0, vocab, (8 * a.steps, a.block_size))
    settings = [("fp32 b4", False, 4), ("bf16 b4", True, 4), ("fp32 b8", False, 8), ("bf16 b8", True, 8)]
    times: dict[str, list[float]] = {s[0]: [] for s in settings}
    losses: dict[str, list[float]] = {s[0]: [] for s in settings}

    def step(bf16: bool, x: torch.Tensor) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()  # lr 0: every setting sees the same weights
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    step(False, data[:4])  # warm-up: allocator, kernels
    step(True, data[:4])
    print(
        f"SmolLM2-135M-Instruct, {a.block_size}-token blocks, {a.threads} thread(s), "
        f"bf16 units: {cpu_bf16_units() or 'none'}; {a.rounds} rounds x {a.steps} steps",
        flush=True,
    )
    for r in range(a.rounds):
        for name, bf16, bs in settings:
            for i in range(a.steps):
                x = data[(i * bs) % len(data) :][:bs]
                t0 = time.perf_counter()
                loss = step(bf16, x)
                times[name].append((time.perf_counter() - t0) / (bs * a.block_size) * 1000)
                if r == 0:
                    losses[name].append(loss)
        print(f"  round {r + 1}/{a.rounds} done", flush=True)
    ref = statistics.median(times["fp32 b4"])
    for name, _, _ in settings:
        med = statistics.median(times[name])
        print(
            f"  {name}: {med:6.2f} s per 1k tokens  {ref / med:4.2f}x fp32 b4  "
            f"loss {statistics.mean(losses[name]):.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
