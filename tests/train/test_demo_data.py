"""The demo's data stage: bundled papers -> LMFlow train / held-out directories (no model needed)."""

from __future__ import annotations

import json

from astrollama import demo
from astrollama.data.split import assign_split
from astrollama.lmflow_data import dataset_files, read_text_only_dir


def test_prepare_data_splits_by_paper_id(tmp_path):
    papers = [json.loads(f.read_text()) for f in sorted(demo.PAPERS_DIR.glob("*.json"))]
    train_dir, heldout_dir = demo.prepare_data(tmp_path)
    train, heldout = read_text_only_dir(train_dir), read_text_only_dir(heldout_dir)
    train_papers = [p for p in papers if assign_split(p["id"]) == "train"]
    val_papers = [p for p in papers if assign_split(p["id"]) == "validation"]
    assert len(train) == len(train_papers) > len(heldout) == len(val_papers) > 0
    for text, p in zip(train, train_papers, strict=True):
        assert text.startswith(p["title"]) and p["abstract"].strip() in text
        assert all(s["text"].strip() in text for s in p["sections"])
    assert heldout == [p["abstract"].strip() for p in val_papers]
    # no held-out abstract leaks into the training text
    assert not any(a in t for a in heldout for t in train)
    before = {f.name: f.read_bytes() for f in dataset_files(train_dir)}
    demo.prepare_data(tmp_path)  # rerunnable, byte-identical
    assert {f.name: f.read_bytes() for f in dataset_files(train_dir)} == before
