"""What a training job asks Slurm for, the refusal when it did not get it, and planning before the
data exists: the GPU/time/memory request of each recipe, the one-line GPU refusal of ``train run``,
the interpreter and rendezvous id the dry-run shows, offline-first tokenizer resolution."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from astrollama.cli import main
from astrollama.models import resolve_tokenizer
from astrollama.train.launch import stage_python
from astrollama.train.planner import plan
from astrollama.train.recipe import load_recipe
from astrollama.train.resources import require_gpus, slurm_request, visible_gpus

REPO = Path(__file__).resolve().parents[2]
PAPER_RECIPES = sorted(
    p
    for p in (REPO / "recipes").glob("astro*.yaml")
    if not p.name.startswith("_") and not p.name.endswith("-merge.yaml")
)
pytestmark = pytest.mark.usefixtures("in_repo")


def _no_gpu_env(monkeypatch) -> None:
    for k in (
        "SLURM_JOB_ID",
        "SLURM_GPUS_ON_NODE",
        "SLURM_NODEID",
        "ASTROLLAMA_VENV",
        "ASTROLLAMA_ENV_SETUP",
    ):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def test_8b_request_matches_the_recipe_before_the_data_exists(tmp_path):
    r = load_recipe(
        REPO / "recipes" / "astrollama-3-8b-base_aic.yaml", [f"data.dataset_path={tmp_path / 'no'}"]
    )
    req = slurm_request(r)
    args = req.sbatch_args()
    assert args[:2] == ["--nodes=1", "--gpus-per-node=8"]
    assert args[2].startswith("--time=") and args[3] == "--mem=144G"  # 8 x (10 GiB ZeRO-3 shard + 8 GiB)
    assert "does not exist yet" in req.notes[0] and "papers" in req.basis
    two = slurm_request(r, nodes=2)  # 2 x 8 GPUs: half the wall clock, same memory per node
    assert two.sbatch_args()[0] == "--nodes=2" and two.time <= req.time
    # the summary row publishes its compute (32 A100 GPU-hours): 4 h on 8 GPUs -> 0-06:00:00
    s = load_recipe(REPO / "recipes" / "astrollama-3-8b-base_summary.yaml", [f"data.dataset_path={tmp_path}"])
    sreq = slurm_request(s, count_dataset=False)
    assert sreq.time == "0-06:00:00" and "A100 GPU-hours" in sreq.basis


def test_cpu_recipe_asks_for_no_gpu():
    req = slurm_request(load_recipe(REPO / "recipes" / "demo-smollm2-135m.yaml"), tokens=31_000)
    # explicitly none: a bare sbatch would inherit slurm/cpt.sh's #SBATCH --gpus-per-node=8
    assert [a for a in req.sbatch_args() if a.startswith("--gpus")] == ["--gpus-per-node=0"]
    assert req.time == "0-01:00:00" and req.mem_gib == 16


@pytest.mark.parametrize("recipe", PAPER_RECIPES, ids=lambda p: p.stem)
def test_every_paper_recipe_dry_runs_before_its_data_exists(recipe, monkeypatch, capsys):
    _no_gpu_env(monkeypatch)
    assert main(["train", "launch", str(recipe), "--dry-run"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    r = load_recipe(recipe)
    if not Path(r.data.dataset_path).exists():
        assert f"data check skipped: data.dataset_path {r.data.dataset_path} does not exist yet" in out
    assert f"--gpus-per-node={r.launch.gpus_per_node}" in out
    assert "--rdzv-id 'slurm-<SLURM_JOB_ID>-<SLURM_RESTART_COUNT>'" in out
    assert "--rdzv-id astrollama" not in out


def test_dry_run_shows_the_stage_interpreter(tmp_path, monkeypatch):
    _no_gpu_env(monkeypatch)
    repo = tmp_path / "repo"
    for venv in (".venv", ".venv-train"):
        (repo / venv / "bin").mkdir(parents=True)
        (repo / venv / "bin" / "activate").write_text("")
    assert stage_python(repo) == (
        str(repo / ".venv-train" / "bin" / "python3"),
        ".venv-train (the stage's environment)",
    )
    (repo / ".venv-train" / "bin" / "activate").unlink()
    assert stage_python(repo)[0] == str(repo / ".venv" / "bin" / "python3")
    monkeypatch.setenv("ASTROLLAMA_VENV", str(tmp_path / "mine"))
    assert stage_python(repo)[0] == str(tmp_path / "mine" / "bin" / "python3")
    # the printed command starts with it
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "astrollama.cli",
            "train",
            "launch",
            "recipes/demo-smollm2-135m.yaml",
            "--dry-run",
        ],
        cwd=REPO,
        env={**os.environ, "ASTROLLAMA_VENV": str(tmp_path / "mine"), "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert f"  {tmp_path / 'mine' / 'bin' / 'python3'} \\\n    -m torch.distributed.run" in p.stdout
    assert "note:   python: " in p.stdout and "$ASTROLLAMA_VENV" in p.stdout


def test_gpu_count_and_refusal(minimal_recipe, monkeypatch):
    _no_gpu_env(monkeypatch)
    r = load_recipe(minimal_recipe, ["launch.gpus_per_node=8"])
    n, where = visible_gpus()
    assert n == 0 and "torch.cuda.device_count()=0" in where
    with pytest.raises(Exception) as e:
        require_gpus(r, n, where)
    assert e.value.key == "launch.gpus_per_node" and "wants 8 GPU(s) per node but this job sees 0" in str(
        e.value
    )
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "4")
    assert visible_gpus() == (4, "SLURM_GPUS_ON_NODE=4")
    with pytest.raises(Exception, match="sees 4 .SLURM_GPUS_ON_NODE=4"):
        require_gpus(r, *visible_gpus())
    require_gpus(load_recipe(minimal_recipe, ["launch.gpus_per_node=8", "trainer.use_cpu=true"]), 0, "")
    require_gpus(load_recipe(minimal_recipe, ["launch.gpus_per_node=4"]), 4, "")


def test_train_run_refuses_a_gpu_recipe_without_gpus(train_recipe, train_env, tmp_path):
    """The path a cluster job takes (slurm/cpt.sh -> train run): one line, exit 2, nothing written;
    the same recipe with trainer.use_cpu=true is what the CPU tests and the demo run."""
    run_dir = tmp_path / "run"
    recipe = train_recipe(run_dir, procs=2)
    env = {k: v for k, v in train_env.items() if not k.startswith("SLURM_")}
    for extra, words in (
        ({"CUDA_VISIBLE_DEVICES": ""}, "wants 2 GPU(s) per node but this job sees 0"),
        ({"SLURM_GPUS_ON_NODE": "1"}, "wants 2 GPU(s) per node but this job sees 1 (SLURM_GPUS_ON_NODE=1)"),
    ):
        r = subprocess.run(
            ["bash", "slurm/cpt.sh", str(recipe), "trainer.use_cpu=false"],
            cwd=REPO,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
        )
        errors = [line for line in r.stderr.splitlines() if line.startswith("astrollama train: error: ")]
        assert r.returncode == 2 and len(errors) == 1, r.stderr
        assert words in errors[0] and "--gpus-per-node=2" in errors[0] and "trainer.use_cpu=true" in errors[0]
        assert not run_dir.exists()


def test_plan_before_the_data_exists(tmp_path):
    r = load_recipe(
        REPO / "recipes" / "astrollama-3-8b-base_aic.yaml", [f"data.dataset_path={tmp_path / 'no'}"]
    )
    rep = plan(r)
    assert "does not exist yet, token count skipped" in rep.token_source and rep.steps > 0
    with pytest.raises(Exception, match="pass --tokens N"):
        plan(
            load_recipe(
                REPO / "recipes" / "astrollama-3-8b-chat_aic.yaml", [f"data.dataset_path={tmp_path / 'no'}"]
            )
        )


def test_tokenizer_resolution_is_offline_first_and_never_loops(tiny_model, monkeypatch, tmp_path):
    assert resolve_tokenizer(str(tiny_model)) == str(tiny_model)  # a local path: no hub at all
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not in the Hugging Face cache .offline.*--tokenizer /models/NAME"):
        resolve_tokenizer("meta-llama/Meta-Llama-3-8B")
    # online but the hub cannot be reached: one attempt, a one-line error at once (no retry loop)
    script = (
        "import time, sys; from astrollama.models import resolve_tokenizer\n"
        "t = time.time()\n"
        "try:\n    resolve_tokenizer('meta-llama/Meta-Llama-3-8B')\nexcept ValueError as e:\n"
        "    print(round(time.time() - t, 1), e)\n"
    )
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there: connection refused
        "PYTHONPATH": str(REPO / "src"),
    }
    env.pop("HF_HUB_OFFLINE", None)
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert "the hub refused or could not be reached" in out.stdout, out.stderr
    assert float(out.stdout.split()[0]) < 15, out.stdout
    assert time.time() - t0 < 60


def test_cpt_script_asks_for_gpus():
    """slurm/cpt.sh's own request (what a bare `sbatch slurm/cpt.sh RECIPE` gets): 8 GPUs per node,
    the paper recipes' default, overridable on the command line (`--gpus-per-node=0` for CPU)."""
    directives = [
        line.split(None, 1)[1].strip()
        for line in (REPO / "slurm" / "cpt.sh").read_text().splitlines()
        if line.startswith("#SBATCH ")
    ]
    assert "--gpus-per-node=8" in directives
    assert "--requeue" in directives and "--ntasks-per-node=1" in directives
    eight = [p for p in PAPER_RECIPES if load_recipe(p).launch.gpus_per_node == 8]
    assert len(eight) >= len(PAPER_RECIPES) // 2  # the default fits most paper recipes as written
