"""The finetune.py flags parse with LMFlow's OWN argument parser (the pinned commit).

Runs in the interpreter of the ``lmflow_python`` fixture (tests/train/conftest.py): the test
interpreter where ``import lmflow`` works, else ``$ASTROLLAMA_LMFLOW_PYTHON`` (scripts/test.sh
exports the one of the environment scripts/setup_train_env.sh builds); skipped otherwise, and a
failure under CI=true when an LMFlow checkout was provided but its environment did not build.

Two levels: (1) argparse level: every flag is known to
``HfArgumentParser((ModelArguments, DatasetArguments, FinetunerArguments))`` and every value
converts to the field's type; (2) the three dataclasses are built, so their ``__post_init__``
checks run, and where a DeepSpeed config is passed, transformers fills its "auto" fields from the
flags (checked against the batch plan and precision). Only where the machine cannot (no CUDA, no
deepspeed package) is ``use_cpu`` added or ``deepspeed`` dropped for level 2; level 1 always sees
the exact argv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from astrollama.lmflow_data import write_text_only
from astrollama.train.batch import BatchPlan, plan_batch
from astrollama.train.lmflow import LMFLOW_COMMIT, finetune_args
from astrollama.train.recipe import Recipe, load_recipe

REPO = Path(__file__).resolve().parents[2]

PARSE = r"""
import importlib.util, json, subprocess, sys, warnings
warnings.simplefilter("ignore")
import lmflow
from lmflow.args import DatasetArguments, FinetunerArguments, ModelArguments
from transformers import HfArgumentParser
argvs = json.loads(sys.stdin.read())
parser = HfArgumentParser((ModelArguments, DatasetArguments, FinetunerArguments))
import torch
for argv in argvs:
    ns, unknown = parser.parse_known_args(argv)
    relaxed = []
    extra = []
    if not torch.cuda.is_available() and "--bf16" in argv:
        extra += ["--use_cpu", "True"]; relaxed.append("use_cpu")
    args = list(argv)
    if "--deepspeed" in args and importlib.util.find_spec("deepspeed") is None:
        i = args.index("--deepspeed"); del args[i:i + 2]; relaxed.append("deepspeed")
    model, data, tune = parser.parse_args_into_dataclasses(args=args + extra)
    try:
        commit = subprocess.run(["git", "-C", str(__import__("pathlib").Path(lmflow.__file__).parents[2]),
                                 "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    ds = None
    if getattr(tune, "hf_deepspeed_config", None) is not None:  # the "auto" fields, filled by transformers
        hf = tune.hf_deepspeed_config
        hf.trainer_config_process(tune)
        c = hf.config
        ds = {k: c.get(k) for k in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping")}
        ds["bf16"] = c.get("bf16", {}).get("enabled")
        ds["fp16"] = c.get("fp16", {}).get("enabled")
    print(json.dumps({
        "deepspeed": ds,
        "unknown": unknown, "relaxed": relaxed, "lmflow_version": lmflow.__version__, "commit": commit,
        "ns": {k: v for k, v in vars(ns).items() if isinstance(v, (str, int, float, bool, list, type(None)))},
        "model_name_or_path": model.model_name_or_path, "use_lora": model.use_lora,
        "lora_target_modules": model.lora_target_modules, "lora_r": model.lora_r,
        "block_size": data.block_size, "disable_group_texts": data.disable_group_texts,
        "conversation_template": data.conversation_template, "train_on_prompt": data.train_on_prompt,
        "dataset_path": data.dataset_path, "output_dir": tune.output_dir,
        "per_device_train_batch_size": tune.per_device_train_batch_size,
        "gradient_accumulation_steps": tune.gradient_accumulation_steps,
        "learning_rate": tune.learning_rate, "warmup_steps": tune.warmup_steps,
        "average_tokens_across_devices": tune.average_tokens_across_devices,
        "ddp_timeout": tune.ddp_timeout, "save_strategy": str(getattr(tune.save_strategy, "value", tune.save_strategy)),
        "do_eval": tune.do_eval, "do_train": tune.do_train, "overwrite_output_dir": getattr(tune, "overwrite_output_dir", None),
    }))
"""


pytestmark = pytest.mark.lmflow


PAPER = sorted(p.name for p in (REPO / "recipes").glob("astrollama-*.yaml"))
DEMO = "demo-smollm2-135m.yaml"


@pytest.fixture(scope="module")
def parsed(lmflow_python, tmp_path_factory, smollm2) -> dict[str, tuple[dict, Recipe, BatchPlan, Path, Path]]:
    """Every recipe's flags parsed by LMFlow, in ONE interpreter (importing LMFlow takes ~10-20 s):
    name -> (what LMFlow parsed, recipe, batch plan, dataset dir, output dir)."""
    data = tmp_path_factory.mktemp("data") / "train"
    write_text_only(data / "shard-00000.json", ["The Sun is a G-type main-sequence star."] * 3)
    cases = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)  # recipes' relative paths (ds_configs/...) resolve against the repository root
        for name in [*PAPER, DEMO]:
            extra = [f"data.eval_dataset_path={data}"] if name == DEMO else []
            recipe = load_recipe(REPO / "recipes" / name, [f"data.dataset_path={data}", *extra])
            plan = plan_batch(
                recipe.batch.global_batch_size,
                recipe.launch.nodes * recipe.launch.gpus_per_node,
                recipe.batch.max_micro_batch_size,
            )
            out = tmp_path_factory.mktemp("run") / "ckpt"
            cases[name] = (recipe, plan, data, out, finetune_args(recipe, plan, output_dir=out))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    p = subprocess.run(
        [str(lmflow_python), "-c", PARSE],
        input=json.dumps([c[-1] for c in cases.values()]),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    results = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(cases), p.stdout[-3000:]
    return {name: (got, *case[:4]) for (name, case), got in zip(cases.items(), results, strict=True)}


@pytest.mark.parametrize("name", PAPER)
def test_paper_recipe_flags_parse_with_lmflow(name, parsed):
    got, recipe, plan, data, out = parsed[name]
    assert got["unknown"] == [], got["unknown"]
    assert got["commit"] in ("", LMFLOW_COMMIT), (
        f"LMFlow checkout is at {got['commit']}, pinned {LMFLOW_COMMIT}"
    )
    assert got["block_size"] == recipe.data.block_size
    assert got["disable_group_texts"] is (not recipe.data.packing)
    assert got["dataset_path"] == str(data)
    assert got["output_dir"] == str(out)
    assert got["per_device_train_batch_size"] == plan.per_device_train_batch_size
    assert got["gradient_accumulation_steps"] == plan.gradient_accumulation_steps
    assert got["learning_rate"] == recipe.trainer["learning_rate"]
    assert got["warmup_steps"] == recipe.trainer["warmup_steps"]
    assert got["average_tokens_across_devices"] is False
    assert got["ddp_timeout"] == 72000 and got["save_strategy"] == "steps"
    assert got["do_eval"] is False and got["do_train"] is True and not got["overwrite_output_dir"]
    assert got["use_lora"] is (recipe.model.lora is not None)
    assert got["conversation_template"] == recipe.data.conversation_template  # SFT recipes: the template
    assert got["train_on_prompt"] is False  # LMFlow's default, passed explicitly for SFT: assistant-only loss
    if recipe.launch.deepspeed is not None and "deepspeed" not in got["relaxed"]:
        ds = got["deepspeed"]  # DeepSpeed's "auto" fields as transformers fills them from the flags
        assert ds["train_micro_batch_size_per_gpu"] == plan.per_device_train_batch_size
        assert ds["gradient_accumulation_steps"] == plan.gradient_accumulation_steps
        assert ds["gradient_clipping"] == recipe.trainer.get("max_grad_norm", 1.0)
        assert ds["bf16"] is bool(recipe.trainer.get("bf16")) and ds["fp16"] is bool(
            recipe.trainer.get("fp16")
        )
    if recipe.model.lora is not None:
        assert got["lora_r"] == recipe.model.lora.r
        assert got["lora_target_modules"] == recipe.model.lora.target_modules


def test_demo_recipe_flags_parse_with_lmflow(parsed, smollm2):
    got = parsed[DEMO][0]
    assert got["unknown"] == [] and got["model_name_or_path"] == str(smollm2)
    assert got["disable_group_texts"] is False and got["block_size"] == 256


FIND = r"""
import json, sys
from astrollama.train.launch import build_launch
from astrollama.train.recipe import load_recipe
recipe = load_recipe(sys.argv[1], [f"data.dataset_path={sys.argv[2]}"])
plan = build_launch(recipe, nodes=["n1", "n2"], gpus_per_node=8)  # not a dry run: LMFlow must be found
import lmflow
print(json.dumps({"engine": plan.engine, "argv": plan.commands[0], "lmflow": lmflow.__file__}))
"""


def test_installed_lmflow_checkout_is_found(text_only_dir, in_repo, lmflow_python):
    """An editable LMFlow install (pip install -e CHECKOUT, as envs/train-cluster.txt does) is found
    without any setting, and the command runs its examples/finetune.py."""
    env = {k: v for k, v in os.environ.items() if k != "ASTROLLAMA_LMFLOW_DIR"}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO / "src")}
    p = subprocess.run(
        [
            str(lmflow_python),
            "-c",
            FIND,
            str(REPO / "recipes" / "astrollama-3-8b-base_summary.yaml"),
            str(text_only_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    checkout = Path(got["lmflow"]).resolve().parents[2]
    assert got["engine"] == "lmflow"
    assert str(checkout / "examples" / "finetune.py") in got["argv"]
