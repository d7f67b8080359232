"""Checkpoints from outside are untrusted input too (astrollama.untrusted.check_model_dir): every
JSON file bounded and parsed, every safetensors header checked against its file, tensors of
merged checkpoints compared by shape, pickle weights refused without being opened, the tokenizer
no larger than the embedding table, the device one this torch has. Every refusal is one line and
exit 2, through ``astrollama merge``, ``astrollama eval`` and ``astrollama models`` alike.
"""

from __future__ import annotations

import json
import pickle
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from astrollama.models import tiny_llama
from tests.hostile.test_eval_inputs import _questions

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


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpts")
    return {
        "sft": tiny_llama(d / "sft", seed=1),
        "instruct": tiny_llama(d / "instruct", seed=2),
        "small_vocab": tiny_llama(d / "small", seed=3, vocab_size=300),
    }


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _merge_argv(tmp_path: Path, sft: Path, instruct: Path) -> list[str]:
    recipe = tmp_path / "m.yaml"
    recipe.write_text(
        textwrap.dedent(LINEAR).lstrip().format(sft=sft, instruct=instruct, out=tmp_path / "merged")
    )
    return ["merge", str(recipe)]


def _truncate(model: Path) -> Path:
    f = model / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    return f


class _Planted:
    """A pickle that, if ever loaded, creates a marker file (it must never be)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant_pickle(model: Path, marker: Path) -> None:
    (model / "model.safetensors").unlink()
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_Planted(marker)))


# ----------------------------------------------------------------------------------- merge


def test_merge_refuses_a_truncated_safetensors_before_merging(made, tmp_path, refuse):
    instruct = _copy(made["instruct"], tmp_path / "instruct")
    _truncate(instruct)
    refuse(
        _merge_argv(tmp_path, made["sft"], instruct),
        tmp_path,
        expect=["models.instruct.path", "model.safetensors", "truncated"],
    )


def test_merge_refuses_a_planted_pickle_without_loading_it(made, tmp_path, refuse):
    instruct = _copy(made["instruct"], tmp_path / "instruct")
    marker = tmp_path / "PICKLE-RAN"
    _plant_pickle(instruct, marker)
    refuse(
        _merge_argv(tmp_path, made["sft"], instruct),
        tmp_path,
        expect=["pytorch_model.bin", "pickle weights are not loaded"],
    )
    assert not marker.exists()


def test_merge_refuses_tensors_of_another_shape_under_the_same_config(made, tmp_path, refuse):
    instruct = _copy(made["instruct"], tmp_path / "instruct")
    f = instruct / "model.safetensors"
    tensors = load_file(f)
    name = "model.norm.weight"
    tensors[name] = torch.ones(tensors[name].shape[0] // 2)
    save_file(tensors, f, metadata={"format": "pt"})
    refuse(
        _merge_argv(tmp_path, made["sft"], instruct),
        tmp_path,
        expect=["models.instruct.path", f"tensor {name!r} has shape"],
    )


# ------------------------------------------------------------------------------------ eval


def _mcq(tmp_path: Path, model: Path, *extra: str) -> list[str]:
    q = _questions(tmp_path)
    return [
        "eval",
        "mcq",
        "--model",
        str(model),
        "--questions",
        str(q),
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]


def test_eval_refuses_a_corrupt_safetensors(made, tmp_path, refuse):
    model = _copy(made["sft"], tmp_path / "m")
    _truncate(model)
    refuse(_mcq(tmp_path, model), tmp_path, expect=["model.safetensors", "truncated"])


def test_eval_refuses_a_planted_pickle_without_loading_it(made, tmp_path, refuse):
    model = _copy(made["sft"], tmp_path / "m")
    marker = tmp_path / "PICKLE-RAN"
    _plant_pickle(model, marker)
    refuse(_mcq(tmp_path, model), tmp_path, expect=["pickle weights are not loaded"])
    assert not marker.exists()


def test_eval_refuses_a_tokenizer_larger_than_the_embedding_table(made, tmp_path, refuse):
    model = _copy(made["small_vocab"], tmp_path / "m")
    for f in made["sft"].iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, model / f.name)
    refuse(_mcq(tmp_path, model), tmp_path, expect=["(tokenizer)", "more than the", "embedding table"])


@pytest.mark.parametrize("broken", [b"{not json", b'{"base_model_name_or_path": 7}', b"\xff\xfe"])
def test_eval_refuses_a_broken_adapter_config(broken, made, tmp_path, refuse):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_bytes(broken)
    save_file({"lora_A": torch.zeros(2, 2)}, adapter / "adapter_model.safetensors")
    refuse(_mcq(tmp_path, adapter), tmp_path, expect=["adapter_config.json"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_eval_refuses_cuda_on_a_cpu_only_torch(made, tmp_path, refuse):
    refuse(_mcq(tmp_path, made["sft"], "--device", "cuda"), tmp_path, expect=["--device", "no CUDA"])


def test_eval_refuses_an_unknown_device(made, tmp_path, refuse):
    refuse(_mcq(tmp_path, made["sft"], "--device", "tpu9"), tmp_path, expect=["--device"])


# ---------------------------------------------------------------------------------- models


def test_models_refuses_a_foreign_directory_and_leaves_it_alone(tmp_path, refuse):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("my data")
    refuse(["models", "tiny", str(dest)], tmp_path, expect=[str(dest), "is not empty"])
    assert (dest / "notes.txt").read_text() == "my data"


@pytest.mark.parametrize("argv", [["models"], ["models", "frobnicate"], ["models", "tiny"]])
def test_models_command_line_errors_are_one_line(argv, tmp_path, refuse):
    refuse(argv, tmp_path)


def test_models_tiny_builds_into_a_new_directory(tmp_path, run_astrollama):
    r = run_astrollama(["models", "tiny", str(tmp_path / "t")])
    assert r.code == 0 and json.loads((tmp_path / "t" / "config.json").read_text())["model_type"] == "llama"
