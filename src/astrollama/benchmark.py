"""The astronomy MCQ benchmark file: question files, answer keys, validation (read by the evaluation
and by the data decontamination filter alike).

Accepted question files (the format is chosen by the file suffix):

* ``.parquet``: the public AstroMLab benchmark (``AstroMLab/Astrobench_MCQ_v1_Public``: columns
  ``question, A, B, C, D``, no key) or any table with those columns;
* ``.jsonl``: one JSON object per line with the same fields;
* ``.csv``: a header row with the same columns.

Optional columns: ``id`` or ``index`` (default: the 0-based row index as a string, which is also
the id the submission file uses for the public parquet; a parquet's named pandas index ``id`` or
``index`` counts as that column), and ``correct`` or ``answer`` (the key letter, A-D,
case-insensitive). A separate key file (``.jsonl``/``.csv``/``.parquet`` with a ``correct`` or
``answer`` column and an optional ``id``/``index``, or ``.txt`` with one letter per line) is
matched to the questions by id when it has ids (duplicates, ids that are not questions and
questions with no key row are refused), else by position.

Types are strict: question and options must be text (a number, list or bytes is refused with the
row named, never scored as its ``str()``); ids are text or integers. Files must be UTF-8.

Every problem raises ``MCQInputError`` with a one-line message naming the file and the row:
``line N`` (1-based) for JSONL and TXT, ``row N`` (0-based, as pandas numbers it) for parquet
and CSV, then the field.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from astrollama.errors import InputError
from astrollama.io import read_jsonl

log = logging.getLogger(__name__)

LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
KEY_FIELDS: tuple[str, ...] = ("correct", "answer")
ID_FIELDS: tuple[str, ...] = ("id", "index")


class MCQInputError(InputError):
    """A malformed question or key file; the message names the file and the row."""


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    options: dict[str, str]  # "A".."D" -> option text
    answer: str | None = None  # key letter, when known
    where: str = ""  # "line 3" / "row 2": for error messages


@dataclass
class QuestionSet:
    questions: list[Question]
    path: Path
    key_path: Path | None = None
    ids_given: bool = False  # the file had an ``id`` column
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions)

    @property
    def keyed(self) -> bool:
        return bool(self.questions) and all(q.answer is not None for q in self.questions)

    def head(self, n: int) -> QuestionSet:
        """The first ``n`` questions (quick runs)."""
        return replace(self, questions=self.questions[:n])


# ------------------------------------------------------------------------------------------------
# reading rows


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def _utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file; a line that does not decode is an :class:`MCQInputError`."""
    from astrollama.untrusted import LIMITS, open_regular

    fh, _ = open_regular(path, "table", error=MCQInputError)
    with fh:
        for lineno, raw in enumerate(iter(lambda: fh.readline(LIMITS["record"] + 1), b""), 1):
            if len(raw) > LIMITS["record"]:
                raise MCQInputError(f"{path}: line {lineno}: longer than the limit for one record")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise MCQInputError(
                    f"{path}: line {lineno}: not UTF-8 text (byte {e.start} of the line)"
                ) from None


