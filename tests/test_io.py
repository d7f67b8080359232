"""The one JSONL reader: line numbers, torn tails, UTF-8, one-line errors in the caller's class."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from astrollama.data.manifest import ManifestError
from astrollama.errors import InputError
from astrollama.io import read_jsonl


def test_read_jsonl_lines_and_torn_tail(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes('{"a": 1}\n\n  \n{"t": "x\u2028y"}\n{"a": 3'.encode())
    with pytest.raises(InputError, match=r"a\.jsonl: line 5: invalid JSON"):
        list(read_jsonl(p))
    assert list(read_jsonl(p, tolerate_torn_tail=True)) == [(1, {"a": 1}), (4, {"t": "x\u2028y"})]
    p.write_bytes(b'{"a": 1}\n{"a": 2}')  # a complete last object without its newline is still torn
    assert list(read_jsonl(p, tolerate_torn_tail=True)) == [(1, {"a": 1})]
    assert list(read_jsonl(p)) == [(1, {"a": 1}), (2, {"a": 2})]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"a": 1}\n{"b": "\xff"}\n', r"line 2: not UTF-8 text \(byte 7 of the line\)"),
        (b'{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object, got list"),
        (b'{"a": 1}\n{"a": 1,}\n', r"line 2: invalid JSON \("),
    ],
)
def test_read_jsonl_errors_name_file_and_line(tmp_path: Path, data: bytes, problem: str) -> None:
    p = tmp_path / "b.jsonl"
    p.write_bytes(data)
    with pytest.raises(ManifestError, match=rf"^{p}: {problem}") as e:
        list(read_jsonl(p, error=ManifestError))
    assert "\n" not in str(e.value)


def test_read_jsonl_missing_and_not_regular(tmp_path: Path) -> None:
    p = tmp_path / "none.jsonl"
    with pytest.raises(InputError, match="none.jsonl: no such file"):
        list(read_jsonl(p))
    assert list(read_jsonl(p, missing_ok=True)) == []
    os.mkfifo(p)  # a FIFO in place of a log must be refused, not block the reader
    with pytest.raises(InputError, match="not a regular file"):
        list(read_jsonl(p, missing_ok=True))
