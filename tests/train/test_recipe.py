"""Recipe loading: strict schema, one-line errors, inheritance, overrides, trainer validation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from astrollama.models import resolve_model
from astrollama.train.recipe import RESERVED_TRAINER_KEYS, Recipe, RecipeError, load_recipe

BASE = """
reproduces: test
model:
  name_or_path: some/model
data:
  dataset_path: data/train
  block_size: 64
batch:
  global_batch_size: 8
  max_micro_batch_size: 4
launch:
  engine: local
trainer:
  learning_rate: 1.0e-4
  save_steps: 5
  report_to: [none]
"""


def _error(path, overrides=()) -> RecipeError:
    with pytest.raises(RecipeError) as e:
        load_recipe(path, overrides)
    assert "\n" not in str(e.value)
    assert str(e.value) == f"{e.value.file}: {e.value.key}: {e.value.problem}"
    return e.value


def test_minimal_recipe_resolves(minimal_recipe, text_only_dir):
    r = load_recipe(minimal_recipe)
    assert isinstance(r, Recipe)
    assert r.name == "r" and r.path == minimal_recipe.resolve()
    assert r.data.dataset_path == text_only_dir and r.data.packing is True
    assert r.trainer == {"learning_rate": 1.0e-4}
    assert isinstance(r.trainer["learning_rate"], float)
    assert r.launch.run_dir == Path.cwd() / "runs" / "r"  # default run_dir, made absolute
    assert r.launch.ddp_timeout == 72000 and r.model.torch_dtype == "auto"
    d = r.resolved_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["data"]["dataset_path"] == str(text_only_dir)


@pytest.mark.parametrize(
    ("snippet", "key", "words"),
    [
        ("colour: red\n", "colour", "unknown key"),
        (
            "data:\n  packing: true\n  blok_size: 3\n",
            "data.blok_size",
            "unknown key (allowed here: dataset_path",
        ),
        ("trainer:\n  learning_rate: 2e-5\n", "trainer.learning_rate", "'2e-5' is a string, not a number"),
        (
            "data:\n  packing: true\n  block_size: '512'\n",
            "data.block_size",
            "'512' is a string, not a number; remove the quotes",
        ),
        ("batch:\n  global_batch_size: 8.5\n", "batch.global_batch_size", "valid integer"),
        ("data:\n  packing: yes\n", "data.packing", "valid boolean"),
        ("trainer:\n  bf16: on\n", "trainer.bf16", "expected bool"),
        ("trainer:\n  lerning_rate: 1.0e-4\n", "trainer.lerning_rate", "not an argument of"),
        ("trainer:\n  block_size: 128\n", "trainer.block_size", "use data.block_size"),
        ("trainer:\n  warmup_ratio: 0.03\n", "trainer.warmup_ratio", "use trainer.warmup_steps"),
        ("trainer:\n  save_strategy: epoch\n", "trainer.save_strategy", "must be 'steps'"),
        ("trainer:\n  lr_scheduler_type: cosinus\n", "trainer", "TrainingArguments rejects it"),
        ("model:\n  torch_dtype: bf16\n", "model.torch_dtype", "'auto', 'bfloat16', 'float16' or 'float32'"),
        ("model:\n  lora:\n    r: 8\n    alpha: 16\n", "model.lora.dropout", "required key is missing"),
        ("launch:\n  engine: deepspeed\n", "launch.engine", "'lmflow', 'local' or 'auto'"),
    ],
)
def test_bad_values_name_file_and_key(write_recipe, snippet, key, words):
    path = write_recipe("base: base.yaml\ndata:\n  packing: true\n", "r.yaml")
    write_recipe(BASE, "base.yaml")
    # the snippet is merged on top of the leaf (a second `data:` would be a duplicate key)
    leaf = path.read_text()
    if snippet.startswith("data:"):
        leaf = leaf.replace("data:\n  packing: true\n", "")
    path.write_text(leaf + snippet)
    e = _error(path)
    assert e.file == str(path) and e.key == key, str(e)
    assert words in e.problem, str(e)


@pytest.mark.parametrize("key", sorted(RESERVED_TRAINER_KEYS))
def test_reserved_trainer_keys_are_refused(write_recipe, key):
    write_recipe(BASE, "base.yaml")
    value = "x" if key in {"output_dir", "deepspeed", "resume_from_checkpoint"} else "1"
    path = write_recipe(f"base: base.yaml\ndata:\n  packing: true\ntrainer:\n  {key}: {value}\n")
    e = _error(path)
    assert e.key == f"trainer.{key}" and "not settable in a recipe" in e.problem


def test_packing_must_be_in_the_recipe_file_itself(write_recipe):
    write_recipe(BASE.replace("block_size: 64", "block_size: 64\n  packing: true"), "base.yaml")
    path = write_recipe("base: base.yaml\n")
    e = _error(path)
    assert e.key == "data.packing" and "recipe file itself" in e.problem


def test_inheritance_deep_merges_mappings_and_replaces_the_rest(write_recipe):
    write_recipe(BASE, "base.yaml")
    write_recipe("base: base.yaml\ndata:\n  packing: false\ntrainer:\n  save_steps: 7\n", "mid.yaml")
    path = write_recipe(
        "base: mid.yaml\ndata:\n  packing: true\n  block_size: 32\ntrainer:\n  report_to: [tensorboard]\n"
    )
    r = load_recipe(path)
    assert r.data.block_size == 32 and r.data.packing is True
    assert r.data.dataset_path == Path.cwd() / "data" / "train"  # kept from base.yaml
    assert r.trainer == {"learning_rate": 1.0e-4, "save_steps": 7, "report_to": ["tensorboard"]}


def test_inheritance_cycle_and_missing_base(write_recipe):
    write_recipe("base: b.yaml\ndata:\n  packing: true\n", "a.yaml")
    write_recipe("base: a.yaml\ndata:\n  packing: true\n", "b.yaml")
    e = _error(write_recipe("base: a.yaml\ndata:\n  packing: true\n", "c.yaml"))
    assert e.key == "base" and "cycle" in e.problem
    e = _error(write_recipe("base: nowhere.yaml\ndata:\n  packing: true\n", "d.yaml"))
    assert e.key == "base" and "no such file" in e.problem


def test_yaml_problems_are_one_line(write_recipe):
    e = _error(write_recipe("data:\n  packing: true\n  packing: false\n"))
    assert "duplicate key 'packing'" in e.problem
    e = _error(write_recipe("data: [unclosed\n"))
    assert e.key == "(yaml)" and "line" in e.problem
    e = _error(write_recipe("- a list\n"))
    assert e.key == "(top level)"
    assert _error(Path("/nonexistent/recipe.yaml")).problem == "no such file"


def test_overrides_use_yaml_typing_and_the_same_checks(write_recipe):
    write_recipe(BASE, "base.yaml")
    path = write_recipe("base: base.yaml\ndata:\n  packing: true\n")
    r = load_recipe(
        path,
        [
            "trainer.learning_rate=2.0e-5",
            "launch.nodes=2",
            "data.packing=false",
            "trainer.max_steps=10",
            "model.lora={r: 4, alpha: 8, dropout: 0.0}",
        ],
    )
    assert r.trainer["learning_rate"] == 2.0e-5 and r.launch.nodes == 2 and r.data.packing is False
    assert r.trainer["max_steps"] == 10 and r.model.lora is not None and r.model.lora.r == 4
    e = _error(path, ["trainer.learning_rate=2e-5"])
    assert e.key == "trainer.learning_rate" and "write 2.0e-5" in e.problem
    e = _error(path, ["launch.nodes=two"])
    assert e.key == "launch.nodes"
    e = _error(path, ["launch.gpus=8"])
    assert e.key == "launch.gpus" and "unknown key" in e.problem
    for bad in ["nodes", "=3", "launch..nodes=1"]:
        assert "must look like" in _error(path, [bad]).problem
    assert _error(path, ["base=x.yaml"]).problem == "cannot be overridden"


def test_paths_resolve_against_the_working_directory(write_recipe, tmp_path, monkeypatch):
    write_recipe(BASE, "base.yaml")
    path = write_recipe(
        "base: base.yaml\ndata:\n  packing: true\nlaunch:\n  deepspeed: ds/z.json\n  run_dir: ~/runs/x\n"
    )
    monkeypatch.chdir(tmp_path)
    r = load_recipe(path)
    assert r.data.dataset_path == tmp_path / "data" / "train"
    assert r.launch.deepspeed == tmp_path / "ds" / "z.json"
    assert r.launch.run_dir == Path(os.path.expanduser("~/runs/x"))


def test_trainer_crossfield_checks_run_in_transformers(write_recipe):
    write_recipe(BASE, "base.yaml")
    path = write_recipe("base: base.yaml\ndata:\n  packing: true\ntrainer:\n  bf16: true\n  fp16: true\n")
    e = _error(path)
    assert e.key == "trainer" and "TrainingArguments rejects it" in e.problem


def test_model_references(smollm2):
    assert resolve_model("meta-llama/Meta-Llama-3-8B") == "meta-llama/Meta-Llama-3-8B"
    assert resolve_model("smollm2-135m") == str(smollm2)
    assert (Path(resolve_model("smollm2-135m")) / "config.json").is_file()
