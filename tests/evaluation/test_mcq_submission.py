"""submission.csv against the format the public AstroMLab file needs; the letter-token option from
the command line and the config; the one-line hint for a missing benchmark file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from astrollama.benchmark import MCQInputError, load_questions, write_public_and_key
from astrollama.evaluation.mcq import score_mcq
from astrollama.evaluation.mcq.submission import check_submission
from astrollama.evaluation.settings import ScoringSettings

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "eval" / "data" / "astro_mcq_sample.jsonl"


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    """The sample in the public AstroMLab layout (parquet: question, A-D; no id, no answer)."""
    d = tmp_path_factory.mktemp("public")
    pub, key = write_public_and_key(load_questions(SAMPLE), d / "public.parquet", d / "key.jsonl")
    return pub, key


def test_submission_conforms_to_the_public_file(tiny_model, public, tmp_path):
    """One row per parquet row, in order, id = the 0-based row index, one letter A-D each."""
    import pandas as pd

    pub, _ = public
    qs = load_questions(pub)
    res = score_mcq(tiny_model, qs, ScoringSettings(batch_size=16), progress=False)
    path = res.write(tmp_path / "out")["submission"]
    summary = check_submission(path, qs)
    n = len(pd.read_parquet(pub))
    assert summary["n"] == n and summary["n_blank"] == 0 and sum(summary["letters"].values()) == n
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert rows[0] == ["id", "answer"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(n)]
    assert {r[1] for r in rows[1:]} <= set("ABCD")
    assert path.read_bytes().endswith(b"\n") and b"\r" not in path.read_bytes()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda L: ["id,letter", *L[1:]], r"line 1: the header must be 'id,answer', got 'id,letter'"),
        (
            lambda L: L[:-1],
            r"67 answer rows, but .*public.parquet has 68 questions \(first unanswered: id '67'\)",
        ),
        (lambda L: [L[0], L[2], L[1], *L[3:]], r"line 2: id '1', expected '0'"),
        (lambda L: [L[0], "0,a", *L[2:]], r"line 2: answer 'a' is not one of A, B, C, D"),
        (lambda L: [L[0], "0,A,B", *L[2:]], r"line 2: expected 2 fields \(id,answer\), got 3"),
        (lambda L: [*L, "68,A"], r"line 70: 69 answer rows, but .* has 68 questions"),
    ],
)
def test_check_submission_refuses_a_broken_file(public, tmp_path, edit, message):
    pub, _ = public
    qs = load_questions(pub)
    good = ["id,answer", *[f"{i},{'ABCD'[i % 4]}" for i in range(len(qs))]]
    assert check_submission(_write(tmp_path / "ok.csv", good), qs)["letters"] == dict.fromkeys("ABCD", 17)
    with pytest.raises(MCQInputError, match=message):
        check_submission(_write(tmp_path / "bad.csv", edit(good)), qs)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_letter_token_from_the_cli_and_the_config(tiny_model, public, tmp_path, capsys):
    from astrollama.cli import main

    pub, key = public
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"mcq: {{questions: {pub}, letter_token: reference, n_bootstrap: 200}}\n")
    out = tmp_path / "ref"
    assert (
        main(
            [
                "eval",
                "mcq",
                "--config",
                str(cfg),
                "--model",
                str(tiny_model),
                "--limit",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    scores = json.loads((out / "scores.json").read_text())
    assert (
        scores["letter_token"] == "reference" and "encode(letter" in scores["settings"]["letter_token"]["how"]
    )
    flag = tmp_path / "flag"  # a flag on the command line wins over the config
    argv = ["eval", "mcq", "--config", str(cfg), "--model", str(tiny_model), "--limit", "4"]
    assert main([*argv, "--letter-token", "prompt", "--out", str(flag)]) == 0
    assert json.loads((flag / "scores.json").read_text())["letter_token"] == "prompt"
    capsys.readouterr()
    cfg.write_text(f"mcq: {{questions: {pub}, letter_token: first}}\n")
    assert (
        main(["eval", "mcq", "--config", str(cfg), "--model", str(tiny_model), "--out", str(tmp_path / "x")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mcq.letter_token" in err[0] and "first" in err[0]
    assert not (tmp_path / "x").exists()


def test_mcq_check_command(tiny_model, public, tmp_path, capsys):
    from astrollama.cli import main

    pub, _ = public
    out = tmp_path / "out"
    assert main(["eval", "mcq", "--model", str(tiny_model), "--questions", str(pub), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "mcq-check", str(out / "submission.csv"), "--questions", str(pub)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 68 and summary["n_blank"] == 0


def test_missing_benchmark_file_says_where_to_get_it(tiny_model, tmp_path, capsys, monkeypatch):
    """`--config eval/astromlab1.yaml` without the parquet: one line, exit 2, nothing written."""
    from astrollama.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "astromlab1.yaml").write_text((REPO / "eval" / "astromlab1.yaml").read_text())
    rc = main(
        [
            "eval",
            "mcq",
            "--config",
            "eval/astromlab1.yaml",
            "--model",
            str(tiny_model),
            "--out",
            "o",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("astrollama eval: error: Astrobench_MCQ_v1_Public.parquet: no such file; ")
    assert "AstroMLab/Astrobench_MCQ_v1_Public" in err[0] and "hf_hub_download" in err[0]
    assert not (tmp_path / "o").exists()
