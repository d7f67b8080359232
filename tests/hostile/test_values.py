"""Numbers and enums from outside are typed and bounded (astrollama.untrusted's value checks and
the bounds of astrollama.cli): strict booleans, the exact option set A-D, ranges for counts,
seeds and lengths, Unicode text only, one id per row.

Each case runs the real command in-process and asserts the one refusal policy (``refuse``: exit 2,
one line naming the file and field, no traceback, nothing written).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.test_eval_inputs import ROWS, _jsonl, _questions, mcq
from tests.hostile.test_train_inputs import w  # noqa: F401 - the train fixture

# ------------------------------------------------------------------------ eval report: results


def results_dir(
    root: Path, label: str, role: str, correct: list, *, ids=None, ppl=None, meta=None, scores=None
):
    """A RESULTS directory as ``astrollama eval model`` writes it (meta last), with given rows."""
    d = root / label
    (d / "mcq").mkdir(parents=True)
    ids = ids if ids is not None else [str(i) for i in range(len(correct))]
    rows = [
        {"id": i, "prediction": "A", "is_correct": c}
        if i is not None
        else {"prediction": "A", "is_correct": c}
        for i, c in zip(ids, correct, strict=True)
    ]
    _jsonl(d / "mcq" / "predictions.jsonl", rows)
    acc = sum(c is True for c in correct) / len(correct)
    (d / "mcq" / "scores.json").write_text(
        json.dumps(scores or {"accuracy": acc, "n": len(correct), "ci95": [0, 1]})
    )
    if ppl is not None:
        (d / "ppl.json").write_text(
            json.dumps({"perplexity": ppl, "ci95": [ppl, ppl]} if ppl != "omit" else {})
        )
    (d / "meta.json").write_text(json.dumps(meta or {"label": label, "role": role, "scale": "toy"}))
    return d


def report(root: Path, *dirs: Path) -> list[str]:
    return ["eval", "report", "--results", *map(str, dirs), "--out", str(root / "report")]


def _base_trained(tmp_path: Path, trained_correct: list, **kw):
    base = results_dir(tmp_path, "base", "base", [True, False, True, False])
    trained = results_dir(tmp_path, "trained", "trained", trained_correct, **kw)
    return base, trained


def test_is_correct_must_be_a_json_boolean(tmp_path, refuse):
    """``"is_correct": "no"`` is truthy: read by truthiness it would count as correct."""
    base, trained = _base_trained(tmp_path, [True, "no", False, True])
    refuse(
        report(tmp_path, base, trained), tmp_path, expect=["predictions.jsonl: line 2", "is_correct", "'no'"]
    )


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_is_correct_other_non_booleans(value, tmp_path, refuse):
    base, trained = _base_trained(tmp_path, [True, value, False, True])
    refuse(report(tmp_path, base, trained), tmp_path, expect=["predictions.jsonl: line 2", "is_correct"])


def test_accuracy_as_a_string_is_refused(tmp_path, refuse):
    base, trained = _base_trained(tmp_path, [True, True, False, True], scores={"accuracy": "0.75", "n": 4})
    refuse(report(tmp_path, base, trained), tmp_path, expect=["scores.json", "accuracy", "finite number"])


def test_accuracy_out_of_range_is_refused(tmp_path, refuse):
    base, trained = _base_trained(tmp_path, [True, True, False, True], scores={"accuracy": 75.0, "n": 4})
    refuse(report(tmp_path, base, trained), tmp_path, expect=["scores.json", "accuracy", "[0, 1]"])


def test_rows_without_ids_are_refused(tmp_path, refuse):
    base, trained = _base_trained(tmp_path, [True, True, False, True], ids=["0", None, "2", "3"])
    refuse(report(tmp_path, base, trained), tmp_path, expect=["predictions.jsonl: line 2", "'id'"])


def test_one_id_with_two_answers_is_refused_and_a_repeat_is_read_once(tmp_path, refuse, run_astrollama):
    base, trained = _base_trained(tmp_path, [True, False, True, True], ids=["0", "1", "1", "3"])
    refuse(
        report(tmp_path, base, trained), tmp_path, expect=["predictions.jsonl: line 3", "'1' appears twice"]
    )
    other = tmp_path / "again"
    base, trained = _base_trained(other, [True, True, True, False], ids=["0", "1", "1", "3"])
    r = run_astrollama(report(other, base, trained))
    assert r.code == 0, r.stderr[-2000:]
    change = json.loads((other / "report" / "report.json").read_text())["changes"][0]["mcq_delta"]
    assert change["n"] == 3  # ids 0, 1, 3: the identical repeat of 1 counted once


def test_no_ids_in_common_is_refused(tmp_path, refuse):
    base, trained = _base_trained(tmp_path, [True, True, False, True], ids=["a", "b", "c", "d"])
    refuse(report(tmp_path, base, trained), tmp_path, expect=["no common question ids", "predictions.jsonl"])


@pytest.mark.parametrize("ppl", [0, -3.0, "12.5"])
def test_a_perplexity_that_is_not_positive_is_refused(ppl, tmp_path, refuse):
    base = results_dir(tmp_path, "base", "base", [True, False], ppl=ppl)
    trained = results_dir(tmp_path, "trained", "trained", [True, True], ppl=10.0)
    refuse(report(tmp_path, base, trained), tmp_path, expect=["base/ppl.json", "perplexity"])


def test_meta_json_not_utf8_is_refused(tmp_path, refuse):
    base, trained = _base_trained(tmp_path, [True, True, False, True])
    (trained / "meta.json").write_bytes(b'{"label": "tr\xe9ined", "role": "trained"}')
    refuse(report(tmp_path, base, trained), tmp_path, expect=["trained/meta.json", "not UTF-8"])


def test_meta_with_a_list_for_a_name_is_refused(tmp_path, refuse):
    meta = {"label": "trained", "role": "trained", "recipe": ["x"]}
    base, trained = _base_trained(tmp_path, [True, True, False, True], meta=meta)
    refuse(report(tmp_path, base, trained), tmp_path, expect=["meta.json", "'recipe' must be a string"])


# ----------------------------------------------------------------------- MCQ options and counts


@pytest.mark.parametrize("column", ["E", "e", "options", "choice_e"])
def test_an_option_column_beyond_a_to_d_is_refused_not_dropped(column, tmp_path, refuse):
    rows = [dict(r) for r in ROWS]
    rows[1][column] = "Saturn" if column != "options" else ["Saturn"]
    q = _jsonl(tmp_path / "q.jsonl", rows)
    refuse(mcq(tmp_path, q), tmp_path, expect=["q.jsonl: line 2", f"field {column!r}", "A, B, C, D"])


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--n-bootstrap", "1000000000"], "--n-bootstrap: must be <= 1,000,000"),
        (["--batch-size", "10000000"], "--batch-size: must be <="),
        (["--max-new-tokens", "99999999999"], "--max-new-tokens: must be <="),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**32)], "--seed"),
    ],
)
def test_mcq_counts_and_seeds_are_bounded(args, expect, tmp_path, refuse):
    refuse(mcq(tmp_path, _questions(tmp_path), None, *args), tmp_path, expect=expect)


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "complete", "--model", "m", "--out", "o", "--seed", "-1"],
        [
            "eval",
            "model",
            "--model",
            "m",
            "--label",
            "x",
            "--role",
            "base",
            "--questions",
            "q",
            "--heldout",
            "h",
        ]
        + ["--out", "o", "--seed", "-1"],
        ["eval", "ppl", "--model", "m", "--data", "d", "--out", "o", "--block-size", str(10**12)],
        ["data", "sft-convert", "--input", "lima=x.jsonl", "--out", "o", "--seed", "-5"],
    ],
    ids=["complete seed", "model seed", "ppl block size", "sft-convert seed"],
)
def test_seeds_and_lengths_are_bounded_in_every_command(argv, tmp_path, refuse):
    flag = argv[-2]
    refuse(argv, tmp_path, expect=[flag], cwd=tmp_path)


@pytest.mark.parametrize(
    ("block", "expect"),
    [(10**12, "data.block_size"), (4096, "max_position_embeddings 1024")],
    ids=["10^12", "above the model's context"],
)
def test_train_plan_refuses_an_absurd_block_size(block, expect, w, refuse):  # noqa: F811
    refuse(
        ["train", "plan", str(w.recipe), f"data.block_size={block}", "--tokens", "1e6"],
        w.root,
        expect=[expect],
        cwd=w.root,
    )


# ----------------------------------------------------------------- conversations: text and ids


def _orca(path: Path, rows: list[dict]) -> Path:
    return _jsonl(path, rows)


def _orca_row(i, q="What is a pulsar?", a="A rotating neutron star.", rid=None):
    return {"id": rid or f"o{i}", "system_prompt": "", "question": q, "response": a}


def test_a_lone_surrogate_never_reaches_a_shard(tmp_path, refuse):
    src = tmp_path / "orca.jsonl"
    src.write_text(
        json.dumps(_orca_row(0)) + "\n" + '{"id": "o1", "system_prompt": "", "question": "Why \\ud800?", '
        '"response": "Because."}\n'
    )
    out = tmp_path / "out"
    refuse(
        ["data", "sft-convert", "--input", f"openorca={src}", "--out", str(out)],
        tmp_path,
        expect=["orca.jsonl: line 2", "lone surrogate"],
    )
    assert not out.exists()


def test_two_different_rows_with_one_id_are_refused(tmp_path, refuse):
    src = _orca(tmp_path / "orca.jsonl", [_orca_row(0), _orca_row(1, q="What is a magnetar?", rid="o0")])
    refuse(
        ["data", "sft-convert", "--input", f"openorca={src}", "--out", str(tmp_path / "out")],
        tmp_path,
        expect=["orca.jsonl", "'openorca:o0' names two different conversations"],
    )


def test_an_identical_repeat_of_a_row_is_dropped_as_a_duplicate(tmp_path, run_astrollama):
    rows = [
        _orca_row(0),
        _orca_row(0),
        _orca_row(1, q="What is a magnetar?", a="A neutron star with a strong field."),
    ]
    src = _orca(tmp_path / "orca.jsonl", rows)
    r = run_astrollama(["data", "sft-convert", "--input", f"openorca={src}", "--out", str(tmp_path / "out")])
    assert r.code == 0, r.stderr[-2000:]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["sources"][0]["dropped"] == {"duplicate": 1}
    assert sum(stats["conversations"].values()) == 2
