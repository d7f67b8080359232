"""``astrollama merge``: real mergekit merges of tiny random LLaMAs (linear = the weighted average,
DARE-TIES reproducible from its seed), provenance, atomic output, hostile recipes, Slurm."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from astrollama import paper
from astrollama.cli import main
from astrollama.models import tiny_llama
from astrollama.train.merge import load_merge_recipe, mergekit_config

REPO = Path(__file__).resolve().parents[2]
W_SFT, W_INSTRUCT = 0.75, 0.25


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Three tiny LLaMAs of one architecture and vocabulary (different random weights) and one
    with a smaller vocabulary."""
    d = tmp_path_factory.mktemp("merge-models")
    return {
        "sft": tiny_llama(d / "sft", seed=1),
        "instruct": tiny_llama(d / "instruct", seed=2),
        "base": tiny_llama(d / "base", seed=3),
        "small_vocab": tiny_llama(d / "small-vocab", seed=4, vocab_size=300),
    }


LINEAR = """
reproduces: test
method: linear
models:
  sft:
    path: {sft}
    weight: 0.75
  instruct:
    path: {instruct}
    weight: 0.25
dtype: float32
output_dir: {out}
"""

DARE = """
reproduces: test
method: dare_ties
base_model: {base}
models:
  sft:
    path: {sft}
    weight: 0.75
    density: 0.5
  instruct:
    path: {instruct}
    weight: 0.25
    density: 0.5
dtype: float32
seed: 7
output_dir: {out}
"""


