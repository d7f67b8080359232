"""Hostile inputs to ``astrollama eval``: MCQ question files, answer keys, held-out texts, and the
context-length policy.

Every refusal asserts exit 2, one line ``astrollama eval: error: <file>: <row/field>: <problem>``,
no traceback, and that nothing was written (no output directory). Question files are rejected
before any model is loaded, so most cases need no model; the context cases use ``tiny_model``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

ROWS = [
    {"question": f"Which body is number {i}?", "A": "Mars", "B": "Jupiter", "C": "Venus", "D": "Mercury"}
    for i in range(4)
]
ANSWERS = ["B", "A", "D", "C"]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _parquet(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def _questions(root: Path) -> Path:
    return _jsonl(root / "q.jsonl", ROWS)


def _key(root: Path, rows: list[dict], name: str = "key.jsonl") -> Path:
    return _jsonl(root / name, rows)


def mcq(root: Path, questions: Path, key: Path | None = None, *extra: str) -> list[str]:
    argv = [
        "eval",
        "mcq",
        "--model",
        str(root / "no-model-needed"),
        "--questions",
        str(questions),
        "--out",
        str(root / "out"),
    ]
    return argv + (["--key", str(key)] if key else []) + list(extra)


def _with(i: int, **changes) -> list[dict]:
    rows = [dict(r) for r in ROWS]
    rows[i].update(changes)
    return rows


# id -> (setup(root) -> argv, fragments of the one-line message)
CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    # ---- encodings ---------------------------------------------------------------------------
    "questions JSONL not UTF-8": (
        lambda r: mcq(r, _bytes(r / "q.jsonl", json.dumps(ROWS[0]).encode() + b'\n{"question": "\xff"}\n')),
        ["q.jsonl: line 2: not UTF-8"],
    ),
    "key JSONL not UTF-8": (
        lambda r: mcq(r, _questions(r), _bytes(r / "k.jsonl", b'{"id": "0", "correct": "\xe9"}\n')),
        ["k.jsonl: line 1: not UTF-8"],
    ),
    "key TXT not UTF-8": (
        lambda r: mcq(r, _questions(r), _bytes(r / "k.txt", b"A\nB\n\xff\nD\n")),
        ["k.txt: line 3: not UTF-8"],
    ),
    "questions CSV not UTF-8": (
        lambda r: mcq(r, _bytes(r / "q.csv", b"question,A,B,C,D\n\xff\xfe,a,b,c,d\n")),
        ["q.csv: not UTF-8"],
    ),
    # ---- key ids: honoured, duplicates and gaps refused --------------------------------------
    "key duplicate index": (
        lambda r: mcq(r, _questions(r), _key(r, [{"index": i % 3, "correct": "A"} for i in range(4)])),
        ["key.jsonl: line 4: duplicate id '0'"],
    ),
    "key index gap": (
        lambda r: mcq(r, _questions(r), _key(r, [{"index": i, "correct": "A"} for i in (0, 1, 2, 5)])),
        ["key.jsonl: line 4: id '5' is not a question id"],
    ),
    "key id and index disagree": (
        lambda r: mcq(
            r,
            _questions(r),
            _key(r, [{"id": str(i), "index": i + (i == 2), "correct": "A"} for i in range(4)]),
        ),
        ["key.jsonl: line 3: fields 'id' and 'index' disagree"],
    ),
    "key index a float": (
        lambda r: mcq(r, _questions(r), _key(r, [{"index": i + 0.5, "correct": "A"} for i in range(4)])),
        ["key.jsonl: line 1: field 'index' must be text or an integer, got float"],
    ),
    "key id a list": (
        lambda r: mcq(r, _questions(r), _key(r, [{"id": [i], "correct": "A"} for i in range(4)])),
        ["key.jsonl: line 1: field 'id' must be text or an integer, got list"],
    ),
    "key id missing on one row": (
        lambda r: mcq(
            r, _questions(r), _key(r, [{"id": "0", "correct": "A"}, *({"correct": "B"} for _ in range(3))])
        ),
        ["key.jsonl: line 2: field 'id' is missing"],
    ),
    "key too short": (
        lambda r: mcq(r, _questions(r), _key(r, [{"correct": "A"}] * 3)),
        ["key.jsonl: 3 key rows"],
    ),
    "key letter E": (
        lambda r: mcq(r, _questions(r), _key(r, [{"correct": L} for L in "ABCE"])),
        ["key.jsonl: line 4: field 'correct' is 'E'"],
    ),
    "key letter a number": (
        lambda r: mcq(r, _questions(r), _key(r, [{"correct": 1}] * 4)),
        ["key.jsonl: line 1: field 'correct' must be text, got int"],
    ),
    "parquet key index duplicated": (
        lambda r: mcq(r, _questions(r), _parquet(r / "k.parquet", [{"index": 0, "correct": "A"}] * 4)),
        ["k.parquet: row 1: duplicate id '0'"],
    ),
    # ---- strict types in question files -------------------------------------------------------
    "option a number": (
        lambda r: mcq(r, _jsonl(r / "q.jsonl", _with(1, C=42))),
        ["q.jsonl: line 2: field 'C' must be text, got int"],
    ),
    "option a list": (
        lambda r: mcq(r, _jsonl(r / "q.jsonl", _with(2, A=["x", "y"]))),
        ["q.jsonl: line 3: field 'A' must be text, got list"],
    ),
    "option a bool": (
        lambda r: mcq(r, _jsonl(r / "q.jsonl", _with(0, D=True))),
        ["q.jsonl: line 1: field 'D' must be text, got bool"],
    ),
    "option NaN": (
        lambda r: mcq(r, _bytes(r / "q.jsonl", json.dumps(ROWS[0]).replace('"Mars"', "NaN").encode())),
        ["q.jsonl: line 1: option A is missing or empty"],
    ),
    "question a number": (
        lambda r: mcq(r, _jsonl(r / "q.jsonl", _with(3, question=7))),
        ["q.jsonl: line 4: field 'question' must be text, got int"],
    ),
    "parquet option numbers": (
        lambda r: mcq(r, _parquet(r / "q.parquet", [dict(x, B=i) for i, x in enumerate(ROWS)])),
        ["q.parquet: row 0: field 'B' must be text, got int 0"],
    ),
    "parquet option bytes": (
        lambda r: mcq(r, _parquet(r / "q.parquet", [dict(x, A=b"raw") for x in ROWS])),
        ["q.parquet: row 0: field 'A' must be text, got bytes"],
    ),
    "parquet option lists": (
        lambda r: mcq(r, _parquet(r / "q.parquet", [dict(x, D=["a", "b"]) for x in ROWS])),
        ["q.parquet: row 0: field 'D' must be text, got ndarray"],
    ),
    # ---- options and templates ----------------------------------------------------------------
    "template not UTF-8": (
        lambda r: mcq(r, _questions(r), None, "--template", str(_bytes(r / "t.txt", b"$question \xff"))),
        ["t.txt: not UTF-8"],
    ),
    "template unknown placeholder": (
        lambda r: mcq(
            r, _questions(r), None, "--template", str(_bytes(r / "t.txt", b"$question $A $B $C $D $E"))
        ),
        ["t.txt: unknown placeholders ['E']"],
    ),
    "--limit -3": (lambda r: mcq(r, _questions(r), None, "--limit", "-3"), ["--limit: must be >= 1, got -3"]),
    "--n-bootstrap 0": (
        lambda r: mcq(r, _questions(r), None, "--n-bootstrap", "0"),
        ["--n-bootstrap: must be >= 1"],
    ),
    "--batch-size 0": (
        lambda r: mcq(r, _questions(r), None, "--batch-size", "0"),
        ["--batch-size: must be >= 1"],
    ),
    # ---- file shape ---------------------------------------------------------------------------
    "questions a directory": (lambda r: mcq(r, r), ["is a directory, not a question or key file"]),
    "questions missing": (lambda r: mcq(r, r / "none.jsonl"), ["none.jsonl: no such file"]),
    "questions empty": (lambda r: mcq(r, _bytes(r / "q.jsonl", b"\n\n")), ["q.jsonl: empty file"]),
    "questions unsupported suffix": (
        lambda r: mcq(r, _bytes(r / "q.xml", b"<q/>")),
        ["q.xml: unsupported file type"],
    ),
    "questions invalid JSON line": (
        lambda r: mcq(r, _bytes(r / "q.jsonl", b'{"question": \n')),
        ["q.jsonl: line 1: invalid JSON"],
    ),
    "questions a JSON array line": (
        lambda r: mcq(r, _bytes(r / "q.jsonl", b"[1, 2]\n")),
        ["q.jsonl: line 1: expected a JSON object"],
    ),
    "questions broken parquet": (
        lambda r: mcq(r, _bytes(r / "q.parquet", b"PAR1 not really")),
        ["q.parquet: cannot read"],
    ),
    "question ids duplicated": (
        lambda r: mcq(r, _jsonl(r / "q.jsonl", [dict(x, id="same") for x in ROWS])),
        ["q.jsonl: line 2: duplicate id 'same'"],
    ),
    "mcq-split without a key": (
        lambda r: [
            "eval",
            "mcq-split",
            str(_questions(r)),
            "--public",
            str(r / "out" / "p.jsonl"),
            "--key",
            str(r / "out" / "k.jsonl"),
        ],
        ["q.jsonl: has no answer key"],
    ),
    # ---- held-out texts (LMFlow shards through the one reader) --------------------------------
    "ppl truncated shard": (
        lambda r: [
            "eval",
            "ppl",
            "--model",
            str(r / "m"),
            "--data",
            str(_shard_dir(r, '{"type": "text_on')),
            "--out",
            str(r / "out" / "p.json"),
        ],
        ["s.json: (json):", "truncated"],
    ),
    "ppl JSONL not UTF-8": (
        lambda r: [
            "eval",
            "ppl",
            "--model",
            str(r / "m"),
            "--data",
            str(_bytes(r / "h.jsonl", b'{"text": "ok"}\n{"text": "\xff"}\n')),
            "--out",
            str(r / "out" / "p.json"),
        ],
        ["h.jsonl: line 2: not UTF-8"],
    ),
    "ppl non-ASCII shard": (
        lambda r: [
            "eval",
            "ppl",
            "--model",
            str(r / "m"),
            "--data",
            str(_shard_dir(r, '{"type": "text_only", "instances": [{"text": "\u00e9"}]}')),
            "--out",
            str(r / "out" / "p.json"),
        ],
        ["s.json: (encoding):"],
    ),
}


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _shard_dir(root: Path, text: str) -> Path:
    d = root / "held"
    d.mkdir()
    (d / "s.json").write_text(text)
    return d


@pytest.mark.parametrize("case", list(CASES))
def test_eval_refuses_hostile_input(case, tmp_path, refuse):
    setup, expect = CASES[case]
    argv = setup(tmp_path)
    refuse(argv, tmp_path, expect=expect, cwd=tmp_path)
    assert not (tmp_path / "out").exists()


def test_shuffled_key_with_index_is_matched_by_id(tmp_path):
    """The key's index column decides which question an answer belongs to, never the row order."""
    from astrollama.benchmark import load_questions

    q = _parquet(tmp_path / "q.parquet", ROWS)
    rows = [{"index": i, "correct": a} for i, a in enumerate(ANSWERS)]
    random.Random(3).shuffle(rows)
    assert [r["index"] for r in rows] != list(range(4))
    key = _parquet(tmp_path / "k.parquet", rows)
    assert [x.answer for x in load_questions(q, key)] == ANSWERS
    # the same key as a pandas index named "index" (how DataFrame.to_parquet stores a kept index)
    pd.DataFrame(rows).set_index("index").to_parquet(tmp_path / "k2.parquet")
    assert [x.answer for x in load_questions(q, tmp_path / "k2.parquet")] == ANSWERS


