"""Hostile inputs to ``astrollama train``: recipes, overrides, DeepSpeed configs, shards, model
configs, command-line ranges, checkpoint directories.

Every case asserts exit 2, one line ``astrollama train: error: <file>: <field>: <problem>``, no
traceback, and that nothing under the working directory was written or changed (no ``runs/``, no
``provenance/``, no ``logs/``). Cases run in-process (tests/hostile/conftest.py).
"""

from __future__ import annotations

import json
import pickle
import textwrap
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from astrollama.lmflow_data import write_text_only

RECIPE = """
name: hostile
reproduces: "none: hostile-input test"
model:
  name_or_path: {model}
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
  use_cpu: true  # CPU on purpose (a GPU recipe is refused on a node without GPUs)
  learning_rate: 1.0e-4
  max_steps: 4
"""

ARCH = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "vocab_size": 512,
    "num_attention_heads": 4,
    "max_position_embeddings": 1024,
}


@dataclass
class Work:
    root: Path
    recipe: Path
    data: Path
    model: Path

    def edit(self, old: str, new: str) -> None:
        text = self.recipe.read_text()
        assert old in text, old
        self.recipe.write_text(text.replace(old, new, 1))

    def shard(self, raw: bytes | str, name: str = "shard-00001.json") -> Path:
        p = self.data / name
        p.write_bytes(raw.encode() if isinstance(raw, str) else raw)
        return p

    def ds(self, config: object | bytes) -> Path:
        p = self.root / "ds.json"
        p.write_bytes(config if isinstance(config, bytes) else json.dumps(config).encode())
        self.edit("  engine: local\n", f"  engine: local\n  deepspeed: {p}\n")
        return p


@pytest.fixture
def w(tmp_path: Path) -> Work:
    data, model = tmp_path / "data", tmp_path / "model"
    write_text_only(data / "shard-00000.json", ["Quasars are active galactic nuclei."] * 4)
    model.mkdir()
    (model / "config.json").write_text(json.dumps(ARCH))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent(RECIPE).format(model=model, data=data).lstrip())
    return Work(tmp_path, recipe, data, model)


def dry(w: Work, *extra: str) -> list[str]:
    return ["train", "launch", str(w.recipe), *extra, "--dry-run"]


def plan(w: Work, *extra: str) -> list[str]:
    return ["train", "plan", str(w.recipe), *extra]


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

