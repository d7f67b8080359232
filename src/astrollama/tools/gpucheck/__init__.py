"""GPU check: one script, one JSON of figures, for whenever a CUDA machine is at hand.

    bash scripts/gpu_check.sh --wheels DIR --out OUTDIR     # on the GPU machine (< 8 min on one H100)
    bash scripts/gpu_check.sh --cpu-smoke                   # toy sizes on CPU (CI: tests/train/test_gpu_check.py)
    bash scripts/gpu_check.sh --prepare-wheels DIR          # here, with the registries: the wheels to carry

Sections, each in its own process (timed; a failing one records its error and the rest go on):

* ``prepare``: a random LLaMA-3-shaped model (1B class: hidden 2048, 16 layers, 32 heads, 8 KV heads,
  intermediate 8192, vocabulary 128256, tied embeddings like Llama-3.2-1B) + the tiny BPE tokenizer,
  and a packed ``text_only`` corpus of random words;
* ``engine_bf16``: the local engine (``astrollama.train.engine``) on that model, bf16 weights,
  ``trainer.bf16``, SDPA attention, block 512, flags from :func:`astrollama.train.lmflow.finetune_args`;
* ``deepspeed_zero2``, ``deepspeed_zero3``: the same through ``ds_configs/zero{2,3}.json``;
* ``lmflow_zero2``: LMFlow's ``examples/finetune.py`` through ``astrollama.train.lmflow_shim`` with
  ZeRO-2, where ``lmflow`` imports and the script is found;
* ``mcq``: ``astrollama.tools.bench_mcq.throughput`` (our token scorer against lm-evaluation-harness,
  same loaded model) on the 68 bundled questions;
* ``nougat``: ``NougatTransformers`` on a random checkpoint of nougat-small's architecture, on the
  pages of bundled demo papers rendered to PDF.

Training figures: tokens/s over the optimizer steps after the warm-up ones (step end times from
the per-step log line), and MFU = tokens/s x FLOPs per token / peak, with FLOPs per token
``6 N + 12 L d T`` (PaLM, arXiv:2204.02311, appendix B: N = parameters that take part in matrix
products, i.e. all but the input embedding (tied: counted once, as the output projection);
L layers, d = heads x head dim, T = sequence length; attention counted in full, not halved for the
causal mask). The peak is the dense bf16 datasheet figure of the detected card (:data:`.sizes.PEAK_BF16_TFLOPS`).

Modules: :mod:`.sizes` (the two size sets, the section list, the datasheet peaks, the FLOPs
formula), :mod:`.sections` (what each section measures, run in its own process), :mod:`.driver`
(the sections' processes, the one JSON, the command line: ``python -m astrollama.tools.gpucheck``),
:mod:`.wheels` (the wheels carried to a GPU machine without network).
"""
