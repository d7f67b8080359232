"""DeepSpeed configs in ds_configs/ and the recipe/config agreement check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from astrollama.train import deepspeed
from astrollama.train.batch import plan_batch
from astrollama.train.launch import build_launch
from astrollama.train.recipe import RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("in_repo")
CONFIGS = {p.name: json.loads(p.read_text()) for p in (REPO / "ds_configs").glob("*.json")}


def test_shipped_configs():
    assert set(CONFIGS) == {"zero2.json", "zero3.json", "zero3_offload.json"}
    for name, c in CONFIGS.items():
        for key in (
            "train_batch_size",
            "train_micro_batch_size_per_gpu",
            "gradient_accumulation_steps",
            "gradient_clipping",
        ):
            assert c[key] == "auto", (name, key)
        assert c["bf16"]["enabled"] == "auto" and c["fp16"]["enabled"] == "auto", name
        assert "optimizer" not in c and "scheduler" not in c, name
    assert deepspeed.zero_stage(CONFIGS["zero2.json"]) == 2
    assert deepspeed.zero_stage(CONFIGS["zero3.json"]) == 3 and not deepspeed.offloads_optimizer(
        CONFIGS["zero3.json"]
    )
    assert deepspeed.offloads_optimizer(CONFIGS["zero3_offload.json"])
    assert not deepspeed.offloads_optimizer(CONFIGS["zero2.json"])
    for name in ("zero3.json", "zero3_offload.json"):
        assert CONFIGS[name]["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


@pytest.fixture
def ds_recipe(minimal_recipe, tmp_path):
    def make(config: dict, *overrides: str):
        path = tmp_path / "ds.json"
        path.write_text(json.dumps(config))
        return load_recipe(minimal_recipe, [f"launch.deepspeed={path}", *overrides])

    return make


def test_shipped_configs_agree_with_bf16_and_fp32_recipes(ds_recipe):
    for config in CONFIGS.values():
        for precision in ([], ["trainer.bf16=true"], ["trainer.fp16=true"]):
            r = ds_recipe(config, *precision)
            assert deepspeed.check(r, plan=plan_batch(8, 2, 4)) == config


def test_precision_disagreement(ds_recipe):
    config = {**CONFIGS["zero3.json"], "fp16": {"enabled": True}}
    r = ds_recipe(config, "trainer.bf16=true")
    with pytest.raises(RecipeError) as e:
        deepspeed.check(r)
    assert (
        e.value.key == "launch.deepspeed"
        and "fp16.enabled=true but the recipe trains in bf16" in e.value.problem
    )
    r = ds_recipe({**CONFIGS["zero2.json"], "bf16": {"enabled": True}})
    with pytest.raises(RecipeError, match="bf16.enabled=true but the recipe trains in fp32"):
        deepspeed.check(r)


def test_explicit_batch_numbers_must_match_the_plan(ds_recipe, text_only_dir):
    plan = plan_batch(8, 2, 4)  # micro 4, accumulation 1
    ok = {
        **CONFIGS["zero2.json"],
        "train_batch_size": 8,
        "train_micro_batch_size_per_gpu": 4,
        "gradient_accumulation_steps": 1,
    }
    deepspeed.check(ds_recipe(ok), plan=plan)
    bad = {**ok, "train_micro_batch_size_per_gpu": 2}
    r = ds_recipe(bad)
    with pytest.raises(RecipeError, match="train_micro_batch_size_per_gpu=2 but the batch plan needs 4"):
        deepspeed.check(r, plan=plan)
    with pytest.raises(RecipeError, match="train_micro_batch_size_per_gpu=2"):
        build_launch(r, nodes=["a", "b"], gpus_per_node=1)  # the launch path runs the check


def test_clipping_and_optimizer_sections(ds_recipe):
    with pytest.raises(RecipeError, match="gradient_clipping=0.5 but trainer.max_grad_norm is 1.0"):
        deepspeed.check(ds_recipe({**CONFIGS["zero2.json"], "gradient_clipping": 0.5}))
    deepspeed.check(
        ds_recipe({**CONFIGS["zero2.json"], "gradient_clipping": 0.5}, "trainer.max_grad_norm=0.5")
    )
    with pytest.raises(RecipeError, match="defines 'optimizer'"):
        deepspeed.check(ds_recipe({**CONFIGS["zero2.json"], "optimizer": {"type": "AdamW"}}))


def test_missing_and_broken_files(minimal_recipe, tmp_path):
    r = load_recipe(minimal_recipe, [f"launch.deepspeed={tmp_path / 'nope.json'}"])
    with pytest.raises(RecipeError) as e:
        deepspeed.check(r)
    assert e.value.file == str(minimal_recipe.resolve()) and e.value.key == "launch.deepspeed"
    assert "DeepSpeed config not found" in e.value.problem
    (tmp_path / "broken.json").write_text("{not json")
    r = load_recipe(minimal_recipe, [f"launch.deepspeed={tmp_path / 'broken.json'}"])
    with pytest.raises(RecipeError, match="is not valid JSON"):
        deepspeed.check(r)


def test_every_recipe_agrees_with_its_config():
    for path in sorted(
        p for p in (REPO / "recipes").glob("[!_]*.yaml") if not p.name.endswith("-merge.yaml")
    ):
        r = load_recipe(path)
        if r.launch.deepspeed is not None:
            plan = plan_batch(
                r.batch.global_batch_size,
                r.launch.nodes * r.launch.gpus_per_node,
                r.batch.max_micro_batch_size,
            )
            deepspeed.check(r, plan=plan)