# id -> (setup returning argv, fragments the one-line message must hold)
Case = tuple[Callable[[Work], list[str]], list[str]]
CASES: dict[str, Case] = {
    # ---- recipes ---------------------------------------------------------------------------
    "yaml alias bomb": (
        lambda w: (w.recipe.write_text(BOMB + w.recipe.read_text()), dry(w))[1],
        ["r.yaml: (yaml):", "alias"],
    ),
    "yaml single alias": (
        lambda w: (
            w.edit("  block_size: 64", "  block_size: &b 64\n  preprocessing_num_workers: *b"),
            dry(w),
        )[1],
        ["(yaml)", "alias *b"],
    ),
    "recipe not UTF-8": (
        lambda w: (w.recipe.write_bytes(w.recipe.read_bytes().replace(b"hostile", b"h\xffx")), dry(w))[1],
        ["r.yaml: (file): not UTF-8"],
    ),
    "recipe is a directory": (
        lambda w: ["train", "launch", str(w.data), "--dry-run"],
        ["/data: (file): is a directory"],
    ),
    "recipe missing": (
        lambda w: ["train", "plan", str(w.root / "nope.yaml"), "--tokens", "1e6"],
        ["nope.yaml: (file): no such file"],
    ),
    "recipe top level is a list": (
        lambda w: (w.recipe.write_text("- a\n- b\n"), dry(w))[1],
        ["r.yaml: (top level):"],
    ),
    "duplicate key": (
        lambda w: (w.edit("  block_size: 64", "  block_size: 64\n  block_size: 32"), dry(w))[1],
        ["(yaml)", "duplicate key 'block_size'"],
    ),
    "base not UTF-8": (
        lambda w: (
            (w.root / "_b.yaml").write_bytes(b"x: \xfe\n"),
            w.edit("name: hostile", "base: _b.yaml\nname: hostile"),
            dry(w),
        )[2],
        ["_b.yaml: (file): not UTF-8"],
    ),
    "base cycle": (
        lambda w: (w.edit("name: hostile", "base: r.yaml\nname: hostile"), dry(w))[1],
        ["base: inheritance cycle"],
    ),
    "override with newline": (lambda w: dry(w, "name=x\nevil: 1"), ["control character"]),
    "override with carriage return": (
        lambda w: dry(w, "trainer.learning_rate=1.0e-4\r"),
        ["control character"],
    ),
    "negative learning rate": (
        lambda w: dry(w, "trainer.learning_rate=-1.0e-4"),
        ["r.yaml: trainer.learning_rate: must be > 0.0"],
    ),
    "NaN learning rate": (
        lambda w: (w.edit("learning_rate: 1.0e-4", "learning_rate: .nan"), dry(w))[1],
        ["trainer.learning_rate: must be a finite number"],
    ),
    "infinite learning rate": (
        lambda w: dry(w, "trainer.learning_rate=.inf"),
        ["trainer.learning_rate: must be a finite number"],
    ),
    "negative epochs": (
        lambda w: dry(w, "trainer.num_train_epochs=-2.0"),
        ["trainer.num_train_epochs: must be > 0"],
    ),
    "zero max_steps": (lambda w: dry(w, "trainer.max_steps=0"), ["trainer.max_steps:"]),
    "negative weight decay": (
        lambda w: dry(w, "trainer.weight_decay=-0.1"),
        ["trainer.weight_decay: must be >= 0"],
    ),
    "NaN LoRA dropout": (
        lambda w: dry(w, "model.lora={r: 8, alpha: 16, dropout: .nan}"),
        ["model.lora.dropout"],
    ),
    "name escapes runs/": (
        lambda w: dry(w, "name=../../tmp/x"),
        ["r.yaml: name: must be one safe path component"],
    ),
    "name with slash in file": (lambda w: (w.edit("name: hostile", "name: a/b"), dry(w))[1], ["name:"]),
    "name is dot-dot": (lambda w: dry(w, "name=.."), ["name: must be one safe path component"]),
    "run_dir is a file": (
        lambda w: ((w.root / "afile").write_text("x"), dry(w, f"launch.run_dir={w.root / 'afile'}"))[1],
        ["launch.run_dir:", "afile exists and is not a directory"],
    ),
    "run_dir below a file": (
        lambda w: ((w.root / "afile").write_text("x"), dry(w, f"launch.run_dir={w.root / 'afile' / 'run'}"))[
            1
        ],
        ["launch.run_dir:", "not a directory"],
    ),
    "huge global batch": (
        lambda w: dry(w, "batch.global_batch_size=100000000001"),
        ["r.yaml: batch.global_batch_size:"],
    ),
    "huge micro batch": (
        lambda w: dry(w, "batch.max_micro_batch_size=100000000001"),
        ["batch.max_micro_batch_size:"],
    ),
    "recipe rdzv_port 70000": (lambda w: dry(w, "launch.rdzv_port=70000"), ["launch.rdzv_port:"]),
    "recipe nodes 0": (lambda w: dry(w, "launch.nodes=0"), ["launch.nodes:"]),
    "recipe gpus_per_node 1000": (
        lambda w: plan(w, "launch.gpus_per_node=1000", "--tokens", "1e6"),
        ["launch.gpus_per_node:"],
    ),
    "unknown section key": (lambda w: dry(w, "data.shuffle=true"), ["data.shuffle: unknown key"]),
    # ---- launch command line ---------------------------------------------------------------
    "--rdzv-port 70000": (lambda w: dry(w, "--rdzv-port", "70000"), ["launch.rdzv_port: must be a TCP port"]),
    "--rdzv-port 0 on two nodes": (
        lambda w: dry(w, "--nodes", "2", "--rdzv-port", "0"),
        ["launch.rdzv_port:"],
    ),
    "--rdzv-port -1": (lambda w: dry(w, "--rdzv-port", "-1"), ["launch.rdzv_port:"]),
    "--nodes 0": (lambda w: dry(w, "--nodes", "0"), ["launch.nodes (--nodes): must be in 1..4096"]),
    "--nodes 10**9": (lambda w: dry(w, "--nodes", "1000000000"), ["launch.nodes (--nodes):"]),
    "--gpus-per-node 0": (
        lambda w: dry(w, "--nodes", "1", "--gpus-per-node", "0"),
        ["launch.gpus_per_node:"],
    ),
    "--gpus-per-node 10**6": (
        lambda w: dry(w, "--nodes", "1", "--gpus-per-node", "1000000"),
        ["launch.gpus_per_node:"],
    ),
    # ---- DeepSpeed configs -----------------------------------------------------------------
    "deepspeed not UTF-8": (
        lambda w: (w.ds(b'{"bf16": {"enabled": "\xff"}}'), dry(w))[1],
        ["launch.deepspeed:", "ds.json: not UTF-8"],
    ),
    "deepspeed bf16 true": (
        lambda w: (w.ds({"bf16": True}), dry(w))[1],
        ["launch.deepspeed:", "ds.json: bf16: must be an object"],
    ),
    "deepspeed stage three": (
        lambda w: (w.ds({"zero_optimization": {"stage": "three"}}), dry(w))[1],
        ["ds.json: zero_optimization.stage: must be the integer 0, 1, 2 or 3"],
    ),
    "deepspeed stage 7": (
        lambda w: (w.ds({"zero_optimization": {"stage": 7}}), dry(w))[1],
        ["zero_optimization.stage"],
    ),
    "deepspeed zero section a list": (
        lambda w: (w.ds({"zero_optimization": [3]}), dry(w))[1],
        ["ds.json: zero_optimization: must be an object"],
    ),
    "deepspeed offload a string": (
        lambda w: (w.ds({"zero_optimization": {"stage": 3, "offload_optimizer": "cpu"}}), dry(w))[1],
        ["zero_optimization.offload_optimizer"],
    ),
    "deepspeed clipping text": (
        lambda w: (w.ds({"gradient_clipping": "one"}), dry(w))[1],
        ["ds.json: gradient_clipping: must be a number"],
    ),
    "deepspeed batch true": (lambda w: (w.ds({"train_batch_size": True}), dry(w))[1], ["train_batch_size"]),
    "deepspeed invalid JSON": (
        lambda w: (w.ds(b'{"bf16": '), dry(w))[1],
        ["launch.deepspeed:", "not valid JSON"],
    ),
    "deepspeed a list": (lambda w: (w.ds([1, 2]), dry(w))[1], ["must hold a JSON object"]),
    "deepspeed in plan": (
        lambda w: (w.ds({"fp16": "yes"}), plan(w, "--tokens", "1e6"))[1],
        ["ds.json: fp16:"],
    ),
    # ---- shards: checked before launch as LMFlow will read them ----------------------------
    "truncated shard": (
        lambda w: (w.shard(_shard(["a b c"] * 5)[:-9]), dry(w))[1],
        ["shard-00001.json: (json):", "truncated"],
    ),
    "non-ASCII shard": (
        lambda w: (w.shard('{"type": "text_only", "instances": [{"text": "caf\u00e9"}]}'), dry(w))[1],
        ["shard-00001.json: (encoding): non-ASCII byte at offset"],
    ),
    "type not first": (
        lambda w: (w.shard('{"instances": [{"text": "a"}], "type": "text_only"}'), dry(w))[1],
        ['shard-00001.json: type: "type" must be the first key'],
    ),
    "type not text_only": (
        lambda w: (w.shard('{"type": "conversation", "instances": [{"text": "a"}]}'), dry(w))[1],
        ["shard-00001.json: type: is 'conversation'"],
    ),
    "instances not a list": (
        lambda w: (w.shard('{"type": "text_only", "instances": {"text": "a"}}'), dry(w))[1],
        ["shard-00001.json: instances: must be a list"],
    ),
    "instance extra key": (
        lambda w: (w.shard('{"type": "text_only", "instances": [{"text": "a", "id": 1}]}'), dry(w))[1],
        ["shard-00001.json: instances[0]:"],
    ),
    "instance text a number": (
        lambda w: (w.shard('{"type": "text_only", "instances": [{"text": "a"}, {"text": 5}]}'), dry(w))[1],
        ["shard-00001.json: instances[1].text: must be a string"],
    ),
    "shard top level a list": (
        lambda w: (w.shard('[{"type": "text_only"}]'), dry(w))[1],
        ["shard-00001.json: type:"],
    ),
    "empty shard": (lambda w: (w.shard(b""), dry(w))[1], ["shard-00001.json: type:"]),
    "dataset without instances": (
        lambda w: (
            (w.data / "shard-00000.json").unlink(),
            w.shard('{"type": "text_only", "instances": []}'),
            dry(w),
        )[2],
        ["data.dataset_path:", "no instances"],
    ),
    "dataset dir without shards": (
        lambda w: ((w.root / "empty").mkdir(), dry(w, f"data.dataset_path={w.root / 'empty'}"))[1],
        ["data.dataset_path:", "no *.json files"],
    ),
    "dataset path is a file": (
        lambda w: dry(w, f"data.dataset_path={w.model / 'config.json'}"),
        ["data.dataset_path:", "not a file"],
    ),
    "eval dataset truncated": (
        lambda w: (
            (w.root / "ev").mkdir(),
            (w.root / "ev" / "e.json").write_text('{"type'),
            dry(w, f"data.eval_dataset_path={w.root / 'ev'}"),
        )[2],
        ["data.eval_dataset_path:", "e.json: type:"],
    ),
    # ---- train plan -------------------------------------------------------------------------
    "plan --tokens nan": (
        lambda w: plan(w, "--tokens", "nan"),
        ["r.yaml: --tokens: must be a positive finite"],
    ),
    "plan --tokens inf": (lambda w: plan(w, "--tokens", "inf"), ["--tokens:"]),
    "plan --tokens -5": (lambda w: plan(w, "--tokens", "-5"), ["--tokens:"]),
    "plan --tokens 1e300": (lambda w: plan(w, "--tokens", "1e300"), ["--tokens:"]),
    "plan --nodes 0": (
        lambda w: plan(w, "--tokens", "1e6", "--nodes", "0"),
        ["r.yaml: --nodes: must be in 1..4096"],
    ),
    "plan --gpus-per-node 0": (
        lambda w: plan(w, "--tokens", "1e6", "--gpus-per-node", "0"),
        ["--gpus-per-node:"],
    ),
    "plan --mfu nan": (lambda w: plan(w, "--tokens", "1e6", "--mfu", "nan"), ["--mfu:"]),
    "plan truncated shard": (
        lambda w: (w.shard(_shard(["x"])[:-3]), plan(w, "--tokenizer", str(w.model)))[1],
        ["shard-00001.json: (json):"],
    ),
    "plan non-ASCII shard": (
        lambda w: (
            w.shard(_shard(["x"]).replace("x", "\u00e9")),
            plan(w, "--dataset", str(w.data), "--tokenizer", str(w.model)),
        )[1],
        ["shard-00001.json: (encoding):"],
    ),
    "plan broken config.json": (
        lambda w: ((w.model / "config.json").write_text('{"hidden_size": 6'), plan(w, "--tokens", "1e6"))[1],
        ["config.json: (json): not a valid"],
    ),
    "plan config.json not UTF-8": (
        lambda w: ((w.model / "config.json").write_bytes(b'{"a": "\xff"}'), plan(w, "--tokens", "1e6"))[1],
        ["config.json: (json):"],
    ),
    "plan config.json wrong type": (
        lambda w: (
            (w.model / "config.json").write_text(json.dumps({**ARCH, "hidden_size": "64"})),
            plan(w, "--tokens", "1e6"),
        )[1],
        ["config.json: hidden_size: must be a positive integer"],
    ),
    "plan config.json a list": (
        lambda w: ((w.model / "config.json").write_text("[]"), plan(w, "--tokens", "1e6"))[1],
        ["config.json: (top level)"],
    ),
    # ---- train run: refused before provenance/ and logs/ exist -------------------------------
    "run missing model": (
        lambda w: ["train", "run", str(w.recipe), f"model.name_or_path={w.root / 'gone'}"],
        ["r.yaml: model.name_or_path:", "gone is not a directory"],
    ),
    "run model without config": (
        lambda w: ((w.model / "config.json").unlink(), ["train", "run", str(w.recipe)])[1],
        ["model.name_or_path:", "no config.json"],
    ),
    "run truncated shard": (
        lambda w: (w.shard(_shard(["a"] * 3)[:-2]), ["train", "run", str(w.recipe)])[1],
        ["r.yaml: data.dataset_path:", "shard-00001.json: (json):"],
    ),
    "run override newline": (
        lambda w: ["train", "run", str(w.recipe), "reproduces=x\nname: evil"],
        ["control character"],
    ),
}


