"""Paths mean what the user typed: every wrapper script resolves a relative path against the
directory it was started from, although it enters the repository first (astrollama.paths).

Each wrapper runs from a scratch directory OUTSIDE the repository with a relative path that
names something there: someone's non-empty directory as ``--out`` (refused, naming the caller's
path), a directory without a manifest as the data root, a prompt file with a misspelt key. The
one-line refusal must name the path under the caller's directory, and nothing may appear inside
the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from astrollama.lmflow_data import write_text_only
from astrollama.paths import from_caller

REPO = Path(__file__).resolve().parents[2]


def _scratch(tmp: Path) -> Path:
    """The caller's directory: someone's non-empty ``mine/``, a bare ``here/``, a bad prompt."""
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("keep me\n")
    (tmp / "here").mkdir()
    (tmp / "bad-prompt.yaml").write_text(
        'name: x\nsytem: s\nuser: "{title} {text} {n_questions} {chunk} {previous} {budget}"\n'
    )
    (tmp / "merge.yaml").write_text(
        textwrap.dedent(
            """
            reproduces: "none: path test"
            method: linear
            models:
              a: {path: a, weight: 0.5}
              b: {path: b, weight: 0.5}
            """
        ).lstrip()
    )
    (tmp / "model").mkdir()
    (tmp / "model" / "config.json").write_text(
        '{"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 512, '
        '"num_attention_heads": 4, "max_position_embeddings": 1024}'
    )
    write_text_only(tmp / "data" / "shard-00000.json", ["Quasars are active galactic nuclei."] * 4)
    (tmp / "train.yaml").write_text(
        textwrap.dedent(
            f"""
            name: paths
            reproduces: "none: path test"
            model: {{name_or_path: {tmp / "model"}}}
            data: {{dataset_path: {tmp / "data"}, block_size: 64, packing: true}}
            batch: {{global_batch_size: 8, max_micro_batch_size: 4}}
            launch: {{engine: local, run_dir: {tmp / "elsewhere"}}}
            trainer: {{learning_rate: 1.0e-4, max_steps: 4, use_cpu: true}}
            """
        ).lstrip()
    )
    return tmp


# script -> (arguments, what the message must name, relative to the caller's directory)
WRAPPERS: dict[str, tuple[list[str], str]] = {
    "eval/01_score_checkpoint.sh": (["--model", "m", "--label", "a", "--role", "base", "--out", "mine"], "mine"),
    "eval/02_sweep.sh": (["--run-dir", "run", "--out", "mine"], "mine"),
    "eval/03_embed.sh": (["--model", "m", "--out", "mine"], "mine"),
    "eval/04_report.sh": (["--results", "r", "--out", "mine"], "mine"),
    "data_prep/01_harvest.sh": (["--root", "mine"], "mine"),
    "data_prep/02_download.sh": (["--root", "here"], "here"),
    "data_prep/03_ocr.sh": (["--root", "here"], "here"),
    "data_prep/04_aic.sh": (["--root", "here"], "here"),
    "data_prep/05_summarize.sh": (["--root", "here", "--prompt", "bad-prompt.yaml"], "bad-prompt.yaml"),
    "data_prep/06_build.sh": (["--root", "here", "--out", "mine"], "mine"),
    "data_prep/07_qa.sh": (["--root", "here", "--prompt", "bad-prompt.yaml"], "bad-prompt.yaml"),
    "data_prep/08_sft_convert.sh": (["--input", "qa=here", "--out", "mine"], "mine"),
    "slurm/aic.sh": (["here"], "here"),
    "slurm/download.sh": (["here"], "here"),
    "slurm/ocr.sh": (["here", "--backend", "pdf-text"], "here"),
    "slurm/build.sh": (["here", "--out", "mine", "--tokenizer", "tok"], "mine"),
    "slurm/summarize.sh": (["here", "--prompt", "bad-prompt.yaml", "--model", "m"], "bad-prompt.yaml"),
    "slurm/qa.sh": (["here", "--prompt", "bad-prompt.yaml", "--model", "m"], "bad-prompt.yaml"),
    "slurm/eval.sh": (["report", "--results", "r", "--out", "mine"], "mine"),
    "slurm/merge.sh": (["merge.yaml", "output_dir=mine"], "mine"),
    "slurm/cpt.sh": (["train.yaml", "launch.run_dir=mine"], "mine"),
}  # fmt: skip


def _repo_state() -> str:
    r = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored=no"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return r.stdout if r.returncode == 0 else ""


@pytest.mark.parametrize("script", sorted(WRAPPERS))
def test_wrapper_resolves_relative_paths_against_the_caller(script, tmp_path):
    caller = _scratch(tmp_path)
    args, named = WRAPPERS[script]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "ASTROLLAMA_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "src"),
        "ASTROLLAMA_VENV": str(Path(sys.executable).parent.parent),
        "HF_HUB_OFFLINE": "1",
    }
    before = _repo_state()
    r = subprocess.run(
        ["bash", str(REPO / script), *args], cwd=caller, env=env, capture_output=True, text=True, timeout=180
    )
    shown = f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1:] or [""]
    assert r.returncode == 2, shown
    assert "Traceback" not in r.stderr, shown
    assert str(caller / named) in last[0], shown
    assert (caller / "mine" / "notes.txt").read_text() == "keep me\n"
    assert _repo_state() == before, "the wrapper wrote inside the repository"


def test_from_caller_rewrites_only_what_the_user_typed(tmp_path, monkeypatch):
    from astrollama.data.cli import build_parser

    caller = tmp_path / "caller"
    (caller / "ckpt").mkdir(parents=True)
    (caller / "root").mkdir()
    monkeypatch.setenv("ASTROLLAMA_CALLER_CWD", str(caller))
    argv = [
        "sft-convert", "--input", "qa=root", "--out=out", "--limit", "3", "--mcq", "/abs/q.jsonl",
    ]  # fmt: skip
    got = from_caller(argv, build_parser())
    assert got == [
        "sft-convert", "--input", f"qa={caller / 'root'}", f"--out={caller / 'out'}", "--limit", "3",
        "--mcq", "/abs/q.jsonl",
    ]  # fmt: skip
    # a model option: converted only when it names something in the caller's directory
    got = from_caller(["summarize", "--root", "r", "--model", "ckpt"], build_parser())
    assert got == ["summarize", "--root", str(caller / "r"), "--model", str(caller / "ckpt")]
    got = from_caller(["summarize", "--root", "r", "--model", "Qwen/Qwen2-7B-Instruct"], build_parser())
    assert got[-1] == "Qwen/Qwen2-7B-Instruct"
    # recipe overrides: path keys always, null stays null, other values alone
    got = from_caller(["run", "r.yaml", "launch.run_dir=runs/x", "data.eval_dataset_path=null", "seed=1"])
    assert got == [
        "run",
        "r.yaml",
        f"launch.run_dir={caller / 'runs/x'}",
        "data.eval_dataset_path=null",
        "seed=1",
    ]
    # an input that is not in the caller's directory stays as typed (the repository's own files)
    got = from_caller(["aic", "--config", "data_prep/demo.yaml", "--root", "r"], build_parser())
    assert got == ["aic", "--config", "data_prep/demo.yaml", "--root", str(caller / "r")]
    monkeypatch.delenv("ASTROLLAMA_CALLER_CWD")
    assert from_caller(["build", "--out", "o"], build_parser()) == ["build", "--out", "o"]
