"""``submission.csv``: the predictions sent to AstroMLab for a score on the public questions.

The public AstroMLab-1 file (``AstroMLab/Astrobench_MCQ_v1_Public``) has no answers; its dataset
card asks users to run their model, send the predicted answers by e-mail and receive the score
back (docs/eval-mcq.md, "Submitting to AstroMLab"). The card names no file layout, so the one we
write is the plainest that maps one to one onto their parquet:

* a header ``id,answer``;
* one row per question, in the order of the question file (for the public parquet: its rows);
* ``id``: the row index of the public parquet (0-based: ``0`` .. ``3845``) or the file's own id;
* ``answer``: one capital letter ``A``-``D``; empty only where an instruct reply had no parseable
  letter (the card asks for one answer to every question, so :func:`check_submission` reports them).

:func:`check_submission` checks a file against its question file before it is sent
(``astrollama eval mcq-check``): the header, the count, the ids in order, the letters.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from astrollama.benchmark import LETTERS, MCQInputError, QuestionSet

HEADER = ("id", "answer")


def submission_text(predictions: list[dict[str, Any]]) -> str:
    """The file's text: the header, then ``id,letter`` per prediction in order (empty if None)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for p in predictions:
        w.writerow([p["id"], p["prediction"] or ""])
    return buf.getvalue()


def check_submission(path: str | os.PathLike[str], questions: QuestionSet) -> dict[str, Any]:
    """Check ``path`` against ``questions``; return ``{n, n_blank, letters}`` or raise
    ``MCQInputError`` naming the file and line (1-based, the header is line 1).

    Checked: UTF-8, the header ``id,answer`` exactly, two fields per row, one row per question,
    the ids equal to the question ids in the same order, each answer one of ``A``-``D`` or empty.
    """
    p = Path(path)
    if not p.is_file():
        raise MCQInputError(f"{p}: no such file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise MCQInputError(f"{p}: not UTF-8 text (byte {e.start})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != HEADER:
        got = ",".join(rows[0]) if rows else "an empty file"
        raise MCQInputError(f"{p}: line 1: the header must be 'id,answer', got {got!r}")
    body = rows[1:]
    qs = questions.questions
    blank = 0
    counts = dict.fromkeys(LETTERS, 0)
    for i, row in enumerate(body):
        line = i + 2
        if len(row) != 2:
            raise MCQInputError(f"{p}: line {line}: expected 2 fields (id,answer), got {len(row)}")
        if i >= len(qs):
            raise MCQInputError(
                f"{p}: line {line}: {len(body)} answer rows, but {questions.path} has {len(qs)} questions"
            )
        qid, answer = row
        if qid != qs[i].id:
            raise MCQInputError(
                f"{p}: line {line}: id {qid!r}, expected {qs[i].id!r} (question {i} of {questions.path}, "
                "in file order)"
            )
        if answer == "":
            blank += 1
        elif answer in counts:
            counts[answer] += 1
        else:
            raise MCQInputError(f"{p}: line {line}: answer {answer!r} is not one of A, B, C, D (or empty)")
    if len(body) != len(qs):
        raise MCQInputError(
            f"{p}: {len(body)} answer rows, but {questions.path} has {len(qs)} questions "
            f"(first unanswered: id {qs[len(body)].id!r})"
        )
    return {"path": str(p), "n": len(body), "n_blank": blank, "letters": counts}
