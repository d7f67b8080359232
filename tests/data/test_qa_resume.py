"""kill -9 the Q&A stage at any point, rerun: per-paper files and manifest equal an uninterrupted run's.

The stage runs in a subprocess (tests/data/resume_driver.py: the transformers backend on the tiny
random LLaMA, greedy) that SIGKILLs itself between a paper's file and its manifest record, then after
a paper's record; the rerun finishes in this process and the ``qa`` tree and the manifest's view of
the stage are compared, by hash, with a clean run in another directory. The same machinery as the
other stages (tests/data/test_resume_corpus.py, astrollama.killpoint).

The tiny random model's outputs are all rejected, so a second test runs the stage on recorded
outputs (tests/data/qa_recorded.py, ``qa-recorded`` driver mode) in which papers have 0 to 3 kept
pairs besides rejected ones: kept conversations and their counts must survive the kills too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from astrollama.data.aic import run_aic
from astrollama.data.llm import TransformersBackend
from astrollama.data.qa import QAConfig, run_qa

sys.path.insert(0, str(Path(__file__).parent))
from qa_recorded import MIXED_KEPT, MIXED_UNGROUNDED, RecordedOutputs, recorded_outputs  # noqa: E402
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


def test_qa_resumes_kept_pairs_after_kill(tmp_path: Path, tiny_model: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for root in (clean, killed):
        make_root(root, 10)
        run_aic(root, progress=False)
    outputs = recorded_outputs(clean, MIXED_KEPT, MIXED_UNGROUNDED)
    assert outputs == recorded_outputs(killed, MIXED_KEPT, MIXED_UNGROUNDED)  # the driver's outputs
    backend = RecordedOutputs(tiny_model, outputs)
    cfg = QAConfig(max_new_tokens=24, batch_papers=3)
    run_qa(clean, backend, config=cfg, mcq_path=MCQ, progress=False)
    args = ["qa-recorded", str(killed), str(tiny_model), str(MCQ)]
    run_killed(args, killpoint="qa.between:2")  # paper 2's file written, its record not
    assert sum(v[0] == "ok" for v in stage_view(killed, "qa").values()) == 1
    run_killed(args, killpoint="qa.paper:4")  # 1 + 4 papers recorded, the 2nd one regenerated
    assert sum(v[0] == "ok" for v in stage_view(killed, "qa").values()) == 5
    run_qa(killed, backend, config=cfg, mcq_path=MCQ, progress=False)
    assert tree_hash(killed / "qa") == tree_hash(clean / "qa")
    view = stage_view(clean, "qa")
    assert stage_view(killed, "qa") == view
    ok = [v[3] for v in view.values() if v[0] == "ok"]
    assert len(ok) == 9  # the 9th paper of 10 has no AIC
    # every planned pair is kept or rejected for its reason, once: none lost or duplicated
    assert [a["qa_kept"] for a in ok] == [MIXED_KEPT[i % len(MIXED_KEPT)] for i in range(9)]
    assert [a["qa_rejected"] for a in ok] == [
        {"not_standalone": 1, **({"ungrounded": 1} if MIXED_UNGROUNDED[i % len(MIXED_UNGROUNDED)] else {})}
        for i in range(9)
    ]
    assert sum(a["qa_kept"] > 0 for a in ok) == 7
