"""MCQ inputs: the bundled sample, public parquet + key, and every malformed-input error."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from astrollama.benchmark import MCQInputError, load_questions, write_public_and_key

SAMPLE = Path(__file__).resolve().parents[2] / "eval" / "data" / "astro_mcq_sample.jsonl"
ROW = {"question": "Which planet is largest?", "A": "Mars", "B": "Jupiter", "C": "Venus", "D": "Mercury"}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bundled_sample_is_keyed_balanced_and_original_sized():
    qs = load_questions(SAMPLE)
    assert len(qs) >= 60 and qs.keyed and qs.ids_given
    counts = Counter(q.answer for q in qs)
    assert set(counts) == set("ABCD") and max(counts.values()) - min(counts.values()) <= 1
    assert len({q.question for q in qs}) == len(qs)  # no duplicated question
    for q in qs:  # four distinct options
        assert len(set(q.options.values())) == 4


def test_public_parquet_plus_key_roundtrip(tmp_path):
    keyed = load_questions(SAMPLE)
    pub, key = write_public_and_key(keyed, tmp_path / "public.parquet", tmp_path / "key.jsonl")
    df = pd.read_parquet(pub)
    assert list(df.columns) == ["question", "A", "B", "C", "D"]  # the AstroMLab public layout
    public = load_questions(pub)
    assert not public.keyed and [q.id for q in public] == [str(i) for i in range(len(keyed))]
    rejoined = load_questions(pub, key_path=key)
    assert rejoined.keyed and rejoined.key_path == key
    assert [q.answer for q in rejoined] == [q.answer for q in keyed]


def test_key_by_position_and_answer_field_and_txt(tmp_path):
    qfile = _jsonl(tmp_path / "q.jsonl", [dict(ROW), dict(ROW, question="Second?")])
    (tmp_path / "k.txt").write_text("b\nD\n")
    assert [q.answer for q in load_questions(qfile, tmp_path / "k.txt")] == ["B", "D"]
    f = _jsonl(tmp_path / "a.jsonl", [dict(ROW, answer="C")])
    assert load_questions(f).questions[0].answer == "C"
    csv = tmp_path / "q.csv"
    pd.DataFrame([dict(ROW, id="x1", correct="A")]).to_csv(csv, index=False)
    q = load_questions(csv).questions[0]
    assert (q.id, q.answer, q.options["B"]) == ("x1", "A", "Jupiter")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([ROW, {k: v for k, v in ROW.items() if k != "C"}], r"q\.jsonl: line 2: option C is missing"),
        ([ROW, dict(ROW, D="  ")], r"line 2: option D is missing or empty"),
        ([dict(ROW, question="")], r"line 1: field 'question' is missing"),
        ([dict(ROW, correct="E")], r"line 1: field 'correct' is 'E', expected one letter"),
        ([dict(ROW, correct="A"), dict(ROW, correct="AB")], r"line 2: field 'correct' is 'AB'"),
        (
            [dict(ROW, id="q1"), dict(ROW, id="q2"), dict(ROW, id="q1")],
            r"line 3: duplicate id 'q1' \(first at line 1\)",
        ),
        ([dict(ROW, correct="A"), dict(ROW)], r"line 2: no 'correct'/'answer' letter"),
        ([dict(ROW, correct="A", answer="B")], r"line 1: fields 'correct' and 'answer' disagree"),
    ],
)
def test_malformed_question_file_names_the_row(tmp_path, rows, match):
    with pytest.raises(MCQInputError, match=match):
        load_questions(_jsonl(tmp_path / "q.jsonl", rows))


def test_parquet_errors_name_the_row(tmp_path):
    p = tmp_path / "pub.parquet"
    pd.DataFrame([ROW, dict(ROW, B=None), ROW]).to_parquet(p)
    with pytest.raises(MCQInputError, match=r"pub\.parquet: row 1: option B is missing"):
        load_questions(p)


def test_empty_and_unreadable_files(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(MCQInputError, match=r"e\.jsonl: empty file"):
        load_questions(tmp_path / "e.jsonl")
    (tmp_path / "bad.jsonl").write_text(json.dumps(ROW) + "\n{oops\n")
    with pytest.raises(MCQInputError, match=r"bad\.jsonl: line 2: invalid JSON"):
        load_questions(tmp_path / "bad.jsonl")
    with pytest.raises(MCQInputError, match="no such file"):
        load_questions(tmp_path / "missing.parquet")
    pd.DataFrame(columns=["question", "A", "B", "C", "D"]).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(MCQInputError, match=r"e\.parquet: empty file"):
        load_questions(tmp_path / "e.parquet")


def test_bad_key_files(tmp_path):
    qfile = _jsonl(tmp_path / "q.jsonl", [ROW, dict(ROW, question="2?"), dict(ROW, question="3?")])
    short = _jsonl(tmp_path / "short.jsonl", [{"correct": "A"}, {"correct": "B"}])
    with pytest.raises(
        MCQInputError, match=r"short\.jsonl: 2 key rows, but .*q\.jsonl has 3 questions .*line 3"
    ):
        load_questions(qfile, short)
    bad = _jsonl(tmp_path / "bad.jsonl", [{"correct": "A"}, {"correct": "x"}, {"correct": "C"}])
    with pytest.raises(MCQInputError, match=r"bad\.jsonl: line 2: field 'correct' is 'x'"):
        load_questions(qfile, bad)
    dup = _jsonl(
        tmp_path / "dup.jsonl",
        [{"id": "0", "correct": "A"}, {"id": "0", "correct": "B"}, {"id": "2", "correct": "C"}],
    )
    with pytest.raises(MCQInputError, match=r"dup\.jsonl: line 2: duplicate id '0'"):
        load_questions(qfile, dup)
    unknown = _jsonl(
        tmp_path / "unk.jsonl",
        [{"id": "0", "correct": "A"}, {"id": "1", "correct": "B"}, {"id": "7", "correct": "C"}],
    )
    with pytest.raises(MCQInputError, match=r"unk\.jsonl: line 3: id '7' is not a question id"):
        load_questions(qfile, unknown)
    blank = _jsonl(tmp_path / "blank.jsonl", [{"correct": "A"}, {"correct": ""}, {"correct": "C"}])
    with pytest.raises(MCQInputError, match=r"blank\.jsonl: line 2: no answer letter"):
        load_questions(qfile, blank)
