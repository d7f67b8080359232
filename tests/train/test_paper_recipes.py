"""Every recipe validates; the paper recipes' resolved hyper-parameters equal astrollama.paper.RECIPES."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from astrollama import paper
from astrollama.train import deepspeed
from astrollama.train.batch import plan_batch
from astrollama.train.recipe import Recipe, RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("in_repo")
ALL_FILES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if not p.name.startswith("_"))
RECIPE_FILES = [
    p for p in ALL_FILES if not p.name.endswith("-merge.yaml")
]  # merge: tests/train/test_merge.py
PAPER_RECIPES = sorted(paper.RECIPES)

# RECIPES keys that describe the corpus or the compute, not a training hyper-parameter.
NOT_HYPERPARAMETERS = {"corpus", "n_papers", "n_tokens", "heldout_fraction", "summary_tokens", "a100_hours"}


def resolved(recipe: Recipe, key: str) -> Any:
    """The value a recipe resolves to for a RECIPES key (names follow the trainer's)."""
    t = recipe.trainer
    if key == "base_model":
        return recipe.model.name_or_path
    if key == "use_lora":
        return recipe.model.lora is not None
    if key in {"lora_alpha", "lora_dropout"}:
        return getattr(recipe.model.lora, key.removeprefix("lora_"))
    if key == "block_size":
        return recipe.data.block_size
    if key == "global_batch_size":
        return recipe.batch.global_batch_size
    if key == "warmup_ratio":  # transformers 5: warmup_steps < 1 is a ratio
        w = t.get("warmup_steps", 0)
        return w if isinstance(w, float) and w < 1 else None
    if key == "gradient_accumulation_steps":  # on the allocation the recipe names
        world = recipe.launch.nodes * recipe.launch.gpus_per_node
        return plan_batch(
            recipe.batch.global_batch_size, world, recipe.batch.max_micro_batch_size
        ).gradient_accumulation_steps
    if key == "gpus":
        return recipe.launch.nodes * recipe.launch.gpus_per_node
    if key in {"learning_rate", "lr_scheduler_type", "bf16", "num_train_epochs"}:
        return t.get(key)
    raise KeyError(f"no recipe field for astrollama.paper.RECIPES key {key!r}: map it in this test")


def test_recipes_exist_for_every_released_model():
    names = {p.stem for p in RECIPE_FILES}
    assert set(PAPER_RECIPES) <= names
    assert "astrollama-3-8b-base_summary-packed" in names and "demo-smollm2-135m" in names


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.stem)
def test_every_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.reproduces.strip()
    if recipe.launch.deepspeed is not None:
        world = recipe.launch.nodes * recipe.launch.gpus_per_node
        deepspeed.check(
            recipe, plan=plan_batch(recipe.batch.global_batch_size, world, recipe.batch.max_micro_batch_size)
        )
    header = path.read_text().split("\nbase:")[0]
    assert re.search(rf"slurm/cpt\.sh recipes/{re.escape(path.name)}", header), (
        "header must give the launch command"
    )
    assert "packing:" in path.read_text()


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("_*.yaml")), ids=lambda p: p.stem)
def test_bases_are_not_recipes(path):
    with pytest.raises(RecipeError):
        load_recipe(path)


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_paper_recipe_matches_published_hyperparameters(name):
    recipe = load_recipe(REPO / "recipes" / f"{name}.yaml")
    header = (REPO / "recipes" / f"{name}.yaml").read_text().split("\nbase:")[0]
    checked = 0
    for key, published in paper.RECIPES[name].items():
        if key in NOT_HYPERPARAMETERS:
            continue
        got = resolved(recipe, key)
        assert got == published.value, (
            f"{name}: {key} = {got!r}, published {published.value!r} ({published.cite()})"
        )
        checked += 1
    assert checked >= 2
    for source in {p.source for k, p in paper.RECIPES[name].items() if k not in NOT_HYPERPARAMETERS}:
        s = paper.SOURCES[source]
        ident = s.url.rstrip("/").split("/")[-1]  # arXiv id or HF model id
        assert ident in header or ident.replace("abs/", "") in header, f"{name}: header must name {s.title}"


def test_summary_recipe_states_its_packing_choice():
    text = (REPO / "recipes" / "astrollama-3-8b-base_summary.yaml").read_text()
    assert load_recipe(REPO / "recipes" / "astrollama-3-8b-base_summary.yaml").data.packing is False
    assert "PACKING IS OFF" in text and "32 A100-hours" in text
    packed = load_recipe(REPO / "recipes" / "astrollama-3-8b-base_summary-packed.yaml")
    assert packed.data.packing is True
    base = load_recipe(REPO / "recipes" / "astrollama-3-8b-base_summary.yaml")
    assert packed.trainer == base.trainer and packed.batch == base.batch and packed.data.block_size == 512


def test_validate_cli_over_the_recipes_directory():
    p = subprocess.run(
        [sys.executable, "-m", "astrollama.cli", "train", "validate", "recipes/"],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == len(ALL_FILES) and all(ln.startswith("ok  recipes/") for ln in lines)
    assert (
        "recipes/astrollama-3-8b-base_summary.yaml: meta-llama/Meta-Llama-3-8B full, block 512, packing off, "
        "global batch 96" in p.stdout
    )


@pytest.mark.parametrize("name", sorted(paper.SFT_RECIPES))
def test_chat_recipe_matches_published_sft(name):
    """The chat recipes start from the released CPT model and resolve to AstroMLab 2's SFT settings;
    their data is conversations (template set) and the header marks what is our choice."""
    path = REPO / "recipes" / f"{name}.yaml"
    recipe = load_recipe(path)
    for key, published in paper.SFT_RECIPES[name].items():
        got = resolved(recipe, key)
        assert got == published.value, (
            f"{name}: {key} = {got!r}, published {published.value!r} ({published.cite()})"
        )
    assert recipe.data.conversation_template in {"llama2", "llama3"}
    assert recipe.data.conversation_template == ("llama3" if "-3-" in name else "llama2")
    header = path.read_text().split("\nbase:")[0]
    assert "arXiv:2409.19750" in header and "Our choice" in header
    assert recipe.launch.nodes * recipe.launch.gpus_per_node * recipe.batch.max_micro_batch_size == 48


def test_every_released_base_model_has_a_chat_recipe():
    cpt = {n for n in paper.RECIPES if n != "astrollama-2-7b-base_abstract"}
    assert {n.replace("-base_", "-chat_") for n in cpt} == set(paper.SFT_RECIPES)
    assert paper.MCQ_SCORES["AstroLLaMA-2-70B-Chat_AIC"].source == "astromlab2"


def test_astrosage_recipe_uses_only_published_facts_as_published():
    path = REPO / "recipes" / "astrosage-8b-sft.yaml"
    recipe = load_recipe(path)
    assert recipe.model.name_or_path == paper.ASTROSAGE["base_model"].value
    assert recipe.data.conversation_template == "llama3"
    header = path.read_text().split("\nbase:")[0]
    for ident in ("arXiv:2411.09012", "AstroMLab/AstroSage-8B", "arXiv:2505.17592", "NOT published"):
        assert ident in header
    assert paper.ASTROSAGE["merge"].value == {"cpt+sft": 0.75, "meta-llama/Llama-3.1-8B-Instruct": 0.25}
