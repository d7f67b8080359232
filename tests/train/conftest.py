"""Fixtures for the training tests: recipe files written on the spot, small LMFlow datasets."""

from __future__ import annotations

import os
import random
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from astrollama.lmflow_data import write_text_only
from astrollama.models import DEFAULT_TINY_TEXT


@pytest.fixture
def text_only_dir(tmp_path) -> Path:
    """A small real LMFlow text_only dataset directory (two shards)."""
    d = tmp_path / "data" / "train"
    write_text_only(d / "shard-00000.json", ["The Sun is a G-type main-sequence star."] * 3)
    write_text_only(d / "shard-00001.json", ["Pulsars are rotating neutron stars."] * 2)
    return d


@pytest.fixture
def write_recipe(tmp_path) -> Callable[..., Path]:
    """write_recipe(text, name="r.yaml") -> path of a recipe file in tmp_path/recipes (dedented)."""

    def write(text: str, name: str = "r.yaml") -> Path:
        p = tmp_path / "recipes" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
        return p

    return write


MINIMAL = """
reproduces: test
model:
  name_or_path: some/model
data:
  dataset_path: {data}
  block_size: 64
  packing: true
batch:
  global_batch_size: 8
  max_micro_batch_size: 4
launch:
  engine: local
trainer:
  learning_rate: 1.0e-4
"""


@pytest.fixture
def minimal_recipe(write_recipe, text_only_dir) -> Path:
    """A valid recipe on the text_only_dir dataset (engine local, global batch 8, max micro 4)."""
    return write_recipe(MINIMAL.format(data=text_only_dir))


# ----------------------------------------------------------------------------------------------
# Runtime fixtures (engine, resume, Slurm): a tiny real model + corpus, recipes that train it.
# ----------------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """60 short pseudo-astronomy documents (20-120 words) in 3 LMFlow text_only shards."""
    from astrollama.lmflow_data import write_text_only_shards

    words = DEFAULT_TINY_TEXT.split()
    rng = random.Random(0)
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 120))) for _ in range(60)]
    d = tmp_path_factory.mktemp("corpus") / "train"
    write_text_only_shards(docs, d, max_docs=25)
    return d


TRAIN_RECIPE = """
name: tiny-runtime
reproduces: "none: runtime test"
model:
  name_or_path: {model}
  torch_dtype: float32
data:
  dataset_path: {data}
  block_size: 64
  packing: {packing}
  preprocessing_num_workers: 1
batch:
  global_batch_size: {global_batch}
  max_micro_batch_size: {micro}
launch:
  engine: local
  nodes: 1
  gpus_per_node: {procs}
  run_dir: {run_dir}
  rdzv_port: {port}
trainer:
  learning_rate: 1.0e-3
  max_steps: {max_steps}
  save_steps: {save_steps}
  logging_steps: 1
  report_to: none
  seed: 7
  ddp_find_unused_parameters: false
"""


@pytest.fixture(scope="session")
def train_recipe(tmp_path_factory, tiny_model, tiny_corpus) -> Callable[..., Path]:
    """train_recipe(run_dir, max_steps=.., save_steps=.., procs=1, ...) -> a recipe training tiny_model."""

    def write(run_dir: Path, *, max_steps: int = 20, save_steps: int = 4, procs: int = 1,
              global_batch: int = 4, micro: int = 4, packing: bool = True) -> Path:
        p = tmp_path_factory.mktemp("recipes") / "tiny.yaml"
        p.write_text(TRAIN_RECIPE.format(
            model=tiny_model, data=tiny_corpus, run_dir=run_dir, port=free_port(), procs=procs,
            max_steps=max_steps, save_steps=save_steps, global_batch=global_batch, micro=micro,
            packing=str(packing).lower(),
        ))
        return p

    return write


@pytest.fixture(scope="session")
def train_env() -> dict[str, str]:
    """Environment for subprocess training runs: offline, one thread per process."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def in_repo(monkeypatch) -> Path:
    """Run from the repository root: recipes' relative paths (ds_configs/...) resolve against the cwd."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    return root
