"""BUILD stage: cleaning, dedup, decontamination, split, LMFlow shards, stats, determinism."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from astrollama.data.build import build_variant, run_build
from astrollama.data.build_config import BuildConfig
from astrollama.data.build_inputs import Doc
from astrollama.data.build_worker import clean_text, load_fast_tokenizer
from astrollama.data.decontam import BuildError
from astrollama.data.manifest import Manifest
from astrollama.data.split import assign_split
from astrollama.io import OutputError
from astrollama.lmflow_data import dataset_files, read_text_only_dir

MCQ = Path(__file__).parent / "fixtures" / "corpus" / "mcq.jsonl"
VOCAB = [
    "galaxy",
    "star",
    "dust",
    "gas",
    "halo",
    "disk",
    "planet",
    "orbit",
    "spectrum",
    "redshift",
    "cluster",
    "mass",
    "luminosity",
    "field",
    "magnetic",
    "accretion",
    "jet",
    "pulsar",
    "noise",
    "model",
    "survey",
    "telescope",
    "emission",
    "line",
    "velocity",
    "dispersion",
    "metallicity",
    "gradient",
    "bar",
    "spiral",
    "merger",
    "quasar",
    "lensing",
    "shear",
    "photometry",
    "binary",
    "transit",
]


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def synthetic_docs(n: int, seed: int = 0) -> list[Doc]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        paras = [
            "# Heading",
            *(
                " ".join(rng.choice(VOCAB) for _ in range(rng.randint(30, 60))) + "."
                for _ in range(rng.randint(2, 6))
            ),
        ]
        docs.append(Doc(f"2402.{i:05d}", "\n\n".join(paras)))
    return docs


@pytest.fixture(scope="module")
def corpus() -> list[Doc]:
    docs = synthetic_docs(120)
    base = {d.id: d.text for d in docs}
    mcq = json.loads(MCQ.read_text().splitlines()[0])
    docs += [
        Doc("2402.90001", base["2402.00003"]),  # exact duplicate text, other id
        Doc("2402.90002", base["2402.00004"].replace(".", " extra words here.", 1)),  # near duplicate
        Doc("2402.90003", "Too short to train on."),
        Doc(
            "2402.90004",
            base["2402.00005"][:200]
            + "\n\nAs a reminder: "
            + mcq["question"]
            + " "
            + " ".join(mcq[k] for k in "ABCD")
            + "\n\n"
            + " ".join(VOCAB),
        ),  # quotes a benchmark question
        Doc("2402.00007", "A second row for an id that already exists " * 5),  # duplicate id
        Doc(
            "2402.90005",
            "Un café très chaud à l'observatoire de Ångström, 10 µm, α = 2.\n\n" + " ".join(VOCAB),
        ),
    ]
    return docs


def test_clean_text_rules() -> None:
    header = "Monthly Notices of the Royal Astronomical Society 000, 1-10 (2024)"
    raw = (
        f"{header}\nFirst   paragraph\twith  spaces.\n\n\n\nSame line\nSame line\n"
        f"[MISSING_PAGE_FAIL:2]\n{header}\nSee Eq.~\\ref{{eq:1}}\\label{{sec:x}} and \\citep{{A99}}.\n"
        "$E = mc^2$ stays.\n\\begin{tabular}{cc}1 & 2\\\\\\end{tabular}\n"
        f"+++ ==WARNING: Truncated because of repetitions==\nloop loop\n+++\n{header}\n"
    )
    out = clean_text(raw)
    assert out.count(header) == 1  # a running header (3 times) is kept once
    assert "First paragraph with spaces." in out
    assert out.count("Same line") == 1
    for gone in ("MISSING_PAGE", "\\ref", "\\label", "\\citep", "tabular", "WARNING", "loop loop", "\n\n\n"):
        assert gone not in out, gone
    assert "$E = mc^2$ stays." in out


def test_build_drops_dedups_splits_and_reports(tmp_path: Path, corpus: list[Doc], tiny_model: Path) -> None:
    cfg = BuildConfig(max_shard_docs=25)
    stats = build_variant(
        "aic", corpus, tmp_path, tokenizer_dir=tiny_model, mcq_path=MCQ, config=cfg, progress=False
    )
    out = tmp_path / "aic"
    drops = {r["id"]: r for r in map(json.loads, (out / "drops.jsonl").read_text().splitlines())}
    assert drops["2402.90001"]["reason"] == "duplicate_text" and drops["2402.90001"]["detail"] == "2402.00003"
    assert drops["2402.90002"]["reason"] == "near_duplicate" and "2402.00004" in drops["2402.90002"]["detail"]
    assert drops["2402.90003"]["reason"] == "too_short"
    assert drops["2402.90004"]["reason"] == "contaminated"
    assert drops["2402.00007"]["reason"] == "duplicate_id"
    assert stats["drops"] == {
        "contaminated": 1,
        "duplicate_id": 1,
        "duplicate_text": 1,
        "near_duplicate": 1,
        "too_short": 1,
    }
    # no false positives: the 120 random documents all survive
    assert stats["papers_out"] == 121 and stats["papers_in"] == 126
    dc = json.loads((out / "decontamination.json").read_text())
    assert [d["id"] for d in dc["documents"]] == ["2402.90004"] and dc["documents"][0]["questions"] == [0]

    # split by id, the same rule as every other variant; LMFlow-readable; bounded shards
    kept = [json.loads(x) for x in (out / "papers.jsonl").read_text().splitlines()]
    assert all(r["split"] == assign_split(r["id"]) for r in kept)
    tok = load_fast_tokenizer(tiny_model)
    by_id: dict[str, list[str]] = {}
    for d in corpus:
        by_id.setdefault(d.id, []).append(clean_text(d.text))
    for split in ("train", "validation"):
        docs = read_text_only_dir(out / split)
        ids = [r for r in kept if r["split"] == split]
        assert len(docs) == len(ids) == stats[split]["papers"]
        assert all(len(json.loads(f.read_text())["instances"]) <= 25 for f in dataset_files(out / split))
        for f in dataset_files(out / split):
            raw = f.read_bytes()
            assert raw.isascii() and raw.startswith(b'{"type": "text_only"')
        # documents in id order, cleaned; token counts with the recipe tokenizer
        for r, text in zip(ids, docs, strict=True):
            assert text in by_id[r["id"]]
            assert r["tokens"] == len(tok.encode(text, add_special_tokens=False).ids)
        assert stats[split]["tokens"] == sum(r["tokens"] for r in ids)
    assert stats["train"]["shards"] >= 4
    unicode_doc = next(t for s in ("train", "validation") for t in read_text_only_dir(out / s) if "caf" in t)
    assert "Ångström" in unicode_doc and "α = 2" in unicode_doc
    md = (out / "stats.md").read_text()
    assert "| near_duplicate | 1 |" in md and "length_hist.png" in md
    assert (out / "length_hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_is_deterministic_across_workers_and_skips_when_up_to_date(
    tmp_path: Path,
    corpus: list[Doc],
    tiny_model: Path,
) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    build_variant("aic", corpus, a, tokenizer_dir=tiny_model, mcq_path=MCQ, workers=1, progress=False)
    build_variant(
        "aic", list(reversed(corpus)), b, tokenizer_dir=tiny_model, mcq_path=MCQ, workers=2, progress=False
    )
    assert tree_hash(a) == tree_hash(b)
    before = (a / "aic" / "build.json").stat().st_mtime_ns
    build_variant("aic", corpus, a, tokenizer_dir=tiny_model, mcq_path=MCQ, progress=False)
    assert (a / "aic" / "build.json").stat().st_mtime_ns == before  # skipped: same inputs
    changed = [*corpus[:-1], Doc(corpus[-1].id, corpus[-1].text + " More text.")]
    build_variant("aic", changed, a, tokenizer_dir=tiny_model, mcq_path=MCQ, progress=False)
    assert tree_hash(a) != tree_hash(b)


def test_report_only_decontamination_and_summary_length_policy(tmp_path: Path, tiny_model: Path) -> None:
    docs = synthetic_docs(30)
    q = json.loads(MCQ.read_text().splitlines()[1])["question"]
    docs.append(Doc("2402.80000", docs[0].text.replace("# Heading", "# Heading\n\n" + q)))
    docs[1].flags = {"length_flag": "short", "summary_tokens": 12}
    cfg = BuildConfig(decontam_action="report", near_dup_jaccard=0.99)
    s = build_variant(
        "summary", docs, tmp_path, tokenizer_dir=tiny_model, mcq_path=MCQ, config=cfg, progress=False
    )
    assert s["decontamination"]["documents_matched"] == 1 and "contaminated" not in s["drops"]
    assert s["drops"] == {"summary_length": 1}
    keep = BuildConfig(decontam_action="report", near_dup_jaccard=0.99, summary_length_policy="keep")
    s2 = build_variant(
        "summary", docs, tmp_path / "k", tokenizer_dir=tiny_model, mcq_path=MCQ, config=keep, progress=False
    )
    assert s2["drops"] == {} and s2["papers_out"] == 31


def test_bad_inputs_fail_with_file_and_row(tmp_path: Path, tiny_model: Path) -> None:
    bad = tmp_path / "mcq.jsonl"
    bad.write_text('{"question": "ok?", "A": "a", "B": "b", "C": "c", "D": "d"}\n{"A": "no question"}\n')
    with pytest.raises(BuildError, match=r"mcq.jsonl: line 2: field 'question'"):
        build_variant(
            "aic", synthetic_docs(3), tmp_path / "o", tokenizer_dir=tiny_model, mcq_path=bad, progress=False
        )
    bad.write_text("{not json\n")
    with pytest.raises(BuildError, match=r"mcq.jsonl: line 1: invalid JSON"):
        build_variant(
            "aic", synthetic_docs(3), tmp_path / "o", tokenizer_dir=tiny_model, mcq_path=bad, progress=False
        )
    with pytest.raises(BuildError, match="no tokenizer.json"):
        build_variant("aic", synthetic_docs(3), tmp_path / "o", tokenizer_dir=tmp_path, progress=False)
    with pytest.raises(BuildError, match="no document survived"):
        build_variant(
            "aic", [Doc("2402.00001", "short")], tmp_path / "o", tokenizer_dir=tiny_model, progress=False
        )
    assert not (tmp_path / "o" / "aic").exists()  # nothing half-written
    (tmp_path / "o" / "aic").mkdir(parents=True)
    (tmp_path / "o" / "aic" / "precious.txt").write_text("not ours")
    with pytest.raises(OutputError, match="is not empty and is not an output of this command"):
        build_variant("aic", synthetic_docs(3), tmp_path / "o", tokenizer_dir=tiny_model, progress=False)
    assert (tmp_path / "o" / "aic" / "precious.txt").exists()


def test_run_build_from_manifest_records_each_paper(tmp_path: Path, tiny_model: Path) -> None:
    m = Manifest(tmp_path)
    docs = synthetic_docs(12)
    m.upsert_papers([{"id": d.id, "title": "T", "abstract": d.text.replace("# Heading", "")} for d in docs])
    m.upsert_papers([{"id": "2402.99999", "title": "T", "abstract": "Too short."}])
    res = run_build(tmp_path, ["abstracts"], tmp_path / "corpus", tokenizer_dir=tiny_model, progress=False)
    st = m.status("build_abstracts")
    assert res["abstracts"]["papers_out"] == 12
    assert st["2402.99999"].status == "failed" and st["2402.99999"].error.startswith("dropped: too_short")
    assert {st[d.id].attrs["split"] for d in docs} <= {"train", "validation"}
    with pytest.raises(BuildError, match="variant 'aic' has no input documents"):
        run_build(tmp_path, ["aic"], tmp_path / "corpus", tokenizer_dir=tiny_model, progress=False)
