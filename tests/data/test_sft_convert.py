"""sft-convert: LIMA / OpenOrca / UltraChat layouts -> LMFlow conversation shards.

Every input file is written here, with our own text, in the layout each set is downloaded in
(JSONL, and parquet written with pyarrow).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from astrollama.cli import main
from astrollama.data.sft_convert import ConvertConfig, Source, convert
from astrollama.io import OutputError
from astrollama.lmflow_data import read_conversation_dir

MCQ = Path(__file__).parent / "fixtures" / "corpus" / "mcq.jsonl"
LIMA = [
    {
        "conversations": [
            "Why do comets grow tails near the Sun?",
            "Sunlight heats the ice, gas and dust stream away, and the solar wind pushes them back.",
        ],
        "source": "stackexchange",
    },
    {
        "conversations": [
            "Name a gas giant.",
            "Jupiter.",
            "And an ice giant?",
            "Neptune is one; Uranus is the other.",
        ],
        "source": "multi_turn",
    },
    {
        "conversations": [
            "What colour is a red dwarf?",
            "Mostly orange to red, because its surface is cool.",
        ],
        "source": "wikihow",
    },
]


def orca_rows(n: int) -> list[dict]:
    return [
        {
            "id": f"flan.{i}",
            "system_prompt": "You are a helpful assistant." if i % 2 else "",
            "question": f"Add {i} and {i + 1}.",
            "response": f"The sum of {i} and {i + 1} is {2 * i + 1}.",
        }
        for i in range(n)
    ]


ULTRA = [
    {
        "prompt": "Suggest a name for a small telescope club.",
        "prompt_id": "u1",
        "messages": [
            {"role": "user", "content": "Suggest a name for a small telescope club."},
            {"role": "assistant", "content": "How about 'The Dark Sky Circle'?"},
            {"role": "user", "content": "Something shorter?"},
            {"role": "assistant", "content": "'Starlight'."},
        ],
    },
    {
        "prompt": "How long is a day on Mars?",
        "prompt_id": "u2",
        "messages": [
            {"role": "user", "content": "How long is a day on Mars?"},
            {"role": "assistant", "content": "About 24 hours and 40 minutes."},
        ],
    },
]


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def tree(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def run(*args: str) -> int:
    return main(["data", "sft-convert", *map(str, args)])


def test_each_layout_converts_and_loads_as_lmflow_conversations(tmp_path: Path, capsys) -> None:
    lima = jsonl(tmp_path / "train.jsonl", LIMA)
    orca = parquet(tmp_path / "1M-GPT4-Augmented.parquet", orca_rows(6))
    ultra = parquet(tmp_path / "train_sft-00000-of-00003.parquet", ULTRA)
    out = tmp_path / "sft"
    args = [
        "--input",
        f"lima={lima}",
        "--input",
        f"openorca={orca}",
        "--input",
        f"ultrachat={ultra}",
        "--validation-fraction",
        "0.3",
        "--out",
    ]
    assert run(*args, out) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["train"] > 0
    convs = read_conversation_dir(out / "train") + read_conversation_dir(out / "validation")
    byid = {c["conversation_id"]: c for c in convs}
    assert len(byid) == 3 + 6 + 2
    assert [m["role"] for m in byid["lima:1"]["messages"]] == ["user", "assistant"] * 2
    assert byid["lima:1"]["messages"][3]["content"] == "Neptune is one; Uranus is the other."
    assert byid["openorca:flan.1"]["system"] == "You are a helpful assistant."
    assert byid["openorca:flan.0"]["system"] == ""
    assert byid["openorca:flan.3"]["messages"][1]["content"] == "The sum of 3 and 4 is 7."
    assert len(byid["ultrachat:u1"]["messages"]) == 4
    names = sorted(p.name for p in (out / "train").iterdir())
    assert names[0].startswith("lima-") and all(
        n.split("-")[0] in {"lima", "openorca", "ultrachat"} for n in names
    )
    stats = json.loads((out / "stats.json").read_text())
    assert [s["rows"] for s in stats["sources"]] == [3, 6, 2]
    assert sum(stats["conversations"].values()) == 11
    # same inputs -> byte-identical output; a rerun replaces its own output in place
    assert run(*args, tmp_path / "again") == 0
    assert tree(out) == tree(tmp_path / "again")
    assert run(*args, out) == 0 and tree(out) == tree(tmp_path / "again")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_limit_is_a_seeded_sample_in_file_order(tmp_path: Path) -> None:
    orca = jsonl(tmp_path / "orca.jsonl", orca_rows(50))

    def ids(seed: int, name: str) -> list[str]:
        cfg = ConvertConfig(seed=seed, validation_fraction=0.0)
        convert([Source("openorca", orca, 10)], tmp_path / name, config=cfg, progress=False)
        return [c["conversation_id"] for c in read_conversation_dir(tmp_path / name / "train")]

    a, b, c = ids(0, "a"), ids(0, "b"), ids(1, "c")
    assert len(a) == 10 and a == b and a != c
    assert a == sorted(a, key=lambda s: int(s.split(".")[1]))  # file order kept
    assert not (tmp_path / "a" / "validation").exists()  # an empty split is not written


def test_benchmark_overlap_and_duplicates_are_dropped(tmp_path: Path) -> None:
    q = json.loads(MCQ.read_text().splitlines()[0])["question"]
    rows = orca_rows(4)
    rows[1]["response"] = f"A classic exam item reads: {q} The answer is dark matter."
    rows[3] = {**rows[2], "id": "flan.copy"}  # same text under another id
    stats = convert(
        [Source("openorca", jsonl(tmp_path / "o.jsonl", rows))],
        tmp_path / "out",
        config=ConvertConfig(validation_fraction=0.0),
        mcq_path=MCQ,
        progress=False,
    )
    assert stats["sources"][0]["dropped"] == {"contaminated": 1, "duplicate": 1}
    assert stats["decontamination"]["matches"][0]["conversation_id"] == "openorca:flan.1"
    kept = [c["conversation_id"] for c in read_conversation_dir(tmp_path / "out" / "train")]
    assert kept == ["openorca:flan.0", "openorca:flan.2"]


def _bad_parquet(p: Path) -> Path:
    p.write_bytes(b"PAR1" + b"\x00garbage" * 50)
    return p


BAD = {
    "role order": (
        "ultrachat",
        lambda d: jsonl(d / "u.jsonl", [{**ULTRA[1], "messages": ULTRA[1]["messages"][::-1]}]),
        "u.jsonl: line 1: messages[0]: role is 'assistant', expected 'user'",
    ),
    "empty turn": (
        "lima",
        lambda d: jsonl(d / "l.jsonl", [LIMA[0], {"conversations": ["Hi?", "  "], "source": "x"}]),
        "l.jsonl: line 2: conversations[1]: empty turn",
    ),
    "non-string": (
        "openorca",
        lambda d: jsonl(d / "o.jsonl", [{**orca_rows(1)[0], "response": 42}]),
        "o.jsonl: line 1: response: must be a string, got int",
    ),
    "huge field": (
        "openorca",
        lambda d: jsonl(d / "o.jsonl", [{**orca_rows(1)[0], "question": "x" * 5000}]),
        "o.jsonl: line 1: question: 5000 characters, above --max-turn-chars 4000",
    ),
    "no reply": (
        "lima",
        lambda d: jsonl(d / "test.jsonl", [{"conversations": ["Only a prompt."], "source": "x"}]),
        "test.jsonl: line 1: conversations[0]: 1 turn(s)",
    ),
    "bad json": (
        "lima",
        lambda d: (d / "l.jsonl").write_text(json.dumps(LIMA[0]) + "\n{oops\n") and d / "l.jsonl",
        "l.jsonl: line 2: invalid JSON",
    ),
    "bad parquet": ("openorca", lambda d: _bad_parquet(d / "o.parquet"), "o.parquet: (parquet): cannot read"),
    "missing column": (
        "ultrachat",
        lambda d: parquet(d / "u.parquet", [{"prompt": "p", "prompt_id": "1"}]),
        "u.parquet: (columns): missing ['messages']",
    ),
    "nested non-string": (
        "ultrachat",
        lambda d: parquet(
            d / "u.parquet",
            [
                {
                    "prompt": "p",
                    "prompt_id": "1",
                    "messages": [{"role": "user", "content": "p"}, {"role": "assistant", "content": None}],
                }
            ],
        ),
        "u.parquet: row 0: messages[1]: must be a string, got NoneType",
    ),
    "csv": (
        "lima",
        lambda d: (d / "l.csv").write_text("a,b\n") and d / "l.csv",
        "l.csv: unsupported file type '.csv'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, capsys, case: str) -> None:
    fmt, make, want = BAD[case]
    good = jsonl(tmp_path / "good.jsonl", orca_rows(3))
    path = make(tmp_path)
    out = tmp_path / "out"
    rc = run(
        "--input", f"openorca={good}", "--input", f"{fmt}={path}", "--max-turn-chars", 4000, "--out", out
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert want in err and len(err.splitlines()) == 1, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_refuses_foreign_output_dir_and_bad_options(tmp_path: Path, capsys) -> None:
    good = jsonl(tmp_path / "good.jsonl", orca_rows(2))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="is not an output of this command"):
        convert([Source("openorca", good)], tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    for args in (
        ["--input", "orca=x.jsonl"],
        ["--input", f"openorca={good}", "--limit", "0"],
        ["--input", f"openorca={good}", "--validation-fraction", "1"],
    ):
        assert run(*args, "--out", tmp_path / "o") == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
