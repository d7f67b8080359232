"""bf16 on CPU in the local engine: on where the CPU has bfloat16 units (autocast, float32 master
weights), float32 elsewhere; float32 stays the default (the LMFlow equality tests run in it)."""

from __future__ import annotations

import json
import subprocess

import pytest

from astrollama.train import engine
from astrollama.train.engine import cpu_bf16_units, parse_args, training_precision
from astrollama.train.launch import build_launch
from astrollama.train.recipe import load_recipe

X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile amx_bf16\n\nprocessor\t: 1\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
OLD = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"


@pytest.mark.parametrize(
    "text, units",
    [(X86, ["amx_bf16", "avx512_bf16"]), (ARM, ["bf16"]), (OLD, []), ("", [])],
)
def test_bf16_units_from_cpuinfo(tmp_path, text, units):
    p = tmp_path / "cpuinfo"
    p.write_text(text)
    assert cpu_bf16_units(p) == units
    assert cpu_bf16_units(tmp_path / "no-such-file") == []


def test_precision_words():
    assert training_precision(False, True, ["amx_bf16"]) == "float32"
    assert training_precision(True, False, []) == "bf16 autocast"  # a GPU: as asked
    assert training_precision(True, True, ["avx512_bf16"]) == "bf16 autocast on CPU (avx512_bf16)"
    assert training_precision(True, True, []).startswith("float32 (bf16 requested")


@pytest.mark.parametrize("units, on", [(["avx512_bf16"], True), ([], False)])
def test_bf16_flag_holds_only_with_units(tiny_model, tmp_path, monkeypatch, units, on):
    monkeypatch.setattr(engine, "cpu_bf16_units", lambda *a: units)
    base = ["--model_name_or_path", str(tiny_model), "--dataset_path", str(tmp_path)]
    base += ["--output_dir", str(tmp_path / "o"), "--use_cpu", "True"]
    _, _, args = parse_args([*base, "--bf16", "True"])
    assert args.bf16 is on and args.mixed_precision == ("bf16" if on else "no")
    _, _, args = parse_args(base)
    assert args.bf16 is False and args.mixed_precision == "no"  # float32 unless asked
    p = tmp_path / "args.json"  # the arguments-file form, too
    p.write_text(
        json.dumps(
            {
                "model_name_or_path": str(tiny_model),
                "dataset_path": str(tmp_path),
                "output_dir": str(tmp_path / "o2"),
                "bf16": True,
            }
        )
    )
    _, _, args = parse_args([str(p)])
    assert args.bf16 is on


@pytest.mark.skipif(not cpu_bf16_units(), reason="this CPU has no bfloat16 units")
def test_bf16_training_on_this_cpu_tracks_float32(train_recipe, train_env, tmp_path):
    """A real run with trainer.bf16=true: autocast on, provenance says so, and the losses follow
    the float32 run's closely (bfloat16 rounding only); the saved weights stay float32."""
    from safetensors.torch import load_file

    losses, logs = {}, {}
    for name, extra in (("fp32", []), ("bf16", ["trainer.bf16=true"])):
        recipe = load_recipe(train_recipe(tmp_path / name, max_steps=4, save_steps=100), extra)
        plan = build_launch(recipe, nodes=["localhost"], gpus_per_node=1)
        r = subprocess.run(plan.commands[0], env={**train_env, **plan.env}, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        logs[name] = r.stdout + r.stderr
        state = json.loads((plan.output_dir / "trainer_state.json").read_text())
        losses[name] = [e["loss"] for e in state["log_history"] if "loss" in e]
        weights = load_file(plan.output_dir / "model.safetensors")
        assert {str(w.dtype) for w in weights.values()} == {"torch.float32"}
    assert "precision: float32" in logs["fp32"]
    assert "precision: bf16 autocast on CPU" in logs["bf16"]
    assert len(losses["bf16"]) == len(losses["fp32"]) == 4
    assert losses["bf16"] != losses["fp32"]  # autocast really ran
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)


def test_provenance_names_the_precision(train_recipe, tmp_path, monkeypatch):
    """launch.json's "precision": what the local engine will do on this node; LMFlow as asked."""
    from astrollama.train.run import Allocation, _precision

    cpu = Allocation(["localhost"], 0, 1, "cpu", None, 0, "local")
    gpu = Allocation(["localhost"], 0, 1, "cuda", None, 0, "local")
    path = train_recipe(tmp_path / "run")
    fp32, bf16 = load_recipe(path), load_recipe(path, ["trainer.bf16=true"])
    monkeypatch.setattr(engine, "cpu_bf16_units", lambda *a: [])
    assert _precision(fp32, cpu, "local") == "float32"
    assert _precision(bf16, cpu, "local").startswith("float32 (bf16 requested")
    gpu_path = tmp_path / "gpu.yaml"  # the fixture asks for CPU on purpose; a GPU recipe does not
    gpu_path.write_text("".join(x for x in path.read_text().splitlines(True) if "use_cpu:" not in x))
    bf16_gpu = load_recipe(gpu_path, ["trainer.bf16=true"])
    assert _precision(bf16, cpu, "lmflow") == _precision(bf16_gpu, gpu, "local") == "bf16 autocast"
    monkeypatch.setattr(engine, "cpu_bf16_units", lambda *a: ["amx_bf16"])
    assert _precision(bf16, cpu, "local") == "bf16 autocast on CPU (amx_bf16)"