# ---- context length: refused, or left-truncated and counted beside the score ---------------------
def _long_questions(root: Path) -> Path:
    long = dict(ROWS[0], question="Consider the star. " * 800)  # far beyond tiny_model's 1024 positions
    return _jsonl(root / "long.jsonl", [dict(ROWS[1], correct="A"), dict(long, correct="B")])


def test_prompt_longer_than_the_context_is_refused_on_request(tiny_model, tmp_path, refuse):
    q = _long_questions(tmp_path)
    argv = [
        "eval",
        "mcq",
        "--model",
        str(tiny_model),
        "--questions",
        str(q),
        "--context-policy",
        "refuse",
        "--n-bootstrap",
        "10",
        "--out",
        str(tmp_path / "out"),
    ]
    refuse(argv, tmp_path, expect=["long.jsonl: line 2: question '1': the prompt is", "above the 1024"])


def test_prompt_longer_than_the_context_is_left_truncated_and_counted(tiny_model, tmp_path, run_astrollama):
    q = _long_questions(tmp_path)
    out = tmp_path / "out"
    r = run_astrollama(
        [
            "eval",
            "mcq",
            "--model",
            str(tiny_model),
            "--questions",
            str(q),
            "--n-bootstrap",
            "10",
            "--out",
            str(out),
        ]
    )
    assert r.code == 0 and "Traceback" not in r.stderr, r.stderr
    scores = json.loads((out / "scores.json").read_text())
    ctx = scores["settings"]["context"]
    assert scores["n_truncated"] == 1 and ctx["n_truncated"] == 1
    assert (ctx["max_length"], ctx["source"], ctx["policy"]) == (
        1024,
        "config.max_position_embeddings",
        "truncate",
    )
    assert ctx["truncated"][0]["id"] == "1" and ctx["truncated"][0]["tokens_cut"] > 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["truncated_tokens"] > 0 for p in preds] == [False, True]
    assert "left-truncated" in r.stderr
