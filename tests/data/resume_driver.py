"""Runs one corpus stage in a fresh process for tests/data/test_resume_corpus.py (which kills it).

python resume_driver.py aic ROOT
python resume_driver.py summary ROOT MODEL_DIR
python resume_driver.py build ROOT OUT TOKENIZER_DIR MCQ
python resume_driver.py qa ROOT MODEL_DIR MCQ
python resume_driver.py qa-recorded ROOT MODEL_DIR MCQ   (tests/data/qa_recorded.py's outputs)
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    stage, root = argv[0], argv[1]
    if stage == "aic":
        from astrollama.data.aic import run_aic

        run_aic(root, progress=False)
    elif stage == "summary":
        from astrollama.data.llm import TransformersBackend
        from astrollama.data.summarize import SummaryConfig, run_summary

        backend = TransformersBackend(argv[2], max_model_len=1024, temperature=1.0, model_id="tiny")
        run_summary(
            root,
            backend,
            config=SummaryConfig(min_tokens=20, target_total=30, max_tokens=200, batch_papers=3),
            progress=False,
        )
    elif stage == "build":
        from astrollama.data.build import run_build
        from astrollama.data.build_config import BuildConfig

        run_build(
            root,
            ["abstracts", "aic"],
            argv[2],
            tokenizer_dir=argv[3],
            mcq_path=argv[4],
            config=BuildConfig(max_shard_docs=7),
            workers=2,
            progress=False,
        )
    elif stage == "qa":
        from astrollama.data.llm import TransformersBackend
        from astrollama.data.qa import QAConfig, run_qa

        backend = TransformersBackend(argv[2], max_model_len=1024, model_id="tiny")  # greedy
        run_qa(
            root,
            backend,
            config=QAConfig(max_new_tokens=24, batch_papers=3),
            mcq_path=argv[3],
            progress=False,
        )
    elif stage == "qa-recorded":
        from qa_recorded import MIXED_KEPT, MIXED_UNGROUNDED, RecordedOutputs, recorded_outputs  # this dir

        from astrollama.data.qa import QAConfig, run_qa

        outputs = recorded_outputs(Path(root), MIXED_KEPT, MIXED_UNGROUNDED)
        run_qa(
            root,
            RecordedOutputs(Path(argv[2]), outputs),
            config=QAConfig(max_new_tokens=24, batch_papers=3),
            mcq_path=argv[3],
            progress=False,
        )
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