def _recipe(tmp_path: Path, template: str, models: dict[str, Path], out: str = "merged", **extra) -> Path:
    p = tmp_path / "recipes" / "m.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    fields = {**{k: str(v) for k, v in models.items()}, "out": str(tmp_path / out), **extra}
    p.write_text(textwrap.dedent(template).lstrip().format(**fields))
    return p


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(directory.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _merge(recipe: Path, *overrides: str) -> int:
    return main(["merge", str(recipe), *overrides])


def test_linear_merge_is_the_weighted_average_and_records_provenance(models, tmp_path):
    recipe = _recipe(tmp_path, LINEAR, models)
    assert _merge(recipe) == 0
    out = tmp_path / "merged"
    a, b, m = _tensors(models["sft"]), _tensors(models["instruct"]), _tensors(out)
    assert set(m) == set(a) and len(m) > 10
    for name, t in m.items():
        torch.testing.assert_close(t, W_SFT * a[name] + W_INSTRUCT * b[name], rtol=1e-6, atol=1e-6)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the inputs do differ
    # provenance: inputs with hashes, mergekit version and config, seed, timestamps, git commit
    prov = out / "provenance"
    record = json.loads((prov / "merge.json").read_text())
    assert record["mergekit_version"] == "0.1.5" and record["seed"] == 0 and record["method"] == "linear"
    weights = models["sft"] / "model.safetensors"
    assert record["inputs"]["models.sft.path"]["path"] == str(models["sft"])
    assert (
        record["inputs"]["models.sft.path"]["files"]["model.safetensors"]["sha256"]
        == hashlib.sha256(weights.read_bytes()).hexdigest()
    )
    assert record["started"] <= record["finished"]
    config = yaml.safe_load((prov / "mergekit.yaml").read_text())
    assert config == mergekit_config(load_merge_recipe(recipe))
    assert config["models"][0] == {"model": str(models["sft"]), "parameters": {"weight": W_SFT}}
    assert len(json.loads((prov / "git.json").read_text())["sha"]) == 40
    assert json.loads((prov / "recipe.json").read_text())["models"]["instruct"]["weight"] == W_INSTRUCT
    assert "mergekit==0.1.5" in (prov / "pip-freeze.txt").read_text()
    assert not list(tmp_path.glob(".merged.*"))  # no temporary directory left behind


def test_dare_ties_is_reproducible_from_its_seed_and_differs_from_linear(models, tmp_path):
    recipe = _recipe(tmp_path, DARE, models)
    for out in ("d1", "d2"):
        assert _merge(recipe, f"output_dir={tmp_path / out}") == 0
    assert _merge(recipe, f"output_dir={tmp_path / 'd3'}", "seed=8") == 0
    assert _merge(_recipe(tmp_path, LINEAR, models, out="lin")) == 0
    d1, d2, d3, lin = (_tensors(tmp_path / o) for o in ("d1", "d2", "d3", "lin"))
    assert all(torch.equal(d1[k], d2[k]) for k in d1)  # same seed: same bytes
    assert any(not torch.equal(d1[k], d3[k]) for k in d1)  # the seed drives the random drop
    assert any(not torch.allclose(d1[k], lin[k]) for k in d1)
    # DARE-TIES moves the base along the task vectors: where all inputs agree (norms) nothing moves
    base, sft, instruct = (_tensors(models[k]) for k in ("base", "sft", "instruct"))
    same = [k for k in d1 if torch.equal(base[k], sft[k]) and torch.equal(base[k], instruct[k])]
    assert same and all(torch.equal(d1[k], base[k]) for k in same)
    assert json.loads((tmp_path / "d3" / "provenance" / "merge.json").read_text())["seed"] == 8


def test_merged_model_loads_and_generates(models, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert _merge(_recipe(tmp_path, DARE, models)) == 0
    out = tmp_path / "merged"
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == AutoModelForCausalLM.from_pretrained(models["sft"]).config.vocab_size
    ids = tok("The Sun is a star", return_tensors="pt").input_ids
    gen = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert gen.shape[1] > ids.shape[1] and torch.equal(gen[0, : ids.shape[1]], ids[0])
    merged = _tensors(out)
    for k, v in model.state_dict().items():
        if k in merged:
            assert torch.equal(v, merged[k])


def test_dry_run_prints_the_mergekit_config_and_writes_nothing(models, tmp_path, capsys):
    from mergekit.config import MergeConfiguration

    recipe = _recipe(tmp_path, DARE, models)
    assert _merge(recipe, "--dry-run") == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == mergekit_config(load_merge_recipe(recipe))
    assert printed["merge_method"] == "dare_ties" and printed["base_model"] == str(models["base"])
    assert [m["parameters"] for m in printed["models"]] == [
        {"weight": 0.75, "density": 0.5},
        {"weight": 0.25, "density": 0.5},
    ]
    MergeConfiguration.model_validate(printed)
    assert not (tmp_path / "merged").exists()


def test_shipped_merge_recipes_validate(capsys):
    published = list(paper.ASTROSAGE["merge"].value.values())  # CPT+SFT, then the Meta instruct model
    assert published == [W_SFT, W_INSTRUCT]
    for name, method in (
        ("astrosage-8b-merge", paper.MERGE_METHOD.value),
        ("demo-smollm2-135m-merge", "linear"),
    ):
        recipe = load_merge_recipe(REPO / "recipes" / f"{name}.yaml")
        assert recipe.method == method and [m.weight for m in recipe.models.values()] == published
    assert main(["merge", str(REPO / "recipes" / "astrosage-8b-merge.yaml"), "--dry-run"]) == 0
    assert "merge_method: dare_ties" in capsys.readouterr().out


HOSTILE = [
    # (template, overrides, key named in the error, words in the error)
    (LINEAR, ["method=slerp"], "method", "'linear' or 'dare_ties'"),
    (LINEAR, ["models.sft.weight=0.65"], "models", "must sum to 1"),
    (LINEAR, ["models.sft.weight=1.5"], "models.sft.weight", "less than or equal to 1"),
    (LINEAR, ["models.sft.weight=-0.75"], "models.sft.weight", "greater than 0"),
    (LINEAR, ["models.sft.weight='0.75'"], "models.sft.weight", "is a string, not a number"),
    (LINEAR, ["models.sft.density=0.5"], "models.sft.density", "only dare_ties"),
    (LINEAR, ["models.sft.rate=0.5"], "models.sft.rate", "unknown key (allowed here: path, weight, density)"),
    (LINEAR, ["models={{sft: {{path: x, weight: 1.0}}}}"], "models", "at least 2"),
    (LINEAR, ["tokenizer_from=nope"], "tokenizer_from", "one of the models' keys"),
    (LINEAR, ["surprise=1"], "surprise", "unknown key"),
    (LINEAR, ["models.instruct.path={small_vocab}"], "models.instruct.path", "vocab_size"),
    (LINEAR, ["models.instruct.path={missing}"], "models.instruct.path", "no such checkpoint directory"),
    (LINEAR, ["models.instruct.path={not_model}"], "models.instruct.path", "no config.json"),
    (LINEAR, ["models.instruct.path={sft}"], "models.instruct.path", "is also models.sft.path"),
    (DARE, ["base_model=null"], "base_model", "required for dare_ties"),
    (DARE, ["models.sft.density=0"], "models.sft.density", "greater than 0"),
    (DARE, ["models.instruct.density=null"], "models.instruct.density", "required for dare_ties"),
    (DARE, ["base_model={small_vocab}"], "base_model", "differs from models.sft.path"),
    (DARE, ["seed=-1"], "seed", "greater than or equal to 0"),
]


@pytest.mark.parametrize(
    ("template", "overrides", "key", "words"), HOSTILE, ids=[f"{h[2]}-{i}" for i, h in enumerate(HOSTILE)]
)
def test_hostile_recipe_is_one_line_exit_2_and_writes_nothing(
    models, tmp_path, capsys, template, overrides, key, words
):
    (tmp_path / "not-a-model").mkdir()
    fields = {
        "sft": models["sft"],
        "small_vocab": models["small_vocab"],
        "missing": tmp_path / "absent",
        "not_model": tmp_path / "not-a-model",
    }
    recipe = _recipe(tmp_path, template, models)
    rc = _merge(recipe, *(o.format(**fields) for o in overrides))
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith(f"astrollama merge: error: {recipe}: {key}: "), err
    assert words in err
    assert not (tmp_path / "merged").exists() and not list(tmp_path.glob(".merged.*"))


def test_yaml_alias_and_existing_output_are_refused(models, tmp_path, capsys):
    recipe = _recipe(tmp_path, LINEAR, models)
    recipe.write_text(
        recipe.read_text().replace("weight: 0.75", "weight: &w 0.75").replace("weight: 0.25", "weight: *w")
    )
    assert _merge(recipe) == 2
    assert "YAML alias *w is not allowed" in capsys.readouterr().err
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("earlier merge")
    assert _merge(_recipe(tmp_path, LINEAR, models)) == 2
    err = capsys.readouterr().err
    assert f"output_dir: {out}: exists" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_finished_merge_is_not_redone_and_another_is_refused(models, tmp_path, capsys, caplog):
    """A resubmission (or a requeued job whose merge had finished) ends at once; a merge of other
    inputs or another recipe at that output is refused, one line, exit 2, nothing touched."""
    import shutil

    inputs = {k: shutil.copytree(models[k], tmp_path / k) for k in ("sft", "instruct")}
    recipe = _recipe(tmp_path, LINEAR, inputs)
    assert _merge(recipe) == 0
    out = tmp_path / "merged"
    caplog.set_level(logging.INFO, logger="astrollama.merge")
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    caplog.clear()
    assert _merge(recipe) == 0
    assert f"already merged: {out}" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    capsys.readouterr()
    for overrides, why in (
        (["models.sft.weight=0.7", "models.instruct.weight=0.3"], "made from a different recipe"),
        (["dtype=bfloat16"], "made from a different recipe"),
    ):
        assert _merge(recipe, *overrides) == 2
        err = capsys.readouterr().err
        assert f"output_dir: {out} holds another merge ({why})" in err and len(err.strip().splitlines()) == 1
    (inputs["instruct"] / "config.json").write_text(
        (inputs["instruct"] / "config.json").read_text().replace("{", '{"_edited": true, ', 1)
    )  # the same path, retrained or edited since the merge
    assert _merge(recipe) == 2
    err = capsys.readouterr().err
    assert "models.instruct.path: the checkpoint's files changed since" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_a_requeued_attempt_clears_only_its_own_job_temporaries(models, tmp_path, monkeypatch, caplog):
    from astrollama.train.merge import OWNER_FILE

    ours, theirs, unowned = (tmp_path / f".merged.{t}.tmp" for t in ("a1", "b2", "c3"))
    for d, job in ((ours, "41"), (theirs, "42")):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"partial")
        (d / OWNER_FILE).write_text(json.dumps({"slurm_job_id": job}))
    unowned.mkdir()
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    caplog.set_level(logging.INFO, logger="astrollama.merge")
    assert _merge(_recipe(tmp_path, LINEAR, models)) == 0
    assert not ours.exists() and theirs.is_dir() and unowned.is_dir()
    assert f"removed {ours}, left by an earlier attempt of job 41" in caplog.text
    assert f"{theirs}: left by an interrupted merge" in caplog.text
    assert not (tmp_path / "merged" / OWNER_FILE).exists()


def _mergekit_writing(tmp_path: Path) -> bool:
    """mergekit has written a file into the merge's temporary directory (not only our owner note)."""
    from astrollama.train.merge import OWNER_FILE

    return any(p.name != OWNER_FILE for p in tmp_path.glob(".merged.*.tmp/*"))


def test_killed_merge_leaves_no_model_at_the_output_path(smollm2, tmp_path):
    """kill -9 while mergekit writes (SmolLM2-135M with itself: seconds): only a temporary directory remains."""
    import shutil

    twin = shutil.copytree(smollm2, tmp_path / "twin", copy_function=os.link)  # distinct, no copy
    recipe = _recipe(tmp_path, LINEAR, {"sft": smollm2, "instruct": twin})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "astrollama", "merge", str(recipe)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    try:
        while not _mergekit_writing(tmp_path) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the merge ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "merged").exists() and list(tmp_path.glob(".merged.*.tmp"))