def _read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, row)`` pairs from a JSONL, CSV, parquet or TXT file."""
    from astrollama.untrusted import check_file

    if path.is_dir():
        raise MCQInputError(f"{path}: is a directory, not a question or key file")
    if not os.path.lexists(path):
        raise MCQInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    check_file(path, "jsonl" if suffix == ".jsonl" else "table", error=MCQInputError)  # regular, bounded
    rows: list[tuple[str, dict[str, Any]]] = []
    if suffix == ".jsonl":
        rows = [(f"line {lineno}", obj) for lineno, obj in read_jsonl(path, error=MCQInputError)]
    elif suffix in {".csv", ".parquet"}:
        import pandas as pd

        try:
            if suffix == ".csv":
                df = pd.read_csv(path, dtype=str, keep_default_na=False)
            else:
                df = pd.read_parquet(path)
                if df.index.name in ID_FIELDS:  # a stored pandas index named id/index is the id column
                    df = df.reset_index()
        except UnicodeDecodeError as e:
            raise MCQInputError(f"{path}: not UTF-8 text (byte {e.start})") from None
        except Exception as e:  # pandas/pyarrow raise many types for a broken file
            raise MCQInputError(f"{path}: cannot read ({type(e).__name__}: {e})") from e
        records = df.to_dict(orient="records")
        rows = [(f"row {i}", r) for i, r in enumerate(records)]
    elif suffix == ".txt":
        for lineno, line in _utf8_lines(path):
            if line.strip():
                rows.append((f"line {lineno}", {"correct": line.strip()}))
    else:
        raise MCQInputError(f"{path}: unsupported file type {suffix!r} (use .parquet, .jsonl or .csv)")
    if not rows:
        raise MCQInputError(f"{path}: empty file (no rows)")
    return rows


def _text(path: Path, where: str, field: str, v: Any) -> str:
    """A text field, strictly: numbers, lists, bytes ... are refused (never scored as their str())."""
    if not isinstance(v, str):
        raise MCQInputError(
            f"{path}: {where}: field {field!r} must be text, got {type(v).__name__} {_short(v)}"
        )
    return v


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _key_letter(path: Path, where: str, row: dict[str, Any]) -> str | None:
    """The key letter of a row (``correct`` or ``answer``), validated; None when absent."""
    found = {f: row[f] for f in KEY_FIELDS if f in row and not _is_missing(row[f])}
    if not found:
        return None
    letters = set()
    for f, v in found.items():
        letter = _text(path, where, f, v).strip().upper()
        if letter not in LETTERS:
            raise MCQInputError(f"{path}: {where}: field {f!r} is {v!r}, expected one letter A, B, C or D")
        letters.add(letter)
    if len(letters) > 1:
        raise MCQInputError(f"{path}: {where}: fields 'correct' and 'answer' disagree ({found})")
    return letters.pop()


_OPTION_LIKE = re.compile(r"(?i)^(?:[a-z]|(?:option|choice)s?(?:[ _-]?[a-z0-9]+)?)$")


def _check_option_columns(path: Path, where: str, row: dict[str, Any]) -> None:
    """The options are exactly A, B, C and D: a fifth option column (``E``), a lower-case letter
    or an ``options``/``choice_e`` column is refused, never silently dropped (a question scored on
    four of its five options is a different question)."""
    for k in row:
        if isinstance(k, str) and k not in LETTERS and _OPTION_LIKE.match(k):
            raise MCQInputError(
                f"{path}: {where}: field {k!r}: an option column other than A, B, C, D; the benchmark "
                "has exactly four options (remove the column or the question)"
            )


def _has_id(row: dict[str, Any]) -> bool:
    return any(f in row for f in ID_FIELDS)


def _row_id(path: Path, where: str, row: dict[str, Any]) -> str | None:
    """The row's id from ``id`` or ``index`` (which must agree when both are given)."""
    ids: dict[str, str] = {}
    for f in ID_FIELDS:
        if f not in row:
            continue
        v = row[f]
        if _is_missing(v):
            raise MCQInputError(f"{path}: {where}: field {f!r} is empty")
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # numpy scalar from parquet
            v = v.item() if getattr(v, "ndim", 0) == 0 else v
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise MCQInputError(
                f"{path}: {where}: field {f!r} must be text or an integer, got {type(v).__name__} {_short(v)}"
            )
        ids[f] = str(v).strip()
    if len(set(ids.values())) > 1:
        raise MCQInputError(f"{path}: {where}: fields 'id' and 'index' disagree ({ids})")
    return next(iter(ids.values()), None)


