"""OCR stage: generated PDFs, bad PDFs, the three backends, markers, resumability after kill -9.

Everything real except the ``nougat`` executable (nougat-ocr needs its own ~6 GB environment and
network weights; tests/data/fake_nougat_cli.py keeps its CLI contract). The transformers path
runs a tiny randomly initialised Nougat (Donut-Swin + MBart + NougatProcessor with a BPE
tokenizer trained here): its text is garbage, so those tests assert structure, not text.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from astrollama.data import ocr, pdfgen
from astrollama.data.manifest import Manifest, namespaced, paper_path
from astrollama.data.ocr.nougat import (
    MARKER_POST,
    PageOutput,
    RepetitionConfig,
    RepetitionGuard,
    join_pages,
    page_markdown,
    plan_batches,
    random_nougat,
)
from astrollama.errors import InputError
from astrollama.tools import badpdfs

HERE = Path(__file__).resolve().parent
WORDS = [
    "galaxy",
    "star",
    "cluster",
    "halo",
    "dark",
    "matter",
    "redshift",
    "spectrum",
    "luminosity",
    "metallicity",
    "accretion",
    "disk",
    "magnetic",
    "field",
    "pulsar",
    "supernova",
    "remnant",
    "emission",
    "line",
    "survey",
    "photometry",
    "velocity",
    "dispersion",
    "rotation",
    "curve",
    "cosmology",
    "baryon",
    "quasar",
    "jet",
    "outflow",
    "dust",
    "molecular",
    "cloud",
    "formation",
    "rate",
]


def _sentence(r: random.Random) -> str:
    return " ".join(r.choice(WORDS) for _ in range(r.randint(8, 16))).capitalize() + "."


def _para(r: random.Random, k: int = 4) -> str:
    return " ".join(_sentence(r) for _ in range(k))


def make_paper(paper_id: str, seed: int, n_body: int = 1) -> dict:
    r = random.Random(seed)
    sections = [{"heading": "Introduction", "text": "\n\n".join(_para(r) for _ in range(3))}]
    sections += [
        {"heading": f"Observations of sample {k + 1}", "text": "\n\n".join(_para(r) for _ in range(3))}
        for k in range(n_body)
    ]
    sections.append({"heading": "Summary and conclusions", "text": "\n\n".join(_para(r) for _ in range(2))})
    return {
        "id": paper_id,
        "title": f"The {r.choice(WORDS)} {r.choice(WORDS)} of nearby galaxies",
        "authors": ["A. Author", "B. Writer"],
        "categories": ["astro-ph.GA"],
        "published": "2024-01-01",
        "abstract": _para(r, 3),
        "sections": sections,
        "appendix": [{"heading": "Extra tables", "text": _para(r)}],
        "acknowledgments": "We thank the referee for comments.",
        "references": [f"Author A., Writer B. 20{10 + k}, ApJ, {800 + k}, {k + 1}" for k in range(6)],
    }


# ids chosen so that both heading styles and both appendix placements occur (asserted below)
GOOD = ["2401.00001", "2401.00003", "astro-ph/0601001", "2401.00007"]
BAD = {
    "2401.00010": "corrupt",
    "2401.00011": "encrypted",
    "2401.00012": "no-pages",
    "2401.00013": "empty-file",
    "2401.00014": "missing-file",
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def papers() -> dict[str, dict]:
    return {pid: make_paper(pid, seed=i, n_body=1 + i % 2) for i, pid in enumerate(GOOD)}


@pytest.fixture(scope="module")
def pdf_bytes(papers) -> dict[str, bytes]:
    good = {pid: pdfgen.render_paper_pdf(p) for pid, p in papers.items()}
    first = next(iter(good.values()))
    bad = {
        "2401.00010": badpdfs.corrupt_pdf(first),
        "2401.00011": badpdfs.encrypted_pdf(first),
        "2401.00012": badpdfs.zero_page_pdf(),
        "2401.00013": badpdfs.empty_file_pdf(),
    }
    return {**good, **bad}


def make_root(root: Path, pdf_bytes: dict[str, bytes], ids=None) -> Manifest:
    """A data root with a manifest and PDFs where download_pdf would have put them."""
    m = Manifest(root)
    ids = list(ids or [*GOOD, *BAD])
    m.upsert_papers([{"id": pid, "title": f"paper {pid}"} for pid in ids])
    for pid in ids:
        if pid in pdf_bytes:
            dest = paper_path(root / "pdf", pid, ".pdf")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(pdf_bytes[pid])
            m.record("download_pdf", pid, "ok", outputs={"pdf": dest})
    return m


@pytest.fixture(scope="module")
def tiny_nougat(tmp_path_factory) -> Path:
    return random_nougat(tmp_path_factory.mktemp("nougat") / "tiny", "tiny", seed=0)


def tiny_backend(ckpt: Path, *, batch_size: int = 3, repetition=None) -> ocr.TransformersBackend:
    return ocr.TransformersBackend(
        ckpt,
        batch_size=batch_size,
        dpi=36,
        device="cpu",
        max_new_tokens=40,
        repetition=repetition or RepetitionConfig(enabled=False),
    )


# ----------------------------------------------------------------------------- generated PDFs


def test_pdfgen_deterministic_layouts_and_page_counts(papers, pdf_bytes, tmp_path):
    layouts = {pid: pdfgen.layout_for(pid) for pid in GOOD}
    assert {lay.numbered for lay in layouts.values()} == {True, False}
    assert {lay.appendix_after_references for lay in layouts.values()} == {True, False}
    for pid, paper in papers.items():
        data = pdf_bytes[pid]
        assert data.startswith(b"%PDF-") and pdfgen.render_paper_pdf(paper) == data  # deterministic bytes
        assert pdfgen.MIN_PAGES <= pdfgen.count_pages(data) <= pdfgen.MAX_PAGES
    # make-pdfs: one file per paper JSON, namespaced names, idempotent
    src = tmp_path / "papers"
    src.mkdir()
    for pid, paper in papers.items():
        (src / f"{namespaced(pid)}.json").write_text(json.dumps(paper))
    out = pdfgen.make_pdfs(src, tmp_path / "pdf")
    assert sorted(p.name for p in out) == sorted(f"{namespaced(p)}.pdf" for p in GOOD)
    mtimes = {p: p.stat().st_mtime_ns for p in out}
    pdfgen.make_pdfs(src, tmp_path / "pdf")
    assert {p: p.stat().st_mtime_ns for p in out} == mtimes


def test_pdfgen_rejects_bad_paper_json_naming_file_and_field(tmp_path, papers):
    bad = dict(next(iter(papers.values())))
    del bad["title"]
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(pdfgen.PaperError, match=r"bad\.json: missing field 'title'"):
        pdfgen.load_paper(f)
    bad2 = dict(next(iter(papers.values())), sections=[{"heading": "X"}])
    f.write_text(json.dumps(bad2))
    with pytest.raises(pdfgen.PaperError, match=r"bad\.json: field sections\[0\]"):
        pdfgen.load_paper(f)


def test_bad_pdfs_have_distinct_reasons(tmp_path, pdf_bytes):
    seen = {}
    for pid, reason in BAD.items():
        path = tmp_path / f"{pid}.pdf"
        if pid in pdf_bytes:
            path.write_bytes(pdf_bytes[pid])
        with pytest.raises(ocr.OcrFailure) as info:
            ocr.render_pages(path, dpi=36)
        assert info.value.reason == reason, (pid, str(info.value))
        assert str(path) in str(info.value)
        seen[reason] = pid
    assert len(seen) == len(BAD)


# ----------------------------------------------------------------------------- repetition stop


def test_repetition_guard_stops_only_the_looping_row_and_locates_the_loop():
    import torch

    cfg = RepetitionConfig()  # nougat-ocr's window 200, short window 15, threshold 0.015
    eos = 2
    guard = RepetitionGuard(cfg, finished_ids=[eos])
    gen = torch.Generator().manual_seed(0)
    loop_start, steps, vocab = 150, 900, 50
    stopped_at: list[int | None] = [None, None, None]
    period = [18.0, 11.5, 14.0, 9.0]  # the max logits of a 4-token loop
    for t in range(steps):
        scores = torch.randn(3, vocab, generator=gen)
        natural = 14.0 + 4.0 * torch.randn(3, generator=gen)  # confident/unsure tokens vary
        looped = period[t % 4] if t >= loop_start else None
        scores[0, 7] = looped if looped is not None else float(natural[0])
        scores[1, 3] = float(natural[1])
        scores[2, 9] = looped if looped is not None else float(natural[2])  # same loop, but ...
        last = torch.tensor([[5], [5], [eos if t >= 100 else 5]])  # ... row 2 ended (EOS) at step 100
        assert guard.processor(last, scores) is scores  # observes, changes nothing
        flags = guard.criterion(last, None)
        for r in range(3):
            if flags[r] and stopped_at[r] is None:
                stopped_at[r] = t + 1
    assert stopped_at[1] is None, "a natural (non-looping) max-logit sequence must not be stopped"
    assert stopped_at[2] is None, "a finished row is never flagged"
    assert stopped_at[0] is not None and stopped_at[0] > loop_start + cfg.short_window
    onset = guard.onsets()[0]
    # the loop is located to within a quarter window, never after it began
    assert loop_start - cfg.window // 4 <= onset <= loop_start, (onset, loop_start)
    assert guard.onsets()[1:] == [None, None]


def test_repetition_guard_in_real_generate_stops_early(tiny_nougat, pdf_bytes, tmp_path):
    from astrollama.data.ocr.nougat import NougatTransformers

    path = tmp_path / "p.pdf"
    path.write_bytes(pdf_bytes[GOOD[0]])
    images = ocr.render_pages(path, dpi=36)
    free = NougatTransformers(
        tiny_nougat, device="cpu", max_new_tokens=60, repetition=RepetitionConfig(enabled=False)
    ).generate(images)
    # A random decoder has tiny logits, so nougat's threshold calls everything a loop: with short
    # windows every page is stopped right after the first full window.
    guarded_model = NougatTransformers(
        tiny_nougat, device="cpu", max_new_tokens=60, repetition=RepetitionConfig(window=8, short_window=4)
    )
    guarded = guarded_model.generate(images)
    assert all(o.loop_onset is None for o in free)
    # random weights never emit EOS: the EOS that MBart forces at the limit is a cut, not an end
    assert all(not o.eos and o.n_tokens == 59 for o in free)
    assert all(o.loop_onset == 0 and o.n_tokens <= 8 + 4 for o in guarded)
    assert all(g.n_tokens < f.n_tokens for g, f in zip(guarded, free, strict=True))
    md = [guarded_model.page_markdown(o, i + 1) for i, o in enumerate(guarded)]
    assert [m.text for m in md] == [f"[MISSING_PAGE_EMPTY:{i + 1}]" for i in range(len(images))]


def test_page_markers_follow_nougat_rules(tiny_nougat):
    from transformers import NougatTokenizer

    cfg = RepetitionConfig()
    assert (
        page_markdown(PageOutput("x" * 50, 300, False, loop_onset=120), 3, cfg).text
        == "[MISSING_PAGE_FAIL:3]"
    )
    assert page_markdown(PageOutput("abc", 300, False, loop_onset=5), 4, cfg).text == "[MISSING_PAGE_EMPTY:4]"
    assert page_markdown(PageOutput("", 0, True), 5, cfg).text == "[MISSING_PAGE_EMPTY:5]"
    assert page_markdown(PageOutput("", 0, False, error="RuntimeError: OOM"), 6, cfg).status == "fail"
    off = RepetitionConfig(enabled=False)  # --no-skipping keeps looping text
    assert page_markdown(PageOutput("loop loop", 300, False, loop_onset=120), 3, off).text == "loop loop"
    # real Nougat post-processing cuts a hallucinated reference list -> [MISSING_PAGE_POST]
    post = NougatTokenizer.from_pretrained(tiny_nougat).post_process_generation
    body = "## 5 Conclusions\n\nThe halo is massive and the rotation curve is flat.\n\n## References\n\n"
    refs = "\n".join(f"* Smith, J., Jones, K., & Brown, L. 2020, ApJ, 900, {i}" for i in range(1, 80))
    page = page_markdown(PageOutput(body + refs, 900, True), 7, cfg, lambda t: post(t, fix_markdown=False))
    assert page.status == "post" and MARKER_POST in page.text and "rotation curve is flat" in page.text
    doc = join_pages(
        [
            page_markdown(PageOutput("first page", 3, True), 1, cfg),
            page_markdown(PageOutput("", 0, True), 2, cfg),
            page,
        ]
    )
    assert doc.startswith("first page\n\n[MISSING_PAGE_EMPTY:2]\n\n") and "\n\n\n" not in doc


def test_batch_plan_is_fixed_by_page_counts():
    plan = plan_batches([2, 0, 3, 1], 4)
    assert plan == [[(0, 0), (0, 1), (2, 0), (2, 1)], [(2, 2), (3, 0)]]
    with pytest.raises(ValueError):
        plan_batches([1], 0)


# ----------------------------------------------------------------------------- transformers backend


def test_transformers_backend_good_and_bad_pdfs(tiny_nougat, pdf_bytes, tmp_path):
    root = tmp_path / "root"
    m = make_root(root, pdf_bytes)
    stats = ocr.run_ocr(root, tiny_backend(tiny_nougat), workers=0, progress=False)
    assert (stats.ok, stats.failed) == (len(GOOD), len(BAD))
    status = m.status("ocr")
    for pid in GOOD:
        rec = status[pid]
        n = pdfgen.count_pages(pdf_bytes[pid])
        assert (
            rec.status == "ok" and rec.attrs["pages"] == n and rec.attrs["page_status"] == ["max-length"] * n
        )
        mmd = m.resolve(rec.outputs["mmd"])
        assert mmd == paper_path(root / "ocr", pid, ".mmd") and mmd.name.startswith(pid.replace("/", "_"))
        text = mmd.read_text(encoding="utf-8")
        assert text.strip() and "MISSING_PAGE" not in text and "\n\n\n" not in text
    for pid, reason in BAD.items():
        rec = status[pid]
        assert rec.status == "failed" and rec.attrs["reason"] == reason and rec.error.startswith(reason + ":")
        assert not paper_path(root / "ocr", pid, ".mmd").exists()
    assert sorted(p.name for p in (root / "ocr").rglob("*") if p.is_file()) == sorted(
        f"{pid.replace('/', '_')}.mmd" for pid in GOOD
    )
    # a rerun does nothing (completion marker) and changes nothing
    before = {p: _sha(p) for p in (root / "ocr").rglob("*.mmd")}
    assert ocr.run_ocr(root, tiny_backend(tiny_nougat), workers=0, progress=False).papers == 0
    assert {p: _sha(p) for p in (root / "ocr").rglob("*.mmd")} == before


def test_transformers_all_pages_looping_is_a_recorded_failure_not_an_empty_file(
    tiny_nougat, pdf_bytes, tmp_path
):
    root = tmp_path / "root"
    m = make_root(root, pdf_bytes, ids=GOOD[:2])
    backend = tiny_backend(tiny_nougat, repetition=RepetitionConfig(window=8, short_window=4))
    stats = ocr.run_ocr(root, backend, workers=0, progress=False)
    assert stats.failed == 2 and stats.reasons == {"empty-output": 2}
    for pid in GOOD[:2]:
        rec = m.status("ocr")[pid]
        assert rec.attrs["page_status"] == ["empty"] * pdfgen.count_pages(pdf_bytes[pid])
        assert not paper_path(root / "ocr", pid, ".mmd").exists()


KILL_SCRIPT = """
import sys
from astrollama.data import ocr
from astrollama.data.ocr.nougat import RepetitionConfig
if __name__ == "__main__":
    backend = ocr.TransformersBackend(sys.argv[2], batch_size=3, dpi=36, device="cpu", max_new_tokens=40,
                                      repetition=RepetitionConfig(enabled=False))
    ocr.run_ocr(sys.argv[1], backend, workers=1, timeout=60, progress=False)