@pytest.mark.slurm
def test_sbatch_merge_script(slurm_cluster, models, tmp_path):
    recipe = _recipe(tmp_path, LINEAR, models)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(ASTROLLAMA_VENV=str(Path(sys.executable).parent.parent), OMP_NUM_THREADS="1")
    log = tmp_path / "merge-%j.out"
    r = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--cpus-per-task=1",
            "--mem=2G",
            "--time=10",
            f"--output={log}",
            "slurm/merge.sh",
            str(recipe),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = "\n".join(p.read_text() for p in tmp_path.glob("merge-*.out"))
    assert r.returncode == 0, r.stderr + logs[-3000:]
    assert "] python: " in logs and "[merge.sh] " in logs and f"merged model: {tmp_path / 'merged'}" in logs
    a, b, m = _tensors(models["sft"]), _tensors(models["instruct"]), _tensors(tmp_path / "merged")
    for name, t in m.items():
        torch.testing.assert_close(t, W_SFT * a[name] + W_INSTRUCT * b[name], rtol=1e-6, atol=1e-6)
    assert json.loads((tmp_path / "merged" / "provenance" / "merge.json").read_text())["inputs"]
    r = subprocess.run(["bash", "slurm/merge.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


@pytest.mark.slurm
def test_requeued_merge_job_merges_once_and_resubmission_is_a_no_op(slurm_cluster, smollm2, tmp_path):
    """sbatch slurm/merge.sh, then `scontrol requeue` while the merge runs: the next attempt removes the
    first one's temporary directory and merges again; the job completes with the merged model.
    Submitting the same job again ends at once."""
    import re
    import shutil

    twin = shutil.copytree(smollm2, tmp_path / "twin", copy_function=os.link)
    recipe = _recipe(tmp_path, LINEAR, {"sft": smollm2, "instruct": twin})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(ASTROLLAMA_VENV=str(Path(sys.executable).parent.parent), OMP_NUM_THREADS="1")
    log = tmp_path / "merge.out"
    sbatch = ["sbatch", "--cpus-per-task=1", "--mem=3G", "--time=10", f"--output={log}"]

    def state(job: str) -> tuple[str, int]:
        out = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True).stdout
        s, r = re.search(r"JobState=(\S+)", out), re.search(r"Restarts=(\d+)", out)
        return (s.group(1) if s else "UNKNOWN"), int(r.group(1)) if r else 0

    def wait_for(cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out waiting for {what}; log:\n{log.read_text()[-3000:] if log.exists() else ''}"
                )
            time.sleep(0.05)

    job = subprocess.run(
        [*sbatch, "--parsable", "slurm/merge.sh", str(recipe)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        wait_for(
            lambda: list(tmp_path.glob(".merged.*.tmp")) or (tmp_path / "merged").exists(),
            300,
            "the merge to start",
        )
        assert not (tmp_path / "merged").exists(), "the merge ended before it could be requeued"
        subprocess.run(["scontrol", "requeue", job], env=env, check=True, capture_output=True)
        wait_for(lambda: state(job) == ("COMPLETED", 1), 300, "the requeued job to complete")
    finally:
        if state(job)[0] not in ("COMPLETED", "FAILED", "CANCELLED", "UNKNOWN"):
            subprocess.run(["scancel", job], env=env, capture_output=True)
    text = log.read_text()
    assert len(re.findall(r"^\[merge\.sh\] ", text, re.M)) == 2  # two attempts, one log (append)
    assert re.search(rf"removed {tmp_path}/\.merged\.\S+\.tmp, left by an earlier attempt of job {job}", text)
    assert not list(tmp_path.glob(".merged.*.tmp"))
    a, m = _tensors(smollm2), _tensors(tmp_path / "merged")
    assert set(m) == set(a)
    for name, t in m.items():
        torch.testing.assert_close(t, (W_SFT + W_INSTRUCT) * a[name], rtol=1e-6, atol=1e-6)
    stamp = (tmp_path / "merged" / "model.safetensors").stat().st_mtime_ns
    r = subprocess.run(
        [*sbatch, "--wait", "slurm/merge.sh", str(recipe)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr + log.read_text()[-3000:]
    assert f"already merged: {tmp_path / 'merged'}" in log.read_text()
    assert (tmp_path / "merged" / "model.safetensors").stat().st_mtime_ns == stamp
