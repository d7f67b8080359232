"""Every write is atomic and owned (astrollama.io: claim_dir, claim_file, owned_dir; docs/security.md).

For every command that writes an output, parametrised over the command:

* someone else's non-empty directory (or, for a file output, a directory or someone else's file)
  is refused with one line naming it, exit 2, and its tree is byte-for-byte untouched;
* an output that cannot be written is refused BEFORE the work starts (the inputs here are missing
  or bogus on purpose: the refusal must name the output, not the input);
* the command's own earlier output is recognised (replaced or resumed), also from an earlier
  version without the owner marker;
* a failure leaves nothing behind (no output, no temporary directory).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from astrollama.data.manifest import Manifest
from astrollama.io import OWNER_FILE, owner_of
from astrollama.lmflow_data import write_text_only

REPO = Path(__file__).resolve().parents[2]


def tree_hash(root: Path) -> dict[str, str]:
    """Every path under ``root`` (itself included) -> its kind and content hash."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    paths = [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]
    for p in paths:
        if p.is_symlink():
            out[str(p)] = f"link:{os.readlink(p)}"
        elif p.is_dir():
            out[str(p)] = "dir"
        else:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ------------------------------------------------------------------------------------- inputs


def _orca(tmp: Path, n: int = 6) -> Path:
    p = tmp / "orca.jsonl"
    rows = [
        {
            "id": f"flan.{i}",
            "system_prompt": "",
            "question": f"Add {i} and {i + 1}.",
            "response": f"{2 * i + 1}.",
        }
        for i in range(n)
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _papers(tmp: Path) -> Path:
    d = tmp / "papers"
    d.mkdir(exist_ok=True)
    src = sorted((REPO / "data" / "demo" / "papers").glob("*.json"))[:1]
    for f in src:
        (d / f.name).write_bytes(f.read_bytes())
    return d


def _questions(tmp: Path) -> Path:
    q = tmp / "q.jsonl"
    row = {
        "id": "q1",
        "question": "Which is a planet?",
        "A": "Mars",
        "B": "Sun",
        "C": "M31",
        "D": "Vega",
        "answer": "A",
    }
    q.write_text(json.dumps(row) + "\n")
    return q


def _heldout(tmp: Path) -> Path:
    h = tmp / "heldout"
    if not h.exists():
        write_text_only(h / "shard-00000.json", ["Quasars are active galactic nuclei."] * 3)
    return h


def _root(tmp: Path) -> Path:
    root = tmp / "root"
    if not (root / "manifest").exists():
        Manifest(root).upsert_papers([{"id": "2401.00101", "title": "paper"}])
    return root


TRAIN_RECIPE = """
name: owned
reproduces: "none: ownership test"
model:
  name_or_path: {model}
data:
  dataset_path: {data}
  block_size: 64
  packing: true
batch:
  global_batch_size: 8
  max_micro_batch_size: 4
launch:
  engine: local
  run_dir: {run_dir}
trainer:
  learning_rate: 1.0e-4
  max_steps: 4
  use_cpu: true
"""


def _train_recipe(tmp: Path, run_dir: Path) -> Path:
    model = tmp / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(
        json.dumps(
            {
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "intermediate_size": 128,
                "vocab_size": 512,
                "num_attention_heads": 4,
                "max_position_embeddings": 1024,
            }
        )
    )
    r = tmp / "train.yaml"
    r.write_text(
        textwrap.dedent(TRAIN_RECIPE).format(model=model, data=_heldout(tmp), run_dir=run_dir).lstrip()
    )
    return r


def _merge_recipe(tmp: Path, out: Path) -> Path:
    r = tmp / "merge.yaml"
    r.write_text(
        textwrap.dedent(
            f"""
            name: owned-merge
            reproduces: "none: ownership test"
            method: linear
            models:
              a:
                path: {tmp / "model-a"}
                weight: 0.5
              b:
                path: {tmp / "model-b"}
                weight: 0.5
            dtype: float32
            output_dir: {out}
            """
        ).lstrip()
    )
    return r


# ------------------------------------------------------------------- every command that writes

# name -> argv(tmp, out) for a command whose output is the DIRECTORY ``out``
DIR_OUTPUTS: dict[str, Callable[[Path, Path], list[str]]] = {
    "data build": lambda t, o: [
        "data", "build", "--root", str(_root(t)), "--out", str(o), "--tokenizer", str(t / "no-tok"),
        "--variants", "aic",
    ],
    "data sft-convert": lambda t, o: ["data", "sft-convert", "--input", f"openorca={_orca(t)}", "--out", str(o)],
    "data make-pdfs --out": lambda t, o: ["data", "make-pdfs", "--papers", str(_papers(t)), "--out", str(o)],
    "data make-pdfs --root": lambda t, o: ["data", "make-pdfs", "--papers", str(_papers(t)), "--root", str(o)],
    "data harvest json": lambda t, o: ["data", "harvest", "json", "--root", str(o), str(_papers(t))],
    "data nougat-random": lambda t, o: ["data", "nougat-random", "--preset", "tiny", "--out", str(o)],
    "eval mcq": lambda t, o: [
        "eval", "mcq", "--model", str(t / "no-model"), "--questions", str(_questions(t)), "--out", str(o),
    ],
    "eval model": lambda t, o: [
        "eval", "model", "--model", str(t / "no-model"), "--label", "a", "--role", "base",
        "--questions", str(_questions(t)), "--heldout", str(_heldout(t)), "--out", str(o),
    ],
    "eval embed": lambda t, o: [
        "eval", "embed", "--model", str(t / "no-model"), "--data", str(_heldout(t)), "--out", str(o),
    ],
    "eval report": lambda t, o: ["eval", "report", "--results", str(t / "no-results"), "--out", str(o)],
    "eval sweep": lambda t, o: [
        "eval", "sweep", "--run-dir", str(t / "no-run"), "--questions", str(_questions(t)),
        "--heldout", str(_heldout(t)), "--out", str(o),
    ],
    "train run": lambda t, o: ["train", "run", str(_train_recipe(t, o))],
    "merge": lambda t, o: ["merge", str(_merge_recipe(t, o))],
    "demo": lambda t, o: ["demo", "--workdir", str(o)],
    "models tiny": lambda t, o: ["models", "tiny", str(o)],
    "models smollm2": lambda t, o: ["models", "smollm2", "--dest", str(o)],
}  # fmt: skip

# name -> argv(tmp, out) for a command whose output is the FILE ``out``
FILE_OUTPUTS: dict[str, Callable[[Path, Path], list[str]]] = {
    "eval ppl": lambda t, o: ["eval", "ppl", "--model", str(t / "no-model"), "--data", str(_heldout(t)), "--out", str(o)],
    "eval complete": lambda t, o: ["eval", "complete", "--model", str(t / "no-model"), "--out", str(o)],
    "data quality": lambda t, o: ["data", "quality", "--root", str(_root(t)), "--out", str(o)],
    "data manifest export": lambda t, o: ["data", "manifest", "export", "--root", str(_root(t)), "--out", str(o)],
    "eval mcq-split --public": lambda t, o: [
        "eval", "mcq-split", str(_questions(t)), "--public", str(o), "--key", str(t / "key.jsonl"),
    ],
}  # fmt: skip


def _foreign(tmp: Path) -> Path:
    d = tmp / "someones"
    (d / "sub").mkdir(parents=True)
    (d / "thesis.tex").write_text("years of work\n")
    (d / "sub" / "data.csv").write_text("a,b\n1,2\n")
    (d / "stats.json").write_text('{"type": "text_only"}\n')  # a file another stage also writes
    return d


@pytest.mark.parametrize("name", sorted(DIR_OUTPUTS))
def test_foreign_directory_is_refused_and_untouched(name, tmp_path, refuse):
    out = _foreign(tmp_path)
    argv = DIR_OUTPUTS[name](tmp_path, out)
    before = tree_hash(out)
    refuse(argv, out, expect=[str(out), "not empty"])
    assert tree_hash(out) == before
    assert not list(tmp_path.glob(".someones.*")), "a temporary directory was left behind"


@pytest.mark.parametrize("name", sorted(FILE_OUTPUTS))
def test_file_output_refuses_a_directory_and_someones_file(name, tmp_path, refuse):
    out = _foreign(tmp_path)
    before = tree_hash(out)
    refuse(FILE_OUTPUTS[name](tmp_path, out), out, expect=[str(out), "directory"])
    assert tree_hash(out) == before
    if name.startswith(("eval ppl", "eval complete", "data quality")):  # JSON reports know their own
        mine = tmp_path / "notes.json"
        mine.write_text('{"my": "notes"}\n')
        refuse(FILE_OUTPUTS[name](tmp_path, mine), mine, expect=[str(mine), "not an output"])
        assert mine.read_text() == '{"my": "notes"}\n'


@pytest.fixture
def immutable(tmp_path):
    """``immutable(directory)``: a directory nothing can be created in, even by root (chattr +i)."""
    done: list[Path] = []

    def make(d: Path) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        if (
            shutil.which("chattr") is None
            or subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode
        ):
            pytest.skip("chattr +i is not available here")
        done.append(d)
        return d

    yield make
    for d in done:
        subprocess.run(["chattr", "-i", str(d)], capture_output=True)


@pytest.mark.parametrize("name", sorted(DIR_OUTPUTS) + sorted(FILE_OUTPUTS))
def test_unwritable_output_is_refused_before_the_work(name, tmp_path, refuse, immutable):
    argv_of = DIR_OUTPUTS.get(name) or FILE_OUTPUTS[name]
    parent = tmp_path / "ro"
    suffix = {"data manifest export": ".csv", "eval mcq-split --public": ".jsonl"}.get(name, ".json")
    out = parent / (f"out{suffix}" if name in FILE_OUTPUTS else "out")
    argv = argv_of(tmp_path, out)  # inputs first (they are written outside ``parent``)
    immutable(parent)
    # the inputs are missing or bogus on purpose: the output is checked before any of them is read
    r = refuse(argv, parent, expect=[str(out), "not writable"])
    assert len(r.stderr.strip().splitlines()) >= 1


@pytest.mark.parametrize("stage", ["aic", "ocr"])
def test_unwritable_stage_output_is_refused_before_any_paper(stage, tmp_path, refuse, immutable):
    """A per-paper stage whose output directory is unwritable stops before the first paper: no paper
    is recorded as failed (a rerun once it is fixed does them all)."""
    root = _root(tmp_path)
    immutable(root / stage)
    argv = ["data", stage, "--root", str(root)] + (
        ["--backend", "pdf-text", "--workers", "0"] if stage == "ocr" else []
    )
    refuse(argv, root, expect=[str(root / stage), "not writable"])
    assert not Manifest(root).failures(stage)


# ------------------------------------------------------------------------- own earlier outputs


def test_sft_convert_replaces_its_own_output_and_recognises_an_earlier_version(tmp_path, run_astrollama):
    orca, out = _orca(tmp_path), tmp_path / "sft"
    argv = ["data", "sft-convert", "--input", f"openorca={orca}", "--out", str(out)]
    assert run_astrollama(argv).code == 0
    assert owner_of(out) == "data sft-convert" and (out / "stats.json").is_file()
    first = tree_hash(out)
    assert run_astrollama(argv).code == 0  # the same again: replaced with the same content
    assert {Path(k).name for k in tree_hash(out)} == {Path(k).name for k in first}
    # an output of an earlier version (no owner marker): recognised by its stats.json and replaced
    (out / OWNER_FILE).unlink()
    assert run_astrollama(argv).code == 0 and owner_of(out) == "data sft-convert"
    assert not list(tmp_path.glob(".sft.*")), "a temporary directory was left behind"


def test_sft_convert_never_deletes_a_build_corpus(tmp_path, refuse):
    """The data-loss case: a `data build` variant holds a stats.json too; it is not sft-convert's."""
    corpus = tmp_path / "corpus" / "aic"
    write_text_only(corpus / "train" / "shard-00000.json", ["a document"])
    write_text_only(corpus / "validation" / "shard-00000.json", ["another one"])
    for name, text in {
        "papers.jsonl": '{"id": "2401.00101", "split": "train", "tokens": 3}\n',
        "drops.jsonl": "",
        "build.json": '{"variant": "aic", "fingerprint": "x", "format": 1}\n',
        "decontamination.json": "{}\n",
        "stats.json": '{"variant": "aic"}\n',
    }.items():
        (corpus / name).write_text(text)
    before = tree_hash(corpus)
    argv = ["data", "sft-convert", "--input", f"openorca={_orca(tmp_path)}", "--out", str(corpus)]
    refuse(argv, corpus, expect=[str(corpus), "not empty"])
    assert tree_hash(corpus) == before
    # an sft-convert output of an earlier version with a stranger's file in it is not taken either
    legacy = tmp_path / "legacy"
    write_text_only(legacy / "train" / "openorca-00000.json", ["x"])
    (legacy / "stats.json").write_text('{"type": "conversation", "sources": []}\n')
    (legacy / "notes.txt").write_text("mine\n")
    refuse(argv[:-1] + [str(legacy)], legacy, expect=[str(legacy), "not empty"])


def test_report_failure_leaves_nothing_and_an_earlier_report_as_it_was(tmp_path, refuse):
    out = tmp_path / "report"
    refuse(["eval", "report", "--results", str(tmp_path / "no-results"), "--out", str(out)], tmp_path)
    assert not out.exists() and not list(tmp_path.glob(".report.*")), "the failed report left files"
    # an earlier report (of a version without the marker): recognised as the report's own, and a
    # failing rerun leaves it exactly as it was
    out.mkdir()
    (out / "report.json").write_text('{"models": [], "reference": []}\n')
    (out / "report.md").write_text("# old report\n")
    (out / "report.png").write_bytes(b"\x89PNG old")
    before = tree_hash(out)
    r = refuse(["eval", "report", "--results", str(tmp_path / "no-results"), "--out", str(out)], tmp_path)
    assert "not empty" not in r.message and tree_hash(out) == before


def test_build_refuses_a_foreign_variant_inside_its_own_output(tmp_path, refuse):
    out = tmp_path / "corpus"
    (out / "aic").mkdir(parents=True)
    (out / "aic" / "mine.txt").write_text("not a build\n")
    argv = DIR_OUTPUTS["data build"](tmp_path, out)
    refuse(argv, out, expect=[str(out), "not empty"])


def test_sweep_and_train_run_directories_are_claimed_for_resume(tmp_path):
    """Outputs written in place and resumed carry the owner marker; a directory with another
    command's marker is someone else's."""
    from astrollama.io import OutputError, claim_dir, write_owner

    d = tmp_path / "sweep"
    assert claim_dir(d, "eval sweep", create=True) is False and owner_of(d) == "eval sweep"
    (d / "points").mkdir()
    assert claim_dir(d, "eval sweep") is True  # a rerun resumes
    other = tmp_path / "other"
    other.mkdir()
    write_owner(other, "eval report")
    (other / "report.md").write_text("x")
    with pytest.raises(OutputError, match="the output of `astrollama eval report`"):
        claim_dir(other, "eval sweep")


def test_make_pdfs_reruns_on_its_own_output(tmp_path, run_astrollama):
    out = tmp_path / "pdfs"
    argv = DIR_OUTPUTS["data make-pdfs --out"](tmp_path, out)
    assert run_astrollama(argv).code == 0 and owner_of(out) == "data make-pdfs"
    assert run_astrollama(argv).code == 0
    (out / OWNER_FILE).unlink()  # an earlier version's output: nothing but PDFs
    assert run_astrollama(argv).code == 0


def test_replacing_an_output_where_nothing_can_be_created_is_refused_before_the_work(tmp_path, immutable):
    """The output itself is writable, the directory holding it is not (the replacement is built
    beside it): refused before the work, naming the output, the old output untouched."""
    from astrollama.io import OutputError, owned_dir, write_owner

    out = tmp_path / "ro" / "out"
    out.mkdir(parents=True)
    write_owner(out, "eval report")
    (out / "report.md").write_text("old\n")
    immutable(tmp_path / "ro")
    ran: list[int] = []
    with pytest.raises(OutputError, match=f"{out}: not writable"), owned_dir(out, "eval report"):
        ran.append(1)
    assert not ran and (out / "report.md").read_text() == "old\n"
