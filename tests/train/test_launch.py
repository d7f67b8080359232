"""Per-node torchrun commands, engine choice, dry-run CLI and the one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from astrollama.train.batch import BatchError
from astrollama.train.launch import LMFLOW_PLACEHOLDER, build_launch
from astrollama.train.recipe import RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("in_repo")
SUMMARY = REPO / "recipes" / "astrollama-3-8b-base_summary.yaml"


def _flags(argv: list[str]) -> dict[str, str]:
    """--key value pairs of an argv (the value of a bare flag is '')."""
    out: dict[str, str] = {}
    for i, a in enumerate(argv):
        if a.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            out[a[2:]] = "" if nxt.startswith("--") else nxt
    return out


@pytest.fixture
def summary(text_only_dir, tmp_path):
    return load_recipe(SUMMARY, [f"data.dataset_path={text_only_dir}", f"launch.run_dir={tmp_path / 'run'}"])


@pytest.mark.parametrize(("nodes", "micro"), [(1, 12), (2, 6), (4, 3), (12, 1)])
def test_summary_recipe_keeps_global_batch_96(summary, nodes, micro):
    hosts = [f"node{i:03d}" for i in range(1, nodes + 1)]
    plan = build_launch(summary, nodes=hosts, gpus_per_node=8, dry_run=True)
    assert len(plan.commands) == nodes and plan.nodes == hosts
    for argv in plan.commands:
        f = _flags(argv)
        assert int(f["nnodes"]) == nodes and int(f["nproc-per-node"]) == 8
        assert f["rdzv-backend"] == "c10d" and f["rdzv-endpoint"] == "node001:29500"
        assert int(f["per_device_train_batch_size"]) == micro
        effective = nodes * 8 * int(f["per_device_train_batch_size"]) * int(f["gradient_accumulation_steps"])
        assert effective == 96
        assert f["gradient_accumulation_steps"] == "1"  # the card: no gradient accumulation
    assert plan.commands[0] == plan.commands[-1]


@pytest.mark.parametrize("nodes", [5, 7, 10])
def test_summary_recipe_refuses_allocations_that_cannot_make_96(summary, nodes):
    with pytest.raises(BatchError) as e:
        build_launch(summary, nodes=[f"n{i}" for i in range(nodes)], gpus_per_node=8, dry_run=True)
    assert f"96 is not divisible by the {nodes * 8} training processes" in str(e.value)


def test_lmflow_traps_are_avoided(summary, tmp_path):
    plan = build_launch(summary, nodes=["a", "b"], gpus_per_node=8, dry_run=True)
    argv = plan.commands[0]
    f = _flags(argv)
    assert "overwrite_output_dir" not in f and "do_eval" not in f
    assert f["block_size"] == "512" and f["disable_group_texts"] == "True"  # packing off, explicit
    assert Path(f["dataset_path"]).is_dir()
    assert f["ddp_timeout"] == "72000" and f["average_tokens_across_devices"] == "False"
    assert f["save_strategy"] == "steps" and f["save_steps"] == "500"
    assert f["output_dir"] == str(tmp_path / "run" / "checkpoints") == str(plan.output_dir)
    assert plan.log_dir == tmp_path / "run" / "logs" and not plan.log_dir.is_relative_to(plan.output_dir)
    assert f["deepspeed"] == str(REPO / "ds_configs" / "zero3.json")
    assert f["learning_rate"] == "2e-05" and f["bf16"] == "True" and f["lr_scheduler_type"] == "cosine"
    assert argv.count(LMFLOW_PLACEHOLDER) == 1 and plan.engine == "lmflow"
    assert any("LMFlow not found" in n for n in plan.notes)
    assert not (tmp_path / "run").exists()  # building a plan creates nothing


def test_paper_recipe_never_falls_back_to_local(summary, monkeypatch):
    monkeypatch.delenv("ASTROLLAMA_LMFLOW_DIR", raising=False)
    with pytest.raises(RecipeError) as e:
        build_launch(summary, nodes=["a"], gpus_per_node=8)
    assert e.value.key == "launch.engine" and "launch.engine=local" in e.value.problem


def test_lmflow_checkout_from_environment(summary, tmp_path, monkeypatch):
    checkout = tmp_path / "LMFlow"
    (checkout / "examples").mkdir(parents=True)
    (checkout / "examples" / "finetune.py").write_text("")
    monkeypatch.setenv("ASTROLLAMA_LMFLOW_DIR", str(checkout))
    plan = build_launch(summary, nodes=["a"], gpus_per_node=8)
    assert plan.engine == "lmflow" and str(checkout / "examples" / "finetune.py") in plan.commands[0]
    assert not plan.notes


def test_local_engine_and_auto(minimal_recipe, monkeypatch, tmp_path):
    monkeypatch.delenv("ASTROLLAMA_LMFLOW_DIR", raising=False)
    for overrides in ([], ["launch.engine=auto"]):
        r = load_recipe(minimal_recipe, overrides)
        plan = build_launch(r, nodes=["localhost"], gpus_per_node=1, rdzv_port=29999, python="/py")
        argv = plan.commands[0]
        assert plan.engine == "local"
        assert argv[:3] == ["/py", "-m", "torch.distributed.run"]
        i = argv.index("-m", 3)
        assert argv[i + 1] == "astrollama.train.engine"
        f = _flags(argv)
        assert f["rdzv-endpoint"] == "localhost:29999" and f["nnodes"] == "1"
        assert f["disable_group_texts"] == "False"  # packing on
        assert "deepspeed" not in f


def test_missing_dataset_directory(minimal_recipe, tmp_path):
    r = load_recipe(minimal_recipe, [f"data.dataset_path={tmp_path / 'nope'}"])
    with pytest.raises(RecipeError) as e:
        build_launch(r, nodes=["a"], gpus_per_node=1)
    assert e.value.key == "data.dataset_path" and "does not exist" in e.value.problem
    assert build_launch(r, nodes=["a"], gpus_per_node=1, check_data=False).commands


# ----------------------------------------------------------------------------------------------
# The CLI in a subprocess: what a user sees
# ----------------------------------------------------------------------------------------------
def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ASTROLLAMA_LMFLOW_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "astrollama.cli", "train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dry_run_cli_prints_every_node(text_only_dir):
    p = _cli(
        "launch",
        str(SUMMARY),
        f"data.dataset_path={text_only_dir}",
        "--nodes",
        "4",
        "--gpus-per-node",
        "8",
        "--dry-run",
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "global batch 96 = 32 processes (4 nodes x 8) x micro-batch 3 x gradient accumulation 1" in out
    for host in ("node001", "node002", "node003", "node004"):
        assert f"# node {int(host[-3:]) - 1}: {host}" in out
    assert out.count("--rdzv-endpoint node001:29500") == 4
    assert out.count(f'"{LMFLOW_PLACEHOLDER}"') == 4


def test_launch_without_dry_run_refuses(minimal_recipe):
    p = _cli("launch", str(minimal_recipe))
    assert p.returncode == 2 and "slurm/cpt.sh" in p.stderr


@pytest.mark.parametrize(
    ("case", "key", "words"),
    [
        ("unknown key", "trainer.learning_rat", "unknown key"),
        ("string number", "trainer.learning_rate", "'2e-5' is a string"),
        ("dataset is a file", "data.dataset_path", "must be a directory of *.json files"),
        ("batch not divisible", "batch.global_batch_size", "8 is not divisible by the 3 training processes"),
        ("missing deepspeed", "launch.deepspeed", "DeepSpeed config not found"),
    ],
)
def test_bad_recipes_fail_with_one_line(minimal_recipe, tmp_path, case, key, words):
    text = minimal_recipe.read_text()
    args = ["--nodes", "1", "--gpus-per-node", "1"]
    if case == "unknown key":
        text = text.replace("learning_rate: 1.0e-4", "learning_rat: 1.0e-4")
    elif case == "string number":
        text = text.replace("learning_rate: 1.0e-4", "learning_rate: 2e-5")
    elif case == "dataset is a file":  # a missing one is skipped by the dry-run (test_resources.py)
        (tmp_path / "afile").write_text("{}")
        text = text.replace("dataset_path: ", f"dataset_path: {tmp_path}/afile #")
    elif case == "batch not divisible":
        args = ["--nodes", "1", "--gpus-per-node", "3"]
    elif case == "missing deepspeed":
        text = text.replace("engine: local", "engine: local\n  deepspeed: ds_configs/zero9.json")
    text = text.replace("engine: local", f"engine: local\n  run_dir: {tmp_path / 'run'}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    p = _cli("launch", str(bad), *args, "--dry-run")
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    prefix = "astrollama train: error: "
    assert lines[0].startswith(f"{prefix}{bad}: {key}: ") or lines[0].startswith(
        f"{prefix}{bad.resolve()}: {key}: "
    )
    assert words in lines[0]
    assert p.stdout == "" and not (tmp_path / "run").exists()
