"""The data pipeline runner (``astrollama data run``): typed, strict stage configs whose command lines
are generated from the validated config, and the Slurm chain through the one sbatch script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from astrollama.cli import main
from astrollama.data.cli import build_parser
from astrollama.data.config import apply_config
from astrollama.data.pipeline import STAGES, load_pipeline

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["astro-ph", "demo"])
def test_generated_command_lines_equal_the_config_path(name: str) -> None:
    """Every stage's generated argv parses to exactly what `astrollama data <stage> --config FILE`
    parses to: the typed config and the stage's flags are one definition."""
    config = REPO / "data_prep" / f"{name}.yaml"
    p = load_pipeline(config)
    parser = build_parser()
    for stage, cfg in p.stages.items():
        argv = cfg.argv()
        assert argv[:2] == ["data", stage]
        generated = parser.parse_args(argv[1:])
        via_config = parser.parse_args(
            apply_config(parser, [*argv[1 : len(cfg.command) + 1], "--config", str(config)])
        )
        assert vars(generated) == {**vars(via_config), "config": None}, stage


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("build:\n  shingle_size: 5\n", "build.shingle_size: unknown key (allowed here:"),
        ("build:\n  num_perm: '128'\n", "build.num_perm: '128' is a string, not a number"),
        ("build:\n  num_perm: true\n", "build.num_perm: Input should be a valid integer"),
        ("build:\n  lsh_bands: 0\n", "build.lsh_bands: must be an integer >= 1"),
        ("build:\n  decontam_action: keep\n", "build.decontam_action: Input should be 'drop' or 'report'"),
        ("download:\n  kinds: pdf\n", "download.kinds: Input should be a valid list"),
        ("summarize:\n  temperature: -1\n", "summarize.temperature: must be a number >= 0"),
        ("summarize:\n  model: null\n", "summarize.model: null is not a value here"),
        ("builds: {}\n", "builds: unknown section"),
        ("harvest:\n  oia: {}\n", "harvest.oia: unknown harvest source"),
        ("harvest:\n  oai: {fromm: x}\n", "harvest.oai.fromm: unknown key"),
        ("aic: {}\nocr: {}\nrun: [aic, ocr]\n", "run: stages must be listed once each, in pipeline order"),
        ("aic: {}\nrun: [aicc]\n", "run: unknown stage 'aicc'"),
        ("aic: {}\nrun: [ocr]\n", "run: stage 'ocr' has no section in this file"),
        ("aic: {}\nslurm: {aic: {arrays: 2}}\n", "slurm.aic.arrays: unknown key"),
        ("aic: {}\nslurm: {aic: {array: 0}}\n", "slurm.aic.array: expected a positive integer"),
    ],
)
def test_bad_pipeline_is_one_line_exit_2(tmp_path, capsys, text, message) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    assert main(["data", "run", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{f}: {message}" in err, err


def test_from_after_until_and_unknown_stage(capsys) -> None:
    demo = str(REPO / "data_prep" / "demo.yaml")
    assert main(["data", "run", demo, "--from", "build", "--until", "ocr", "--dry-run"]) == 2
    assert "--from build comes after --until ocr" in capsys.readouterr().err
    assert main(["data", "run", demo, "--stage", "bild", "--dry-run"]) == 2
    assert "stage 'bild' is not one this pipeline runs" in capsys.readouterr().err


def test_set_overrides_a_key_and_is_checked_like_the_file(capsys) -> None:
    demo = str(REPO / "data_prep" / "demo.yaml")
    assert main(["data", "run", demo, "--stage", "build", "--set", "build.out=/tmp/x", "--dry-run"]) == 0
    assert "--out=/tmp/x" in capsys.readouterr().out
    assert main(["data", "run", demo, "--set", "build.num_perm=2.5", "--dry-run"]) == 2
    assert "build.num_perm:" in capsys.readouterr().err


def test_slurm_chain_through_the_one_stage_script(capsys) -> None:
    config = "data_prep/astro-ph.yaml"
    assert main(["data", "run", config, "--slurm", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    stages = [m.group(1) for line in lines if (m := re.search(r"--stage (\S+)\)", line))]
    assert stages == ["harvest", "download", "ocr", "aic", "summarize", "build"]
    for i, line in enumerate(lines):
        assert "--requeue" in line and f"slurm/stage.sh data run {config} --stage" in line
        assert ("--dependency=afterok:$JOB_" in line) == (i > 0)
    assert "--array=0-15" in lines[1] and "--array=0-31" in lines[4] and "--gpus-per-node=1" in lines[4]
    assert set(STAGES) >= set(stages)


def test_a_stage_without_its_input_names_the_stage_that_makes_it(tmp_path, capsys) -> None:
    demo = str(REPO / "data_prep" / "demo.yaml")
    assert main(["data", "run", demo, "--stage", "aic", "--set", f"root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert f"stage aic: {tmp_path} has no manifest yet: stage harvest makes it" in err
    assert not any(tmp_path.iterdir())  # nothing written