"""


def test_kill9_mid_run_then_rerun_gives_identical_outputs(tiny_nougat, pdf_bytes, tmp_path):
    ref_root, root = tmp_path / "ref", tmp_path / "killed"
    make_root(ref_root, pdf_bytes)
    m = make_root(root, pdf_bytes)
    script = tmp_path / "run_ocr.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ocr.run_ocr(ref_root, tiny_backend(tiny_nougat), workers=0, progress=False)
    # killed just before the 2nd paper's .mmd is written; its first page shares a 3-page batch
    # with the 1st (finished) paper, so the rerun must rebuild that batch exactly
    killed = subprocess.run(
        [sys.executable, str(script), str(root), str(tiny_nougat)],
        capture_output=True,
        text=True,
        env={**env, "ASTROLLAMA_KILLPOINT": "ocr-before-write:2"},
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    partial = m.status("ocr")
    assert [pid for pid, r in partial.items() if r.status == "ok"] == [GOOD[0]]
    ocr.run_ocr(root, tiny_backend(tiny_nougat), workers=0, progress=False)  # the rerun
    ref = {p.relative_to(ref_root): _sha(p) for p in (ref_root / "ocr").rglob("*.mmd")}
    got = {p.relative_to(root): _sha(p) for p in (root / "ocr").rglob("*.mmd")}
    assert got == ref and len(ref) == len(GOOD)
    final = m.status("ocr")
    assert {pid: r.status for pid, r in final.items()} == {
        pid: r.status for pid, r in Manifest(ref_root).status("ocr").items()
    }
    assert not list(root.rglob("*.tmp"))


# ----------------------------------------------------------------------------- pdf-text backend


def test_pdf_text_backend_recovers_headings_and_paragraphs(papers, pdf_bytes, tmp_path):
    root = tmp_path / "root"
    m = make_root(root, pdf_bytes)
    stats = ocr.run_ocr(root, ocr.PdfTextBackend(), workers=0, progress=False)
    assert (stats.ok, stats.failed) == (len(GOOD), len(BAD))
    for pid, paper in papers.items():
        text = m.resolve(m.status("ocr")[pid].outputs["mmd"]).read_text(encoding="utf-8")
        blocks = text.strip().split("\n\n")
        assert blocks[0] == "# " + paper["title"] and blocks[1] == ", ".join(paper["authors"])
        assert blocks[2] == "###### Abstract" and blocks[3] == " ".join(paper["abstract"].split())
        numbered = pdfgen.layout_for(pid).numbered
        headings = [b for b in blocks if b.startswith("## ")]
        expected = [
            f"## {i} {s['heading']}" if numbered else f"## {s['heading']}"
            for i, s in enumerate(paper["sections"], start=1)
        ]
        tail = ["## Acknowledgments", "## References", "## Appendix A: Extra tables"]
        if not pdfgen.layout_for(pid).appendix_after_references:
            tail = ["## Acknowledgments", "## Appendix A: Extra tables", "## References"]
        assert headings == expected + tail
        for i, section in enumerate(paper["sections"]):
            start = blocks.index(expected[i]) + 1
            paras = [" ".join(p.split()) for p in section["text"].split("\n\n")]
            assert blocks[start : start + len(paras)] == paras  # every paragraph, in order, across pages
        refs = [b for b in blocks if b.startswith("* ")]
        assert refs == ["* " + r for r in paper["references"]]


def test_pdf_text_backend_scanned_pdf_without_text_is_no_text(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 100, style="F")  # an image-like page without a text layer
    pdf.set_creation_date(pdfgen.FIXED_DATE)
    root = tmp_path / "root"
    m = make_root(root, {"2401.00020": bytes(pdf.output())}, ids=["2401.00020"])
    ocr.run_ocr(root, ocr.PdfTextBackend(), workers=0, progress=False)
    assert m.status("ocr")["2401.00020"].attrs["reason"] == "no-text"


def test_hanging_pdf_times_out_in_worker_and_the_rest_finish(pdf_bytes, tmp_path, monkeypatch):
    root = tmp_path / "root"
    ids = [GOOD[0], "2401.00030", GOOD[1]]
    m = make_root(root, pdf_bytes, ids=ids)
    hung = paper_path(root / "pdf", "2401.00030", ".pdf")
    hung.parent.mkdir(parents=True, exist_ok=True)
    hung.write_bytes(pdf_bytes[GOOD[0]])
    # the worker reading this PDF hangs for good, like a read on a hung network file system
    monkeypatch.setenv("ASTROLLAMA_HANGPOINT", f"ocr-worker:{hung.name}")
    stats = ocr.run_ocr(root, ocr.PdfTextBackend(), workers=1, timeout=3, progress=False)
    assert stats.ok == 2 and stats.reasons == {"timeout": 1}
    assert m.status("ocr")["2401.00030"].error.startswith("timeout:")


def test_a_fifo_in_place_of_a_pdf_is_refused_at_once(pdf_bytes, tmp_path):
    """A FIFO would block a reader forever: it is refused from its type, before any read."""
    root = tmp_path / "root"
    ids = [GOOD[0], "2401.00030", GOOD[1]]
    m = make_root(root, pdf_bytes, ids=ids)
    fifo = paper_path(root / "pdf", "2401.00030", ".pdf")
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    stats = ocr.run_ocr(root, ocr.PdfTextBackend(), workers=1, timeout=60, progress=False)
    assert stats.ok == 2 and stats.reasons == {"unreadable": 1} and stats.seconds < 30
    assert "not a regular file" in m.status("ocr")["2401.00030"].error


# ----------------------------------------------------------------------------- nougat-cli backend


@pytest.fixture()
def fake_nougat(tmp_path) -> Path:
    exe = tmp_path / "bin" / "nougat"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_nougat_cli.py"}" "$@"\n')
    exe.chmod(0o755)
    return exe


def test_nougat_cli_backend_names_outputs_by_id_and_isolates_failures(
    fake_nougat, papers, pdf_bytes, tmp_path
):
    root = tmp_path / "root"
    m = make_root(root, pdf_bytes)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    backend = ocr.NougatCliBackend(ckpt, executable=str(fake_nougat), group=3, timeout=60)
    stats = ocr.run_ocr(root, backend, workers=0, progress=False)
    assert (stats.ok, stats.failed) == (len(GOOD), len(BAD))
    for pid, paper in papers.items():
        rec = m.status("ocr")[pid]
        text = m.resolve(rec.outputs["mmd"]).read_text(encoding="utf-8")
        assert rec.outputs["mmd"].endswith(f"{pid.replace('/', '_')}.mmd") and paper["title"] in text
        assert rec.attrs["pages"] == pdfgen.count_pages(pdf_bytes[pid])
    assert {pid: m.status("ocr")[pid].attrs["reason"] for pid in BAD} == BAD


def test_nougat_cli_process_failure_and_timeout_are_recorded(fake_nougat, pdf_bytes, tmp_path, monkeypatch):
    root = tmp_path / "root"
    m = make_root(root, pdf_bytes, ids=GOOD[:2])
    missing_ckpt = tmp_path / "no-such-checkpoint"  # nougat tries to download it: offline, exit 1
    ocr.run_ocr(
        root,
        ocr.NougatCliBackend(missing_ckpt, executable=str(fake_nougat), group=2),
        workers=0,
        progress=False,
    )
    assert {r.attrs["reason"] for r in m.status("ocr").values()} == {"backend-error"}
    assert "exited 1" in m.status("ocr")[GOOD[0]].error
    monkeypatch.setenv("FAKE_NOUGAT_SECONDS_PER_PAGE", "3")
    backend = ocr.NougatCliBackend(None, executable=str(fake_nougat), group=2, timeout=1)
    stats = ocr.run_ocr(root, backend, workers=0, progress=False, retry_failed=True)
    assert stats.reasons == {"timeout": 2}


def test_cli_make_pdfs_and_ocr_shards_on_bundled_demo_papers(repo_root, tmp_path):
    """The main job's path: bundled paper texts -> PDFs in a data root -> OCR (pdf-text, 2 shards)
    -> .mmd that data-corpus's AIC extractor reads (Introduction and Conclusion found)."""
    from astrollama.data.aic import extract_aic_markdown
    from astrollama.data.cli import main

    demo = sorted((repo_root / "data" / "demo" / "papers").glob("*.json"))[:4]
    if len(demo) < 4:
        pytest.skip("bundled demo papers (data/demo/papers) not present")
    src = tmp_path / "papers"
    src.mkdir()
    for f in demo:
        (src / f.name).write_bytes(f.read_bytes())
    root = tmp_path / "root"
    assert main(["make-pdfs", "--papers", str(src), "--root", str(root)]) == 0
    papers = {json.loads(f.read_text())["id"]: json.loads(f.read_text()) for f in demo}
    m = Manifest(root)
    assert sorted(m.ids()) == sorted(papers) and set(m.status("download_pdf")) == set(papers)
    args = ["ocr", "--root", str(root), "--backend", "pdf-text", "--workers", "0", "--no-progress"]
    assert [main([*args, "--shard", f"{k}/2"]) for k in range(2)] == [0, 0]
    status = m.status("ocr")
    assert sorted(status) == sorted(papers) and {r.status for r in status.values()} == {"ok"}
    assert {r.shard for r in status.values()} <= {"00000-of-00002", "00001-of-00002"}
    for pid, paper in papers.items():
        aic = extract_aic_markdown(m.resolve(status[pid].outputs["mmd"]).read_text(encoding="utf-8"))
        assert not aic.missing, (pid, aic.missing)
        first_intro_para = " ".join(paper["sections"][0]["text"].split("\n\n")[0].split())
        assert aic.introduction.startswith(first_intro_para[:200])
        last_para = " ".join(paper["sections"][-1]["text"].split("\n\n")[-1].split())
        assert last_para[-200:] in " ".join(aic.conclusion.split())
    assert main(["make-pdfs", "--papers", str(src), "--root", str(root)]) == 0  # idempotent
    assert len(m.status("download_pdf")) == len(papers)
    with pytest.raises(InputError, match="--checkpoint: required"):  # exit 2 in astrollama.cli.main
        main(["ocr", "--root", str(root), "--backend", "transformers"])


