"""GPU check: one script, one JSON of figures, for whenever a CUDA machine is at hand.

    bash scripts/gpu_check.sh --wheels DIR --out OUTDIR     # on the GPU machine (< 8 min on one H100)
    bash scripts/gpu_check.sh --cpu-smoke                   # toy sizes on CPU (CI: tests/test_gpu_check.py)
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
* ``mcq``: ``astrollama.evaluation.mcq.bench.benchmark`` (our token scorer against lm-evaluation-harness,
  same loaded model) on the 68 bundled questions;
* ``nougat``: ``NougatTransformers`` on a random checkpoint of nougat-small's architecture, on the
  pages of bundled demo papers rendered to PDF.

Training figures: tokens/s over the optimizer steps after the warm-up ones (step end times from
the per-step log line), and MFU = tokens/s x FLOPs per token / peak, with FLOPs per token
``6 N + 12 L d T`` (PaLM, arXiv:2204.02311, appendix B: N = parameters that take part in matrix
products, i.e. all but the input embedding (tied: counted once, as the output projection);
L layers, d = heads x head dim, T = sequence length; attention counted in full, not halved for the
causal mask). The peak is the dense bf16 datasheet figure of the detected card (:data:`PEAK_BF16_TFLOPS`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from astrollama.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from NVIDIA's datasheets (H100 SXM5, H200 SXM,
#: H100 PCIe, A100 SXM/PCIe). Matched on the CUDA device name, first match wins.
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
]
FLOPS_FORMULA = (
    "flops_per_token = 6*N + 12*L*d*T (PaLM arXiv:2204.02311 app. B; N = matmul parameters, "
    "L layers, d = heads*head_dim, T = block size); mfu = tokens_per_s * flops_per_token / peak"
)
#: Order: the main figure first, LMFlow (the most likely to break on a foreign machine) last.
SECTIONS = ("prepare", "engine_bf16", "deepspeed_zero2", "deepspeed_zero3", "mcq", "nougat", "lmflow_zero2")
TRAIN_SECTIONS = {
    "engine_bf16": None,
    "deepspeed_zero2": "zero2.json",
    "deepspeed_zero3": "zero3.json",
    "lmflow_zero2": "zero2.json",
}
NEEDS_PREPARE = {*TRAIN_SECTIONS, "mcq"}  # the sections that use prepare's model

#: Sizes: the GPU run (one H100, < 8 min in all) and the CPU smoke (seconds per section).
SIZES: dict[str, dict[str, Any]] = {
    "gpu": dict(
        hidden=2048,
        layers=16,
        heads=32,
        kv_heads=8,
        intermediate=8192,
        vocab=128256,
        block=512,
        micro=16,
        steps=30,
        ds_steps=20,
        warmup=5,
        mcq_batch=16,
        mcq_repeats=2,
        nougat_preset="small",
        nougat_papers=3,
        nougat_batch=8,
        nougat_tokens=256,
        dpi=96,
        timeouts=dict(
            prepare=180,
            engine_bf16=180,
            deepspeed_zero2=200,
            deepspeed_zero3=200,
            lmflow_zero2=200,
            mcq=180,
            nougat=180,
        ),
    ),
    "cpu-smoke": dict(
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=128,
        vocab=1024,
        block=64,
        micro=2,
        steps=4,
        ds_steps=4,
        warmup=1,
        mcq_batch=8,
        mcq_repeats=1,
        nougat_preset="tiny",
        nougat_papers=1,
        nougat_batch=4,
        nougat_tokens=8,
        dpi=48,
        timeouts=dict(
            prepare=120,
            engine_bf16=180,
            deepspeed_zero2=600,
            deepspeed_zero3=180,
            lmflow_zero2=240,
            mcq=240,
            nougat=180,
        ),
    ),
}
#: Wheels the GPU machine needs beyond torch/transformers/accelerate/numpy/pandas/pyarrow (what a
#: bare CUDA image with PyTorch has), pinned to requirements.txt / envs/train-cluster.txt. deepspeed is
#: built here from its sdist with DS_BUILD_OPS=0 (pure Python; our configs use the Trainer's AdamW,
#: so no op is compiled at run time).
WHEELS: dict[str, list[str]] = {
    "core+deepspeed": [
        "pydantic==2.13.4",
        "pydantic-core==2.46.4",
        "annotated-types==0.8.0",
        "typing-inspection==0.4.5",
        "hjson==3.1.0",
    ],
    "mcq (lm-eval)": ["lm-eval==0.4.13", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19"],
    "nougat": [
        "pypdfium2==5.15.2",
        "pypdf==7.1.0",
        "fpdf2==2.8.9",
        "defusedxml==0.7.1",
        "nltk==3.10.4",
        "levenshtein==0.27.5",
        "rapidfuzz==3.14.6",
    ],
}
DEEPSPEED = "deepspeed==0.19.8"
#: LMFlow's top-level imports beyond the above (bitsandbytes is imported lazily, only for 8-bit optimizers).
LMFLOW_WHEELS = [
    "wandb==0.31.0",
    "tensordict==0.15.3",
    "pyvers==0.2.3",
    "evaluate==0.4.0",
    "opentelemetry-api==1.45.2",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-proto==1.45.2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
    "opentelemetry-exporter-otlp-proto-common==1.45.2",
    "opentelemetry-semantic-conventions==0.66b2",
    "opentelemetry-exporter-http-transport==0.66b2",
    "opentelemetry-exporter-otlp-common==0.66b2",
    "googleapis-common-protos==1.76.0",
]
WHEEL_BUDGET_MIB = 64.0


# ---------------------------------------------------------------------------------------- helpers
def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a CUDA device by name (None when unknown)."""
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def flops_per_token(n_matmul_params: int, layers: int, attn_dim: int, seq_len: int) -> float:
    """Training FLOPs per token: ``6 N + 12 L d T`` (see the module docstring)."""
    return 6.0 * n_matmul_params + 12.0 * layers * attn_dim * seq_len


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _StepTimes(logging.Handler):
    """Collects the wall-clock time of every ``optimizer step N/M done`` log record."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("optimizer step "):
            self.times.append(record.created)


def _random_words(n: int, seed: int) -> str:
    from astrollama.models import DEFAULT_TINY_TEXT

    words = DEFAULT_TINY_TEXT.replace(".", " .").split()
    rng = random.Random(seed)
    return " ".join(rng.choice(words) for _ in range(n))


# ---------------------------------------------------------------------------------------- sections
def llama3_config(s: dict[str, Any], tok: Any = None) -> Any:
    """A LLaMA-3-shaped ``LlamaConfig`` of the given sizes (RoPE theta 500k, tied embeddings)."""
    from transformers import LlamaConfig

    ids = {f"{k}_token_id": getattr(tok, f"{k}_token_id") for k in ("bos", "eos", "pad")} if tok else {}
    return LlamaConfig(
        vocab_size=s["vocab"],
        hidden_size=s["hidden"],
        intermediate_size=s["intermediate"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        max_position_embeddings=max(2048, s["block"]),
        rope_theta=500000.0,
        tie_word_embeddings=True,
        **ids,
    )


def section_prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """The random LLaMA-3-shaped model (+ tiny tokenizer) and a packed corpus for the training sections."""
    import torch
    from transformers import LlamaForCausalLM

    from astrollama.lmflow_data import write_text_only
    from astrollama.models import tiny_tokenizer

    s, work = spec["sizes"], Path(spec["work"])
    device = "cuda" if spec["cuda"] else "cpu"
    tok = tiny_tokenizer()
    cfg = llama3_config(s, tok)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(work / "llama")
    tok.save_pretrained(work / "llama")
    n_total = sum(p.numel() for p in model.parameters())  # tied: the shared matrix once
    n_matmul = n_total - (0 if cfg.tie_word_embeddings else cfg.vocab_size * cfg.hidden_size)
    build_s = time.perf_counter() - t0
    del model
    # enough packed tokens for the longest run (x1.3: BPE yields ~1 token per word, plus margin)
    need = max(s["steps"], s["ds_steps"]) * s["micro"] * s["block"]
    docs = [_random_words(400, seed=i) for i in range(max(4, int(need * 1.3 / 400) + 1))]
    write_text_only(work / "data" / "shard-00000.json", docs)
    return {
        "packages": package_versions(),
        "model": str(work / "llama"),
        "parameters": n_total,
        "matmul_parameters": n_matmul,
        "config": {k: s[k] for k in ("hidden", "layers", "heads", "kv_heads", "intermediate", "vocab")},
        "build_and_save_s": round(build_s, 2),
        "documents": len(docs),
    }


def _recipe(spec: dict[str, Any], name: str, engine: str, ds: str | None, steps: int) -> Path:
    s, work = spec["sizes"], Path(spec["work"])
    cuda = spec["cuda"]
    recipe = {
        "reproduces": "none: GPU check (random model)",
        "model": {"name_or_path": str(work / "llama"), "torch_dtype": "bfloat16" if cuda else "float32"},
        "data": {
            "dataset_path": str(work / "data"),
            "block_size": s["block"],
            "packing": True,
            "preprocessing_num_workers": 1,
        },
        "batch": {"global_batch_size": s["micro"], "max_micro_batch_size": s["micro"]},
        "launch": {
            "engine": engine,
            "deepspeed": str(REPO / "ds_configs" / ds) if ds else None,
            "nodes": 1,
            "gpus_per_node": 1,
            "run_dir": str(work / "runs" / name),
        },
        "trainer": {
            "learning_rate": 1.0e-4,
            "lr_scheduler_type": "constant",
            "max_steps": steps,
            "save_strategy": "steps",
            "save_steps": 10 * steps,
            "logging_steps": 1,
            "seed": 0,
            "report_to": "none",
            "dataloader_num_workers": 0,
            "max_grad_norm": 1.0,
            "bf16": cuda,
            "use_cpu": not cuda,
        },
    }
    path = work / "recipes" / f"{name}.yaml"
    atomic_write_text(path, json.dumps(recipe, indent=1))  # JSON is YAML
    return path


def section_train(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """One training run in this process (world size 1, as torchrun would start it)."""
    from astrollama.train import deepspeed as ds_check
    from astrollama.train.batch import plan_batch
    from astrollama.train.lmflow import finetune_args
    from astrollama.train.recipe import load_recipe

    s, prep = spec["sizes"], spec["prepare"]
    ds = TRAIN_SECTIONS[name]
    lmflow_script = None
    if name.startswith("lmflow"):
        try:
            import lmflow
        except Exception as exc:  # noqa: BLE001 - any import failure means: not runnable here
            return {"status": "skipped", "reason": f"lmflow is not importable ({type(exc).__name__}: {exc})"}
        # else the checkout an editable install points at (src/lmflow/__init__.py -> examples/finetune.py)
        lmflow_script = spec.get("lmflow_script") or str(
            Path(lmflow.__file__).parents[2] / "examples" / "finetune.py"
        )
        if not Path(lmflow_script).is_file():
            return {
                "status": "skipped",
                "reason": f"LMFlow's script {lmflow_script} not found "
                "(--lmflow-script, ASTROLLAMA_LMFLOW_DIR or <wheels>/lmflow/examples)",
            }
    if ds:
        try:
            import deepspeed  # noqa: F401
        except ImportError as exc:
            return {
                "status": "skipped",
                "reason": f"deepspeed is not importable ({exc}); carry its wheel "
                "(scripts/gpu_check.sh --prepare-wheels)",
            }
    steps = s["steps"] if name == "engine_bf16" else s["ds_steps"]
    recipe = load_recipe(_recipe(spec, name, "lmflow" if lmflow_script else "local", ds, steps))
    plan = plan_batch(recipe.batch.global_batch_size, 1, recipe.batch.max_micro_batch_size)
    if ds:
        ds_check.check(recipe, plan=plan)
    out_dir = recipe.launch.run_dir / "checkpoints"
    flags = finetune_args(recipe, plan, output_dir=out_dir)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        LOCAL_WORLD_SIZE="1",
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    steps_log = _StepTimes()
    logging.getLogger().addHandler(steps_log)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    # the attention that from_pretrained picks by default (the engine passes none); checked before the
    # Trainer exists, whose ZeRO-3 config would otherwise partition this meta-device model
    with torch.device("meta"):
        attn = AutoModelForCausalLM.from_config(
            AutoConfig.from_pretrained(prep["model"])
        ).config._attn_implementation
    cuda = spec["cuda"]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if lmflow_script:
        from astrollama.train import lmflow_shim

        rc = lmflow_shim.main([lmflow_script, *flags])
    else:
        from astrollama.train import engine

        rc = engine.train(*engine.parse_args(flags))
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"training returned {rc}")
    state = json.loads((out_dir / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    t = steps_log.times
    if len(t) != steps:
        raise RuntimeError(f"{len(t)} step log lines for {steps} steps")
    w = min(s["warmup"], steps - 2)
    timed = len(t) - 1 - w
    tokens_per_step = s["micro"] * s["block"]
    tps = timed * tokens_per_step / (t[-1] - t[w])
    fpt = flops_per_token(prep["matmul_parameters"], s["layers"], s["hidden"], s["block"])
    peak = spec["peak_tflops"]
    return {
        "steps": steps,
        "timed_steps": timed,
        "warmup_steps": w + 1,
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": tps,
        "step_s": (t[-1] - t[w]) / timed,
        "flops_per_token": fpt,
        "tflops_per_s": tps * fpt / 1e12,
        "mfu": (tps * fpt / (peak * 1e12)) if peak else None,
        "losses": losses,
        "train_wall_s": round(wall, 2),
        "attn_implementation": attn,
        "dtype": recipe.model.torch_dtype,
        "bf16": bool(recipe.trainer.get("bf16")),
        "deepspeed_config": ds,
        "engine": "lmflow" if lmflow_script else "local",
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def section_mcq(spec: dict[str, Any]) -> dict[str, Any]:
    """Our token scorer against lm-eval, same loaded model, on the bundled questions."""
    from astrollama.evaluation.mcq.bench import benchmark

    s, cuda = spec["sizes"], spec["cuda"]
    try:
        import lm_eval  # noqa: F401
    except ImportError as exc:
        return {"status": "skipped", "reason": f"lm_eval is not importable ({exc})"}
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    r = benchmark(
        spec["prepare"]["model"],
        REPO / "eval" / "data" / "astro_mcq_sample.jsonl",
        batch_size=s["mcq_batch"],
        dtype="bfloat16" if cuda else "float32",
        device="cuda" if cuda else "cpu",
        repeats=s["mcq_repeats"],
    )
    keep = (
        "n_questions",
        "dtype",
        "device",
        "batch_size",
        "repeats",
        "seconds",
        "questions_per_s",
        "speedup_vs_lm_eval",
        "identical_predictions",
        "mismatches",
    )
    return {k: r[k] for k in keep} | {"model": "prepare's random LLaMA"}


def section_nougat(spec: dict[str, Any]) -> dict[str, Any]:
    """``NougatTransformers`` on a random checkpoint, pages of bundled demo papers: pages/s."""
    from astrollama.data import ocr, pdfgen
    from astrollama.data.ocr.nougat import NougatTransformers, RepetitionConfig, random_nougat

    s, work, cuda = spec["sizes"], Path(spec["work"]), spec["cuda"]
    ckpt = random_nougat(work / "nougat", s["nougat_preset"])
    images = []
    for paper in pdfgen.iter_paper_files(REPO / "data" / "demo" / "papers")[: s["nougat_papers"]]:
        pdf = work / "pdf" / f"{paper.stem}.pdf"
        pdf.parent.mkdir(parents=True, exist_ok=True)
        pdf.write_bytes(pdfgen.render_paper_pdf(pdfgen.load_paper(paper)))
        images += ocr.render_pages(pdf, dpi=s["dpi"])
    model = NougatTransformers(
        ckpt,
        device="cuda" if cuda else "cpu",
        max_new_tokens=s["nougat_tokens"],
        repetition=RepetitionConfig(enabled=False),
    )
    model.generate(images[:1])  # warm-up: kernels, allocator
    if cuda:
        import torch

        torch.cuda.synchronize()
    t0 = time.perf_counter()
    outs = [
        o
        for i in range(0, len(images), s["nougat_batch"])
        for o in model.generate(images[i : i + s["nougat_batch"]])
    ]
    seconds = time.perf_counter() - t0
    pages = [model.page_markdown(o, i + 1) for i, o in enumerate(outs)]
    tokens = sum(o.n_tokens for o in outs)
    if any(o.error for o in outs) or len(pages) != len(images):
        raise RuntimeError(f"page errors: {[o.error for o in outs if o.error]}")
    return {
        "preset": s["nougat_preset"],
        "pages": len(images),
        "batch": s["nougat_batch"],
        "max_new_tokens": s["nougat_tokens"],
        "dtype": str(model.dtype).removeprefix("torch."),
        "seconds": seconds,
        "pages_per_s": len(images) / seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
    }


def run_section(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    if name == "prepare":
        return section_prepare(spec)
    if name in TRAIN_SECTIONS:
        return section_train(spec, name)
    if name == "mcq":
        return section_mcq(spec)
    if name == "nougat":
        return section_nougat(spec)
    raise ValueError(f"unknown section {name!r}")


# ---------------------------------------------------------------------------------------- driver
def device_info() -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
        "cuda": torch.cuda.is_available(),
    }
    if info["cuda"]:
        p = torch.cuda.get_device_properties(0)
        info |= {
            "name": p.name,
            "memory_gib": round(p.total_memory / 2**30, 1),
            "multiprocessors": p.multi_processor_count,
            "cuda_runtime": torch.version.cuda,
        }
    else:
        info["name"] = "cpu"
    return info


def package_versions() -> dict[str, str | None]:
    """Versions of what the sections use, as installed for this interpreter (None: absent)."""
    out: dict[str, str | None] = {}
    for dist in ("torch", "transformers", "accelerate", "deepspeed", "lm_eval", "datasets", "lmflow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(lines[-n:])


def _finite(x: Any) -> bool:
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return True
    if isinstance(x, (int, float)):
        return math.isfinite(x)
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return True


def check(
    mode: str,
    work: Path,
    *,
    only: list[str] | None = None,
    python: str = sys.executable,
    peak: float | None = None,
    budget_s: float = 440.0,
    lmflow_script: str | None = None,
) -> dict[str, Any]:
    """Run every section in its own process; return the figures (one dict)."""
    t_start = time.perf_counter()
    sizes = SIZES[mode]
    info = device_info()
    if mode == "gpu" and not info["cuda"]:
        raise SystemExit("gpu check: no CUDA device (use --cpu-smoke on a machine without one)")
    peak = peak if peak is not None else peak_tflops(info["name"]) if info["cuda"] else None
    spec: dict[str, Any] = {
        "sizes": sizes,
        "work": str(work),
        "cuda": info["cuda"],
        "peak_tflops": peak,
        "lmflow_script": lmflow_script,
    }
    result: dict[str, Any] = {
        "check": "astrollama gpu_check",
        "mode": mode,
        "device": info,
        "peak_bf16_tflops": peak,
        "flops_formula": FLOPS_FORMULA,
        "sections": {},
    }
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "WANDB_MODE": "disabled",
        "PYTHONUNBUFFERED": "1",
    }
    selected = [n for n in SECTIONS[1:] if not only or n in only]
    for name in SECTIONS:
        if name not in selected and not (name == "prepare" and NEEDS_PREPARE & set(selected)):
            continue
        left = budget_s - (time.perf_counter() - t_start)
        if left < 20:
            result["sections"][name] = {"status": "skipped", "reason": f"time budget {budget_s:.0f} s spent"}
            continue
        if name in NEEDS_PREPARE and result["sections"]["prepare"]["status"] != "ok":
            result["sections"][name] = {"status": "skipped", "reason": "prepare did not succeed"}
            continue
        spec_path, res_path, log_path = (work / f"{name}.{x}" for x in ("spec.json", "result.json", "log"))
        atomic_write_json(spec_path, spec)
        timeout = min(sizes["timeouts"][name], left)
        log.warning("gpu check: section %s (timeout %.0f s)", name, timeout)
        t0 = time.perf_counter()
        try:
            with open(log_path, "w") as lf:
                rc = subprocess.run(
                    [
                        python,
                        "-m",
                        "astrollama.gpucheck",
                        "--section",
                        name,
                        "--spec",
                        str(spec_path),
                        "--result",
                        str(res_path),
                    ],
                    stdout=lf,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=timeout,
                    cwd=REPO,
                ).returncode
            res = json.loads(res_path.read_text()) if res_path.exists() else None
            if res is None:
                res = {"status": "error", "error": f"exit {rc}, no result: {_tail(log_path)}"}
        except subprocess.TimeoutExpired:
            res = {"status": "error", "error": f"timed out after {timeout:.0f} s: {_tail(log_path)}"}
        res["section_s"] = round(time.perf_counter() - t0, 2)
        if res.get("status") == "ok" and not _finite(res):
            res = {**res, "status": "error", "error": "a figure is not finite"}
        result["sections"][name] = res
        if name == "prepare" and res.get("status") == "ok":
            spec["prepare"] = res
        log.warning("gpu check: %s %s in %.1f s", name, res.get("status"), res["section_s"])
    ref = result["sections"].get("engine_bf16", {})
    for name in TRAIN_SECTIONS:
        sec = result["sections"].get(name, {})
        if name != "engine_bf16" and sec.get("status") == "ok" and ref.get("status") == "ok":
            sec["loss_max_abs_diff_vs_engine_bf16"] = max(
                abs(a - b) for a, b in zip(sec["losses"], ref["losses"], strict=False)
            )
    result["seconds"] = round(time.perf_counter() - t_start, 2)
    result["ok"] = all(r.get("status") in ("ok", "skipped") for r in result["sections"].values())
    return result


def _child(name: str, spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    try:
        res = {"status": "ok", **run_section(name, spec)}
    except Exception as exc:  # noqa: BLE001 - recorded, the driver goes on with the next section
        import traceback

        traceback.print_exc()
        res = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:2000]}
    atomic_write_json(result_path, res)
    return 0


# ---------------------------------------------------------------------------------------- wheels
def prepare_wheels(
    dest: Path, *, python_version: str = "3.12", lmflow_dir: Path | None = None
) -> dict[str, Any]:
    """Download (binary only, for CPython ``python_version`` on x86-64 manylinux) and build the wheels the
    GPU machine lacks into ``dest``; return their sizes per group. Needs the package registries."""
    dest.mkdir(parents=True, exist_ok=True)
    plat = [
        a
        for n in (
            "manylinux_2_28_x86_64",
            "manylinux_2_27_x86_64",
            "manylinux_2_24_x86_64",
            "manylinux_2_17_x86_64",
            "manylinux2014_x86_64",
            "manylinux1_x86_64",
        )
        for a in ("--platform", n)
    ]
    groups = dict(WHEELS)
    if lmflow_dir is not None:
        groups["lmflow"] = LMFLOW_WHEELS
    pip = [sys.executable, "-m", "pip"]
    sizes: dict[str, Any] = {}
    before = {p.name for p in dest.glob("*.whl")}
    for pins in groups.values():
        subprocess.run(
            [
                *pip,
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                python_version,
                "--implementation",
                "cp",
                *plat,
                "-d",
                str(dest),
                *pins,
            ],
            check=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [*pip, "download", "-q", "--no-deps", "--no-binary=:all:", "-d", tmp, DEEPSPEED], check=True
        )
        sdist = next(Path(tmp).iterdir())
        subprocess.run(
            [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), str(sdist)],
            check=True,
            env={**os.environ, "DS_BUILD_OPS": "0"},
        )
        if lmflow_dir is not None:
            import shutil

            src = Path(tmp) / "lmflow"  # build from a writable copy (a read-only checkout cannot build)
            shutil.copytree(lmflow_dir, src, ignore=shutil.ignore_patterns(".git"))
            subprocess.run(
                [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), str(src)],
                check=True,
            )
            (dest / "lmflow" / "examples").mkdir(parents=True, exist_ok=True)
            shutil.copy2(
                lmflow_dir / "examples" / "finetune.py", dest / "lmflow" / "examples" / "finetune.py"
            )

    def mib(names: list[str]) -> float:
        return round(sum((dest / n).stat().st_size for n in names) / 2**20, 2)

    def norm(s: str) -> str:
        return s.split("==")[0].replace("-", "_").lower()

    wheels = sorted(p.name for p in dest.glob("*.whl"))
    for group, pins in {**groups, "deepspeed (built)": [DEEPSPEED]}.items():
        names = [w for w in wheels if w.split("-")[0].lower() in {norm(p) for p in pins}]
        sizes[group] = {"wheels": names, "mib": mib(names)}
    if lmflow_dir is not None:
        names = [w for w in wheels if w.split("-")[0].lower() == "lmflow"]
        sizes["lmflow"]["wheels"] += names
        sizes["lmflow"]["mib"] = round(sizes["lmflow"]["mib"] + mib(names), 2)
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) / 2**20
    stale = sorted(set(wheels) - before - {w for g in sizes.values() for w in g["wheels"]})
    return {
        "dir": str(dest),
        "groups": sizes,
        "total_mib": round(total, 2),
        "budget_mib": WHEEL_BUDGET_MIB,
        "fits": total <= WHEEL_BUDGET_MIB,
        "unexpected": stale,
    }


# ---------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m astrollama.gpucheck",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cpu-smoke", action="store_true", help="toy sizes on CPU (seconds per section)")
    p.add_argument(
        "--out", default=os.environ.get("OUT"), help="also write OUT/gpu_check.json (default: $OUT)"
    )
    p.add_argument("--work", default=None, help="scratch directory (default: a new temporary one)")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SECTIONS[1:])}")
    p.add_argument(
        "--python", default=sys.executable, help="interpreter for the sections (default: this one)"
    )
    p.add_argument("--peak-tflops", type=float, default=None, help="override the detected peak (e.g. on CPU)")
    p.add_argument("--budget-s", type=float, default=440.0, help="stop starting sections after this (s)")
    p.add_argument("--lmflow-script", default=None, help="LMFlow's examples/finetune.py")
    p.add_argument("--prepare-wheels", metavar="DIR", default=None, help="download/build the wheels to carry")
    p.add_argument(
        "--lmflow-dir", default=None, help="with --prepare-wheels: also LMFlow (checkout) + its imports"
    )
    p.add_argument("--python-version", default="3.12", help="with --prepare-wheels: the GPU machine's Python")
    p.add_argument("--section", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.section:
        return _child(a.section, a.spec, a.result)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if a.out:  # checked before the (long) run: not a directory, link or device there, and writable
        from astrollama.io import claim_file

        claim_file(Path(a.out) / "gpu_check.json", "gpu check", is_own=None)
    if a.prepare_wheels:
        res = prepare_wheels(
            Path(a.prepare_wheels),
            python_version=a.python_version,
            lmflow_dir=Path(a.lmflow_dir) if a.lmflow_dir else None,
        )
        print(json.dumps(res, indent=1))
        return 0 if res["fits"] else 1
    only = [x.strip() for x in a.only.split(",")] if a.only else None
    if only and set(only) - set(SECTIONS):
        p.error(f"--only: unknown sections {sorted(set(only) - set(SECTIONS))}; known: {', '.join(SECTIONS)}")
    lmflow_script = a.lmflow_script
    if lmflow_script is None and os.environ.get("ASTROLLAMA_LMFLOW_DIR"):
        lmflow_script = str(Path(os.environ["ASTROLLAMA_LMFLOW_DIR"]) / "examples" / "finetune.py")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(a.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        res = check(
            "cpu-smoke" if a.cpu_smoke else "gpu",
            work,
            only=only,
            python=a.python,
            peak=a.peak_tflops,
            budget_s=a.budget_s,
            lmflow_script=lmflow_script,
        )
    text = json.dumps(res, indent=1)
    if a.out:
        atomic_write_json(Path(a.out) / "gpu_check.json", res)
    print(text)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
