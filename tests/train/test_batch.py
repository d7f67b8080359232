"""Batch arithmetic: global = world x micro x accumulation, or a refusal with the numbers."""

from __future__ import annotations

import itertools

import pytest

from astrollama.train.batch import BatchError, BatchPlan, plan_batch
from astrollama.train.recipe import RecipeError


@pytest.mark.parametrize(
    ("global_bs", "world", "max_micro", "micro", "accum"),
    [
        (96, 8, 12, 12, 1),  # 8B summary, 1 node x 8
        (96, 16, 12, 6, 1),  # 2 nodes x 8
        (96, 32, 12, 3, 1),  # 4 nodes x 8
        (96, 96, 12, 1, 1),  # 12 nodes x 8
        (96, 8, 4, 4, 3),  # memory-capped micro-batch: accumulate
        (160, 40, 4, 4, 1),  # 70B AIC, 5 nodes x 8
        (160, 32, 4, 1, 5),  # 4 nodes x 8: 5 per process, micro 1
        (32, 4, 8, 8, 1),  # AstroLLaMA-1, 4 GPUs
        (32, 2, 8, 8, 2),
        (12, 1, 5, 4, 3),  # largest divisor of 12 not above 5
        (4, 1, 4, 4, 1),  # demo on CPU
        (7, 1, 1, 1, 7),
    ],
)
def test_plan_table(global_bs, world, max_micro, micro, accum):
    assert plan_batch(global_bs, world, max_micro) == BatchPlan(global_bs, world, micro, accum)


def test_every_plan_realises_the_global_batch_exactly():
    for g, w, m in itertools.product(range(1, 65), range(1, 17), range(1, 9)):
        if g % w:
            with pytest.raises(BatchError):
                plan_batch(g, w, m)
            continue
        p = plan_batch(g, w, m)
        assert p.world_size * p.per_device_train_batch_size * p.gradient_accumulation_steps == g
        assert p.per_device_train_batch_size <= m
        larger = [d for d in range(p.per_device_train_batch_size + 1, m + 1) if (g // w) % d == 0]
        assert not larger, (g, w, m, p)


def test_refusal_names_the_numbers():
    with pytest.raises(BatchError) as e:
        plan_batch(96, 40, 12, file="recipes/x.yaml")
    msg = str(e.value)
    assert isinstance(e.value, RecipeError) and "\n" not in msg
    assert msg.startswith("recipes/x.yaml: batch.global_batch_size: 96 is not divisible by the 40")
    assert "96 / 40 = 2.4" in msg and "32, 48, 96" in msg


@pytest.mark.parametrize("bad", [0, -1, True, 2.0])
def test_rejects_non_positive_integers(bad):
    with pytest.raises(BatchError):
        plan_batch(96, bad, 12)


def test_box():
    box = plan_batch(96, 16, 12).box(2, 8)
    assert box == "global batch 96 = 16 processes (2 nodes x 8) x micro-batch 6 x gradient accumulation 1"
