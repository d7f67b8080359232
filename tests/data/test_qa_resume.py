"""kill -9 the Q&A stage at any point, rerun: per-paper files and manifest equal an uninterrupted run's.

The stage runs in a subprocess (tests/data/resume_driver.py: the transformers backend on the tiny
random LLaMA, greedy) that SIGKILLs itself between a paper's file and its manifest record, then after
a paper's record; the rerun finishes in this process and the ``qa`` tree and the manifest's view of
the stage are compared, by hash, with a clean run in another directory. The same machinery as the
other stages (tests/data/test_resume_corpus.py, astrollama.data.killpoint).
"""

from __future__ import annotations

import sys
from pathlib import Path

from astrollama.data.aic import run_aic
from astrollama.data.qa import QAConfig, run_qa
from astrollama.data.summarize import TransformersBackend

sys.path.insert(0, str(Path(__file__).parent))
from test_resume_corpus import MCQ, make_root, run_killed, stage_view, tree_hash  # noqa: E402


def test_qa_resumes_after_kill_with_identical_output(tmp_path: Path, tiny_model: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for root in (clean, killed):
        make_root(root, 10)  # the 9th paper has no AIC: its upstream failure must survive too
        run_aic(root, progress=False)
    backend = TransformersBackend(tiny_model, max_model_len=1024, model_id="tiny")  # greedy
    cfg = QAConfig(max_new_tokens=24, batch_papers=3)
    run_qa(clean, backend, config=cfg, mcq_path=MCQ, progress=False)
    args = ["qa", str(killed), str(tiny_model), str(MCQ)]
    run_killed(args, killpoint="qa.between:2")  # paper 2's file written, its record not
    partial = stage_view(killed, "qa")
    assert 0 < sum(v[0] == "ok" for v in partial.values()) < 9
    run_killed(args, killpoint="qa.paper:4")
    run_qa(killed, backend, config=cfg, mcq_path=MCQ, progress=False)
    assert tree_hash(killed / "qa") == tree_hash(clean / "qa")
    assert stage_view(killed, "qa") == stage_view(clean, "qa")
    view = stage_view(clean, "qa")
    assert sum(v[0] == "ok" for v in view.values()) == 9 and sum(v[0] == "failed" for v in view.values()) == 1
