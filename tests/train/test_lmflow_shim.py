"""The LMFlow shim gives a plain-Trainer script (like LMFlow's examples/finetune.py) preemption support:
SIGUSR1 -> checkpoint at the current step -> exit 75, before the script saves a "final" model.

The fast path, with a stand-in script that behaves like LMFlow's at its edges (it removes its own
folder from sys.path first, as finetune.py line 19 does, then trains a Trainer built without
callbacks and saves a final model). The real finetune.py runs in test_lmflow_e2e.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

from astrollama.train.checkpoints import check_checkpoint, list_checkpoints
from astrollama.train.preempt import REQUEUE_EXIT_CODE

# Shaped like LMFlow's finetuner: build a Trainer without callbacks, train(), then save_model().
SCRIPT = textwrap.dedent("""
    import os
    import sys
    sys.path.remove(os.path.abspath(os.path.dirname(sys.argv[0])))  # LMFlow's finetune.py, line 19
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, default_data_collator
    from astrollama.train.engine import DataArguments, build_blocks

    model_dir, data_dir, out = sys.argv[1:4]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ds = build_blocks(data_dir, tok, DataArguments(dataset_path=data_dir, disable_group_texts=False), 64)
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=4, max_steps=100000, save_steps=2,
                             report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=1)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=default_data_collator)
    trainer.train()
    trainer.save_model()
""")


def test_shim_makes_a_plain_trainer_script_preemptible(tiny_model, tiny_corpus, train_env, tmp_path):
    script = tmp_path / "finetune_like.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "astrollama.train.lmflow_shim",
            str(script),
            str(tiny_model),
            str(tiny_corpus),
            str(out),
        ],
        env=train_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (out / "checkpoint-2").exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == REQUEUE_EXIT_CODE, log[-3000:]
    newest = list_checkpoints(out)[0]
    assert newest.complete and check_checkpoint(newest.path).complete
    assert f"stop requested (signal SIGUSR1): saving checkpoint-{newest.step}" in log
    assert not (out / "model.safetensors").exists()  # no unfinished model saved as final