def _shard(texts: list[str]) -> str:
    return '{"type": "text_only", "instances": ' + json.dumps([{"text": t} for t in texts]) + "}\n"


@pytest.mark.parametrize("case", list(CASES))
def test_train_refuses_hostile_input(case: str, w: Work, refuse):
    setup, expect = CASES[case]
    argv = setup(w)
    t0 = time.monotonic()
    refuse(argv, w.root, expect=expect, cwd=w.root)
    assert time.monotonic() - t0 < 30, "a hostile input must be refused promptly"
    assert not (w.root / "runs").exists()


def test_refusal_happens_before_provenance_even_with_a_valid_rest(w: Work, refuse):
    """A real run with a missing model leaves no runs/<name>/{provenance,logs}: the checks come first."""
    r = refuse(
        ["train", "run", str(w.recipe), f"model.name_or_path={w.root / 'missing'}"], w.root, cwd=w.root
    )
    assert r.stdout == ""


def test_the_real_entry_point_refuses_the_same_way(w: Work, refuse):
    """``python -m astrollama`` in a fresh interpreter: exit 2, one line, no traceback, nothing written."""
    w.recipe.write_text(BOMB + w.recipe.read_text())
    refuse(
        ["train", "validate", str(w.recipe)],
        w.root,
        expect=["r.yaml: (yaml):", "alias"],
        cwd=w.root,
        subprocess=True,
    )
    assert not (w.root / "runs").exists()


