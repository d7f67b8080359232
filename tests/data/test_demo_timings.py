"""`astrollama demo --timings` and scripts/bench_demo.sh: each stage's wall time, printed."""

from __future__ import annotations

import subprocess
import time

import astrollama.demo as demo


def _stage(name, seconds, **sets):
    def run(state, args):
        time.sleep(seconds)
        state.update(sets)
        if name == "_evaluate":
            state["timings"].update({"evaluation: base": 0.5, "evaluation: report": 0.25})

    run.__name__ = name
    return run


def test_timings_print_every_stage_and_the_total(monkeypatch, tmp_path, capsys):
    stages = (
        ("data", _stage("_data", 0.05)),
        ("train", _stage("_train", 0.5, trained="t")),
        ("evaluate", _stage("_evaluate", 0.0, report="r")),
    )
    monkeypatch.setattr(demo, "STAGES", stages)
    assert demo.main(["--workdir", str(tmp_path), "--timings"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("[demo timings]") :].splitlines()
    rows = {line.split()[0]: float(line.split()[-1]) for line in table[2:]}
    assert list(rows) == ["data-chain", "CPT", "evaluation", "eval-base", "eval-report", "total"]
    assert rows["data-chain"] >= 0.0 and rows["CPT"] >= 0.5  # measured, not made up
    assert rows["eval-base"] == 0.5 and rows["eval-report"] == 0.2  # one decimal
    assert rows["total"] >= rows["data-chain"] + rows["CPT"]
    assert "[demo 2/3] train: " in out
    # without --timings: no table
    assert demo.main(["--workdir", str(tmp_path)]) == 0
    assert "[demo timings]" not in capsys.readouterr().out


def test_bench_demo_refuses_an_existing_directory(repo_root, tmp_path):
    r = subprocess.run(
        ["bash", str(repo_root / "scripts" / "bench_demo.sh"), str(tmp_path)], capture_output=True, text=True
    )
    assert r.returncode == 2 and f"{tmp_path} exists" in r.stderr
