"""The GPU check's sections: each one runs in its own process and returns its figures (one dict)."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

from astrollama.io import atomic_write_text
from astrollama.tools.gpucheck.sizes import REPO, TRAIN_SECTIONS, flops_per_token

log = logging.getLogger(__name__)


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
    from astrollama.tools.bench_mcq import throughput

    s, cuda = spec["sizes"], spec["cuda"]
    try:
        import lm_eval  # noqa: F401
    except ImportError as exc:
        return {"status": "skipped", "reason": f"lm_eval is not importable ({exc})"}
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    r = throughput(
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


def package_versions() -> dict[str, str | None]:
    """Versions of what the sections use, as installed for this interpreter (None: absent)."""
    out: dict[str, str | None] = {}
    for dist in ("torch", "transformers", "accelerate", "deepspeed", "lm_eval", "datasets", "lmflow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out