def _check_unique(path: Path, ids: list[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for where, qid in ids:
        if qid in seen:
            raise MCQInputError(f"{path}: {where}: duplicate id {qid!r} (first at {seen[qid]})")
        seen[qid] = where


# ------------------------------------------------------------------------------------------------
# public API

# where the public AstroMLab-1 file comes from (one line, for a missing --questions parquet)
BENCHMARK_REPO = "AstroMLab/Astrobench_MCQ_v1_Public"
BENCHMARK_FILE = "train-00000-of-00001.parquet"  # in the dataset's data/ folder
BENCHMARK_HINT = (
    f"the public AstroMLab-1 questions (3,846 rows, no answers) are {BENCHMARK_REPO}/data/{BENCHMARK_FILE} "
    f'(a Hugging Face dataset): on a machine with network, `python -c "from huggingface_hub import '
    f"hf_hub_download as d; print(d('{BENCHMARK_REPO}', '{BENCHMARK_FILE}', subfolder='data', "
    "repo_type='dataset'))\"`, then copy that file to this path (docs/eval-mcq.md, 'The benchmark file')"
)


def load_questions(
    path: str | os.PathLike[str], key_path: str | os.PathLike[str] | None = None
) -> QuestionSet:
    """Read and validate a question file, and optionally a separate answer key.

    Raises ``MCQInputError`` naming the file and row for: an unreadable or empty file, a missing
    or empty question or option, a key letter that is not A-D, duplicate ids, a key file whose
    length (or ids) differ from the questions.
    """
    p = Path(path)
    if not p.exists() and (p.suffix.lower() == ".parquet" or "astrobench" in p.name.lower()):
        raise MCQInputError(f"{p}: no such file; {BENCHMARK_HINT}")
    rows = _read_rows(p)
    ids_given = any(_has_id(r) for _, r in rows)
    questions: list[Question] = []
    id_rows: list[tuple[str, str]] = []
    for index, (where, row) in enumerate(rows):
        if _is_missing(row.get("question")):
            raise MCQInputError(f"{p}: {where}: field 'question' is missing or empty")
        text = _text(p, where, "question", row["question"])
        _check_option_columns(p, where, row)
        options: dict[str, str] = {}
        for letter in LETTERS:
            v = row.get(letter)
            if _is_missing(v):
                raise MCQInputError(f"{p}: {where}: option {letter} is missing or empty")
            options[letter] = _text(p, where, letter, v).strip()
        qid = _row_id(p, where, row) if ids_given else str(index)
        if qid is None:
            raise MCQInputError(f"{p}: {where}: field 'id' is missing (other rows have one)")
        id_rows.append((where, qid))
        questions.append(
            Question(
                id=qid, question=text.strip(), options=options, answer=_key_letter(p, where, row), where=where
            )
        )
    _check_unique(p, id_rows)
    n_keyed = sum(q.answer is not None for q in questions)
    if 0 < n_keyed < len(questions):
        first = next(q for q in questions if q.answer is None)
        raise MCQInputError(
            f"{p}: {first.where}: no 'correct'/'answer' letter, while {n_keyed} other rows have one"
        )
    qs = QuestionSet(questions=questions, path=p, ids_given=ids_given)
    if key_path is not None:
        qs = apply_key(qs, key_path)
    log.info("%s: %d questions%s", p, len(qs), " (keyed)" if qs.keyed else " (no key)")
    return qs


def apply_key(qs: QuestionSet, key_path: str | os.PathLike[str]) -> QuestionSet:
    """Attach the answers of a separate key file to ``qs`` (by id when the key has ids)."""
    kp = Path(key_path)
    rows = _read_rows(kp)
    key_ids_given = any(_has_id(r) for _, r in rows)
    entries: list[tuple[str, str | None, str]] = []  # where, id, letter
    for where, row in rows:
        letter = _key_letter(kp, where, row)
        if letter is None:
            raise MCQInputError(f"{kp}: {where}: no answer letter (field 'correct' or 'answer')")
        kid = _row_id(kp, where, row) if key_ids_given else None
        if key_ids_given and kid is None:
            raise MCQInputError(f"{kp}: {where}: field 'id' is missing (other rows have one)")
        entries.append((where, kid, letter))
    if len(entries) != len(qs):
        raise MCQInputError(
            f"{kp}: {len(entries)} key rows, but {qs.path} has {len(qs)} questions "
            f"(first unmatched: {_first_unmatched(kp, entries, qs)})"
        )
    if qs.keyed:
        log.warning("%s already has answers; the key file %s replaces them", qs.path, kp)
    if key_ids_given:
        _check_unique(kp, [(w, i) for w, i, _ in entries if i is not None])
        by_id = {i: (w, letter) for w, i, letter in entries}
        known = {q.id for q in qs}
        for w, i, _ in entries:
            if i not in known:
                raise MCQInputError(f"{kp}: {w}: id {i!r} is not a question id of {qs.path}")
        answers = [by_id[q.id][1] for q in qs]
    else:
        answers = [letter for _, _, letter in entries]
    questions = [replace(q, answer=a) for q, a in zip(qs.questions, answers, strict=True)]
    return replace(qs, questions=questions, key_path=kp)


def _first_unmatched(kp: Path, entries: list[tuple[str, str | None, str]], qs: QuestionSet) -> str:
    if len(entries) > len(qs):
        return f"{kp} {entries[len(qs)][0]}"
    q = qs.questions[len(entries)]
    return f"{qs.path} {q.where} (id {q.id!r})"


def write_public_and_key(
    qs: QuestionSet, public_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Split a keyed set into the public form (no answers) and a separate key file.

    ``public_path`` may be ``.jsonl`` or ``.parquet`` (the AstroMLab public layout: question, A-D;
    no id column, so ids are row indices); the key is JSONL ``{"id", "correct"}``.
    """
    from astrollama.io import atomic_path, atomic_write_text

    if not qs.keyed:
        raise MCQInputError(f"{qs.path}: has no answer key to split off")
    pub, key = Path(public_path), Path(key_path)
    records = [{"question": q.question, **q.options} for q in qs]
    if pub.suffix == ".parquet":
        import pandas as pd

        with atomic_path(pub) as tmp:
            pd.DataFrame.from_records(records, columns=["question", *LETTERS]).to_parquet(tmp, index=False)
        key_ids = [str(i) for i in range(len(qs))]
    else:
        lines = [json.dumps({"id": q.id, **r}, ensure_ascii=False) for q, r in zip(qs, records, strict=True)]
        atomic_write_text(pub, "\n".join(lines) + "\n")
        key_ids = [q.id for q in qs]
    atomic_write_text(
        key,
        "".join(json.dumps({"id": i, "correct": q.answer}) + "\n" for i, q in zip(key_ids, qs, strict=True)),
    )
    return pub, key
