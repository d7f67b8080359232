"""The transformers Nougat path on CUDA (skipped without a GPU): tiny random model, real PDFs.

Run on a GPU machine with ``bash scripts/ocr_gpu_check.sh`` (also measures throughput).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from astrollama.data import ocr, pdfgen
    from astrollama.data.ocr.nougat import random_nougat

    d = tmp_path_factory.mktemp("gpu")
    paper = {
        "id": "2401.00001",
        "title": "A test paper",
        "authors": ["A. Author"],
        "abstract": "Short. " * 40,
        "sections": [
            {"heading": h, "text": "\n\n".join(["Words about galaxies. " * 30] * 3)}
            for h in ("Introduction", "Method", "Conclusions")
        ],
    }
    pdf = d / "p.pdf"
    pdf.write_bytes(pdfgen.render_paper_pdf(paper))
    return random_nougat(d / "tiny", "tiny"), ocr.render_pages(pdf, dpi=48)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_generate_on_cuda_matches_cpu_structure(setup, dtype):
    from astrollama.data.ocr.nougat import NougatTransformers, RepetitionConfig

    ckpt, images = setup
    off = RepetitionConfig(enabled=False)
    cpu = NougatTransformers(ckpt, device="cpu", max_new_tokens=48, repetition=off).generate(images)
    gpu_model = NougatTransformers(ckpt, device="cuda", dtype=dtype, max_new_tokens=48, repetition=off)
    gpu = gpu_model.generate(images)
    assert gpu_model.model.device.type == "cuda"
    assert len(gpu) == len(cpu) == len(images)
    assert all(o.error is None and o.n_tokens > 0 for o in gpu)
    if dtype == "float32":
        assert [o.n_tokens for o in gpu] == [o.n_tokens for o in cpu]


def test_repetition_stop_runs_on_cuda(setup):
    from astrollama.data.ocr.nougat import NougatTransformers, RepetitionConfig

    ckpt, images = setup
    model = NougatTransformers(
        ckpt, device="cuda", max_new_tokens=60, repetition=RepetitionConfig(window=8, short_window=4)
    )
    outs = model.generate(images)
    assert all(o.loop_onset == 0 and o.n_tokens <= 12 for o in outs)
    assert [model.page_markdown(o, i + 1).text for i, o in enumerate(outs)] == [
        f"[MISSING_PAGE_EMPTY:{i + 1}]" for i in range(len(images))
    ]