def _real_nougat() -> Path | None:
    """The real nougat-ocr CLI, when ASTROLLAMA_NOUGAT_BIN points at one (envs/ocr-nougat.txt)."""
    exe = os.environ.get("ASTROLLAMA_NOUGAT_BIN")
    if not exe or not Path(exe).is_file() or not (Path(exe).parent / "python").exists():
        return None
    return Path(exe)


@pytest.mark.slow
@pytest.mark.skipif(_real_nougat() is None, reason="set ASTROLLAMA_NOUGAT_BIN to a real nougat-ocr `nougat`")
def test_real_nougat_cli(papers, pdf_bytes, tmp_path):
    """The nougat-cli backend against the REAL nougat-ocr 0.1.17 CLI (random tiny checkpoint)."""
    exe = _real_nougat()
    ckpt = tmp_path / "nougat-ckpt"
    subprocess.run(
        [str(exe.parent / "python"), str(HERE / "nougat_ocr_random_checkpoint.py"), str(ckpt)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    root = tmp_path / "root"
    m = make_root(root, pdf_bytes)
    backend = ocr.NougatCliBackend(
        ckpt, executable=str(exe), batch_size=0, group=8, timeout=120, skipping=False
    )
    stats = ocr.run_ocr(root, backend, workers=0, progress=False)
    # every good PDF went through one real nougat process and came back under its namespaced id;
    # the bad ones were recorded before nougat saw them (an encrypted PDF would crash its whole run)
    assert (stats.ok, stats.failed) == (len(GOOD), len(BAD))
    for pid in GOOD:
        rec = m.status("ocr")[pid]
        assert (
            rec.attrs["pages"] == pdfgen.count_pages(pdf_bytes[pid]) and rec.attrs["backend"] == "nougat-cli"
        )
        assert m.resolve(rec.outputs["mmd"]).read_text(encoding="utf-8").strip()
    assert {pid: m.status("ocr")[pid].attrs["reason"] for pid in BAD} == BAD


def _shell_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(ASTROLLAMA_VENV=str(Path(sys.executable).parent.parent), OMP_NUM_THREADS="1", **extra)
    return env


def test_slurm_ocr_script_shards_outside_slurm(repo_root, pdf_bytes, tmp_path):
    """slurm/ocr.sh without Slurm GPUs: array task t of T takes shard t/T (here run by hand)."""
    root = tmp_path / "root"
    m = make_root(root, pdf_bytes, ids=GOOD)
    for task in (5, 6):  # --array=5-6: tasks are counted from SLURM_ARRAY_TASK_MIN
        env = _shell_env(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_MIN="5", SLURM_ARRAY_TASK_COUNT="2")
        r = subprocess.run(
            [
                "bash",
                str(repo_root / "slurm" / "ocr.sh"),
                str(root),
                "--backend",
                "pdf-text",
                "--workers",
                "0",
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"array task {task - 5}/2" in r.stdout
    status = m.status("ocr")
    assert sorted(status) == sorted(GOOD) and {r.status for r in status.values()} == {"ok"}
    assert {r.shard for r in status.values()} == {"00000-of-00002", "00001-of-00002"}
    assert {p.name for p in (m.dir / "done" / "ocr").iterdir()} == {
        "00000-of-00002.json",
        "00001-of-00002.json",
    }
    r = subprocess.run(
        ["bash", str(repo_root / "slurm" / "ocr.sh")], env=_shell_env(), capture_output=True, text=True
    )
    assert r.returncode == 2 and "usage" in r.stderr


@pytest.mark.slurm
def test_slurm_ocr_job_array(slurm_cluster, repo_root, pdf_bytes, tmp_path):
    """A real 2-task job array on the single-node test cluster (CPU: one process per array task)."""
    root = tmp_path / "root"
    m = make_root(root, pdf_bytes, ids=GOOD)
    log = tmp_path / "ocr-%A_%a.out"
    r = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--array=0-1",
            "--gpus-per-node=0",
            "--ntasks-per-node=1",
            "--cpus-per-task=1",
            "--mem=2G",
            f"--output={log}",
            "slurm/ocr.sh",
            str(root),
            "--backend",
            "pdf-text",
            "--workers",
            "0",
            "--no-progress",
        ],
        cwd=repo_root,
        env=_shell_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = "\n".join(p.read_text() for p in tmp_path.glob("ocr-*.out"))
    assert r.returncode == 0, r.stderr + logs[-3000:]
    assert {rec.shard for rec in m.status("ocr").values()} == {"00000-of-00002", "00001-of-00002"}
    assert {rec.status for rec in m.status("ocr").values()} == {"ok"} and len(m.status("ocr")) == len(GOOD)
