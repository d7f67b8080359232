"""`astrollama demo --timings` and scripts/bench_demo.sh: each stage's wall time, printed.

The runner (:func:`astrollama.reproduce.run_local`) times the toy target's real plan; its data and
training commands are replaced by cheap real ones (sleeps), and its evaluation is a real
`astrollama eval models` of two tiny models, whose parts the pool reports per model.
"""

from __future__ import annotations

import subprocess

import pytest

from astrollama.demo import TARGET, build_parser, demo_target
from astrollama.lmflow_data import write_text_only
from astrollama.models import tiny_llama
from astrollama.reproduce import Plan, run_local, timings_table
from astrollama.targets import Target

SLEEP = {"build": 0.3, "cpt": 0.5, "sft": 0.2}


def _rows(table: str) -> dict[str, str]:
    lines = table.splitlines()
    assert lines[0].startswith("[demo timings]")
    return {line[:34].strip(): line[34:].strip() for line in lines[2:]}


def test_run_local_times_every_stage_and_each_model(tmp_path, tiny_model, repo_root, capsys):
    plan = Plan(str(TARGET), Target.model_validate(demo_target(tmp_path / "work")), TARGET)
    heldout = tmp_path / "heldout"
    write_text_only(heldout / "h.json", ["Cepheids pulsate.", "Quasars shine.", "Comets sublimate."])
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        f"model:\n  questions: {repo_root / 'eval/data/astro_mcq_sample.jsonl'}\n  heldout: {heldout}\n"
        "  scale: toy\n  block_size: 16\n  max_new_tokens: 2\nembed:\n  max_docs: 3\n  max_length: 16\n"
    )
    other = tiny_llama(tmp_path / "other", seed=5)
    results = plan.work / "eval" / "results"
    for name, st in plan.stages.items():
        st.commands = [["bash", "-c", f"sleep {SLEEP.get(name, 0)}"]]
    plan.stages["eval"].commands = [
        ["astrollama", "eval", "models", "--config", str(cfg), "--workers", "1"]
        + ["--model", str(tiny_model), "--label", "tiny", "--role", "base", "--stage", "base"]
        + ["--out", str(results / "base"), "--embed-out", str(plan.work / "eval" / "embeddings")]
        + ["--model", str(other), "--label", "tiny + CPT", "--role", "trained", "--stage", "CPT"]
        + ["--out", str(results / "cpt")]
    ]
    timings: list = []
    assert run_local(plan, plan.order, timings=timings) == 0
    assert [t.stage for t in timings] == plan.order
    secs = {t.stage: t.seconds for t in timings}
    for name, s in SLEEP.items():
        assert secs[name] >= s  # measured, not made up
    (ev,) = [t for t in timings if t.stage == "eval"]
    assert [name for name, _ in ev.parts] == ["base", "CPT"]
    assert all(0 < s <= ev.seconds for _, s in ev.parts)
    assert (results / "cpt" / "meta.json").is_file()
    rows = _rows(timings_table(timings, sum(secs.values())))
    assert list(rows)[: len(plan.order) - 5] == plan.order[: len(plan.order) - 5]  # the data stages
    assert list(rows)[-8:] == [
        "CPT",
        "SFT",
        "merge",
        "evaluation",
        "evaluation: base",
        "evaluation: CPT",
        "report",
        "total",
    ]
    assert float(rows["CPT"]) >= 0.5 and float(rows["evaluation: CPT"]) == round(ev.parts[1][1], 1)
    # a rerun: the data, evaluation and report stages are complete (markers), training runs again
    again: list = []
    assert run_local(plan, plan.order, timings=again) == 0
    rows = _rows(timings_table(again, 1.0))
    assert rows["build"] == rows["evaluation"] == rows["report"] == "complete"
    assert float(rows["CPT"]) >= 0.5 and "evaluation: base" not in rows


def test_the_demo_takes_timings():
    assert build_parser().parse_args(["--timings"]).timings is True
    assert build_parser().parse_args([]).timings is False


def test_bench_demo_refuses_an_existing_directory(repo_root, tmp_path):
    r = subprocess.run(
        ["bash", str(repo_root / "scripts" / "bench_demo.sh"), str(tmp_path)], capture_output=True, text=True
    )
    assert r.returncode == 2 and f"{tmp_path} exists" in r.stderr


@pytest.mark.parametrize("seconds", [None, 0.04, 1234.56])
def test_the_table_is_plain_columns(seconds):
    from astrollama.reproduce import StageTime

    table = timings_table([StageTime("eval", seconds, [("base", 1.25)])], 2.0)
    rows = _rows(table)
    assert rows == {
        "evaluation": "complete" if seconds is None else f"{seconds:.1f}",
        "evaluation: base": "1.2",
        "total": "2.0",
    }