# ---- checkpoints: a run directory is untrusted; completeness never unpickles --------------------
class _Payload:
    def __reduce__(self):
        import os

        return (os.mkdir, (MARKER[0],))


MARKER: list[str] = [""]


def _checkpoint(d: Path, rng: bytes) -> Path:
    d.mkdir(parents=True)
    (d / "trainer_state.json").write_text(json.dumps({"global_step": int(d.name.split("-")[1])}))
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt"):
        (d / name).write_bytes(b"x" * 8)
    (d / "rng_state.pth").write_bytes(rng)
    return d


@pytest.mark.parametrize("form", ["raw pickle", "torch.save zip"])
def test_planted_pickle_in_a_checkpoint_never_runs(form: str, tmp_path: Path):
    from astrollama.train.checkpoints import check_checkpoint, latest_complete_checkpoint

    MARKER[0] = str(tmp_path / "pwned")
    evil = pickle.dumps(_Payload(), protocol=2)
    if form == "torch.save zip":  # the layout torch.save writes, with the payload as data.pkl
        zpath = tmp_path / "evil.zip"
        with zipfile.ZipFile(zpath, "w") as z:
            z.writestr("archive/data.pkl", evil)
            z.writestr("archive/version", "3\n")
        evil = zpath.read_bytes()
    out = tmp_path / "runs" / "r" / "checkpoints"
    ckpt = _checkpoint(out / "checkpoint-4", evil)
    c = check_checkpoint(ckpt)
    # a raw pickle is not what torch.save writes: incomplete; a whole zip is complete by its files
    assert c.complete == (form == "torch.save zip"), c.reason
    latest_complete_checkpoint(out)
    assert not Path(MARKER[0]).exists(), "checking a checkpoint unpickled a planted file"
    # transformers itself resumes RNG state with torch.load(weights_only=True): the payload is refused
    import torch

    if form == "torch.save zip":
        with pytest.raises(Exception):  # noqa: B017 - any refusal; the point is the marker below
            torch.load(ckpt / "rng_state.pth", weights_only=True)
        assert not Path(MARKER[0]).exists()


def test_torn_rng_state_is_incomplete_without_loading(tmp_path: Path):
    import torch

    from astrollama.train.checkpoints import check_checkpoint

    good = tmp_path / "rng.pth"
    torch.save({"python": 1, "cpu": torch.zeros(3)}, good)
    whole = _checkpoint(tmp_path / "a" / "checkpoint-2", good.read_bytes())
    torn = _checkpoint(tmp_path / "b" / "checkpoint-2", good.read_bytes()[:-30])
    assert check_checkpoint(whole).complete
    c = check_checkpoint(torn)
    assert not c.complete and "rng_state.pth is torn" in c.reason
