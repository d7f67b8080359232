"""eval/<name>.yaml configs and the eval/0*.sh steps: strict validation, flags win, and the demo
config through the entry script (and slurm/eval.sh) scores exactly as the flag-driven command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from astrollama.cli import main
from astrollama.evaluation.cli import build_parser
from astrollama.evaluation.config import SECTIONS, apply_config, load_config
from astrollama.lmflow_data import write_text_only

REPO = Path(__file__).resolve().parents[2]
STEPS = {"01_score_checkpoint": "model", "02_sweep": "sweep", "03_embed": "embed", "04_report": "report"}
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
}
GOOD = "model:\n  questions: q.jsonl\n  block_size: 64\nembed:\n  max_docs: 10\n"


def _refused(tmp_path: Path, capsys, text: str, argv: list[str], expect: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    code = main(["eval", *argv, "--config", str(cfg)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"astrollama eval: error: {cfg}: {expect}"), err


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (GOOD + "modle: {}\n", "modle: unknown section (allowed: model, sweep"),
        (GOOD.replace("block_size", "blok_size"), "model.blok_size: unknown key (allowed here: "),
        (GOOD.replace("64", '"64"'), "model.block_size: "),  # a number written as a string
        (GOOD.replace("64", "true"), "model.block_size: expected a number, got bool"),
        (GOOD.replace("64", "1"), "model.block_size: must be an integer >= 2, got '1'"),
        (GOOD.replace("64", "[64]"), "model.block_size: expected a single value, got list"),
        (GOOD.replace("max_docs: 10", "max_docs: 0"), "embed.max_docs: must be an integer >= 2"),
        (GOOD + "mcq: {method: guess}\n", "mcq.method: must be one of token, instruct, got 'guess'"),
        (GOOD + "complete: {top_p: 1.5}\n", "complete.top_p: must be a number > 0 and <= 1"),
        (
            GOOD.replace("max_docs: 10", "model: m"),
            "embed.model: a per-run option: give it on the command line",
        ),
        (GOOD + "report: [a]\n", "report: must be a mapping of options, got list"),
        ("model: &m {block_size: 64}\nsweep: *m\n", "(yaml)"),  # YAML anchors/aliases refused
        (GOOD + "model: {}\n", "(yaml): line 6: duplicate key 'model'"),
    ],
)
def test_a_bad_config_is_one_line_naming_file_and_key(tmp_path, capsys, text, expect) -> None:
    # every section is checked whichever command runs (the error may be in another command's section)
    _refused(
        tmp_path, capsys, text, ["report", "--results", str(tmp_path), "--out", str(tmp_path / "r")], expect
    )
    assert not (tmp_path / "r").exists()


def test_flags_win_and_config_given_once() -> None:
    parser = build_parser()
    argv = ["ppl", "--config", "eval/astromlab1.yaml", "--model", "m", "--out", "o", "--block-size", "16"]
    args = parser.parse_args(apply_config(parser, argv))
    assert (args.block_size, args.batch_size, args.dtype, args.data) == (
        16,
        16,
        "bfloat16",
        "work/corpora/abstracts/validation",
    )
    args = parser.parse_args(
        apply_config(
            parser,
            ["mcq", "--config=eval/astromlab1.yaml", "--model", "m", "--out", "o", "--prompt", "plain"],
        )
    )
    assert (args.prompt, args.method, args.n_bootstrap) == ("plain", "token", 10_000)
    assert (
        main(
            [
                "eval",
                "ppl",
                "--config",
                "eval/demo.yaml",
                "--config",
                "eval/demo.yaml",
                "--model",
                "m",
                "--data",
                "d",
                "--out",
                "o",
            ]
        )
        == 2
    )


@pytest.mark.parametrize("name", ["demo", "astromlab1"])
def test_shipped_configs_are_valid_for_every_command(name) -> None:
    parser = build_parser()
    data = load_config(REPO / "eval" / f"{name}.yaml")
    assert set(data) <= set(SECTIONS) and {"model", "sweep", "embed", "report"} <= set(data)
    assert apply_config(parser, ["report", "--config", f"eval/{name}.yaml"])[0] == "report"


def test_demo_config_is_the_demo_evaluation() -> None:
    """eval/demo.yaml is what the toy target (`astrollama demo`) scores every stage with: its eval
    commands name the config and add only per-run flags (model, label, role, stage, output)."""
    from astrollama.reproduce import Plan
    from astrollama.targets import load_target

    target, path = load_target("demo")
    plan = Plan("demo", target, path)
    cfg = load_config(REPO / "eval" / "demo.yaml")
    heldout = plan.corpus / "abstracts" / "validation"
    assert heldout == REPO / cfg["model"]["heldout"] == REPO / cfg["embed"]["data"]
    (cmd,) = plan.stages["eval"].commands  # one command: every model loaded once
    assert cmd[:5] == ["astrollama", "eval", "models", "--config", str(REPO / "eval" / "demo.yaml")]
    flags = {c.split("=")[0] for c in cmd[5:] if c.startswith("--")}
    assert flags <= {
        "--model",
        "--label",
        "--role",
        "--heldout",
        "--scale",
        "--out",
        "--recipe",
        "--stage",
        "--embed-data",
        "--embed-out",
    }
    # the settings the command runs with are the config's (model section, embed section as --embed-*)
    from astrollama.evaluation.cli import build_parser
    from astrollama.evaluation.config import apply_config

    parser = build_parser()
    args = parser.parse_args(apply_config(parser, cmd[2:]))
    for key, value in cfg["model"].items():
        if key not in ("heldout",):
            assert getattr(args, key) == value, key
    for key, value in cfg["embed"].items():
        if key != "data":
            assert getattr(args, f"embed_{key}") == value, key
    assert Path(args.heldout) == Path(args.embed_data) == heldout
    assert [g["out"] for g in args.jobs] == [
        str(plan.work / "eval" / "results" / r) for r in ("base", "cpt", "sft", "merged")
    ]
    assert [g.get("stage") for g in args.jobs] == ["base", "CPT", "SFT", "merged"]
    # the toy stands beside the published rows of the corpus it trains on (AIC), letters as in context
    assert target.eval.recipe == "astrollama-3-8b-base_aic" and target.data.variant == "aic"
    assert cfg["model"]["letter_token"] == "prompt"
    assert cfg["model"]["scale"] == "toy" and Path(cfg["model"]["questions"]) == Path(
        "eval/data/astro_mcq_sample.jsonl"
    )


def test_steps_are_thin_calls_of_the_cli() -> None:
    """One script per step, in order, each one call of the one CLI (shellcheck: scripts/test.sh)."""
    assert sorted(p.stem for p in (REPO / "eval").glob("0*.sh")) == list(STEPS)
    for step, command in STEPS.items():
        text = (REPO / "eval" / f"{step}.sh").read_text()
        assert (
            "set -euo pipefail" in text and f'exec astrollama eval {command} --config "$CONFIG" "$@"' in text
        )
    assert "eval/*.sh" in (REPO / "scripts" / "test.sh").read_text()


def _results(out: Path) -> dict:
    scores = json.loads((out / "mcq" / "scores.json").read_text())
    ppl = json.loads((out / "ppl.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    return {
        "mcq": {k: scores[k] for k in ("accuracy", "ci95", "n", "n_correct", "ci_method")},
        "predictions": (out / "mcq" / "predictions.jsonl").read_text(),
        "ppl": {k: ppl[k] for k in ("perplexity", "ci95", "n_tokens", "n_documents", "settings")},
        "completion": json.loads((out / "completion.json").read_text())["completion"],
        "meta": {k: v for k, v in meta.items() if k != "seconds"},
    }


@pytest.mark.slow
def test_demo_config_through_the_entry_script_equals_the_flags(tmp_path, tiny_model) -> None:
    heldout = tmp_path / "heldout"
    write_text_only(
        heldout / "h.json",
        [
            "Neutron stars are observed as pulsars.",
            "The Sun is a main-sequence star.",
            "Dust grains absorb ultraviolet starlight and re-emit it in the infrared.",
        ],
    )
    per_run = ["--model", str(tiny_model), "--label", "tiny", "--role", "base", "--heldout", str(heldout)]
    per_run += ["--recipe", "astrollama-3-8b-base_aic"]  # per run: the target names it, not the config
    p = subprocess.run(
        ["bash", str(REPO / "eval" / "01_score_checkpoint.sh"), *per_run, "--out", str(tmp_path / "script")],
        cwd=tmp_path,
        env={**ENV, "CONFIG": "eval/demo.yaml"},
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    p = subprocess.run(
        [
            "bash",
            str(REPO / "slurm" / "eval.sh"),
            "model",
            "--config",
            "eval/demo.yaml",
            *per_run,
            "--out",
            str(tmp_path / "slurm"),
        ],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "eval model" in p.stdout and "options from the config and arguments" in p.stdout
    cwd = Path.cwd()
    os.chdir(REPO)  # the config's relative paths are relative to the repository root, as the scripts run
    try:
        assert (
            main(
                [
                    "eval",
                    "model",
                    *per_run,
                    "--questions",
                    "eval/data/astro_mcq_sample.jsonl",
                    "--letter-token",
                    "prompt",
                    "--scale",
                    "toy",
                    "--block-size",
                    "256",
                    "--max-docs",
                    "32",
                    "--batch-size",
                    "8",
                    "--seed",
                    "0",
                    "--max-new-tokens",
                    "40",
                    "--out",
                    str(tmp_path / "flags"),
                ]
            )
            == 0
        )
    finally:
        os.chdir(cwd)
    flags = _results(tmp_path / "flags")
    assert flags["mcq"]["n"] == 68 and flags["ppl"]["settings"]["block_size"] == 256
    assert _results(tmp_path / "script") == flags
    assert _results(tmp_path / "slurm") == flags
