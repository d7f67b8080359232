"""Compute planner: tokens, optimizer steps, FLOPs, GPU-hours, memory per GPU, sbatch ``--time``.

Formulas (stated in the printed report and in docs/train-recipes.md):

* **Tokens** (``--dataset DIR``): every document tokenised with the recipe's tokenizer, BOS
  included, no EOS (LMFlow). Packing off: a document yields one sequence of ``min(n, block_size)``
  trained tokens, padded to ``block_size`` (padding costs compute). Packing on: documents are
  concatenated in groups of 1,000 (LMFlow's ``group_texts_batch_size``) and each group yields
  ``floor(sum / block_size)`` full sequences; the remainders are dropped. ``--tokens N`` gives the
  trained tokens per epoch directly (sequences = N / block_size).
  A conversation dataset (SFT): one document per conversation, encoded with the recipe's
  ``data.conversation_template`` (astrollama.train.chat); "trained" tokens then include the user
  turns, whose loss is masked but whose compute is not.
* **Steps** = ceil(sequences / global batch) x epochs (or ``trainer.max_steps``).
* **FLOPs** = 6 x N x D (N parameters, D = sequences x block_size x epochs: tokens computed).
  For LoRA the backward pass skips the frozen weights' gradients (~4 N D); 6 N D is kept as an
  upper bound.
* **GPU-hours** = FLOPs / (peak BF16 FLOP/s x MFU) / 3600; wall hours = GPU-hours / GPUs.
* **sbatch --time** = wall x 1.2 + 30 min (loading, tokenising, checkpoints), rounded up to the hour.
* **Memory per GPU** (mixed-precision Adam, ZeRO paper: 2 B bf16 weights + 2 B gradients + 12 B
  fp32 master/momentum/variance per trainable parameter; W = data-parallel processes):
  stage 0: 16N; stage 1: 4N + 12N/W; stage 2: 2N + 14N/W; stage 3: 16N/W; optimizer offload moves
  the 12N (share) to host RAM. LoRA: 2N frozen bf16 weights (sharded by ZeRO-3) + 16 B per adapter
  parameter. Activations per sequence (Korthikanti et al. 2022, bf16, s tokens, h hidden, L
  layers, a heads): without checkpointing L x s x h x (34 + 5 a s / h) bytes (the 5as/h attention
  term vanishes with flash attention); with gradient checkpointing 2 L s h (saved layer inputs)
  + one layer's s h (34 + 5as/h); plus fp32 logits and their gradient, 8 s V bytes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrollama import paper
from astrollama.errors import InputError, is_environment_error
from astrollama.lmflow_data import LMFlowDataError, dataset_files, summarize_dataset
from astrollama.models import resolve_model, resolve_tokenizer
from astrollama.train.batch import BatchPlan, plan_batch
from astrollama.train.recipe import (
    MAX_GPUS_PER_NODE,
    MAX_NODES,
    Recipe,
    RecipeError,
)

log = logging.getLogger(__name__)

__all__ = ["GPUS", "Gpu", "PlanReport", "count_parameters", "count_tokens", "plan"]

GROUP_TEXTS_BATCH_SIZE = 1000  # LMFlow's default group size for packing
MAX_TOKENS = 1e15  # --tokens above this is a typo (LLaMA-3 pre-trained on ~1.5e13 tokens, arXiv:2407.21783)


@dataclass(frozen=True)
class Gpu:
    name: str
    peak_flops: paper.Published
    memory_gb: paper.Published


GPUS: dict[str, Gpu] = {
    "a100-80g": Gpu(
        "A100 80GB", paper.HARDWARE["a100_bf16_peak_flops"], paper.HARDWARE["a100_80g_memory_gb"]
    ),
    "a100-40g": Gpu(
        "A100 40GB", paper.HARDWARE["a100_bf16_peak_flops"], paper.HARDWARE["a100_40g_memory_gb"]
    ),
    "h100-80g": Gpu(
        "H100 SXM 80GB", paper.HARDWARE["h100_bf16_peak_flops"], paper.HARDWARE["h100_memory_gb"]
    ),
}


# ----------------------------------------------------------------------------------------------
# Model size
# ----------------------------------------------------------------------------------------------
def model_config(recipe: Recipe) -> dict[str, Any]:
    """The architecture of the recipe's model: from astrollama.paper.MODEL_CONFIGS, else the
    checkpoint's config.json (local directories and model references such as ``smollm2-135m``)."""
    name = recipe.model.name_or_path
    if name in paper.MODEL_CONFIGS:
        return dict(paper.MODEL_CONFIGS[name].value)
    cfg = Path(resolve_model(name)) / "config.json"
    if not cfg.is_file():
        raise RecipeError(
            recipe.path,
            "model.name_or_path",
            f"no architecture known for {name!r}: add it to astrollama.paper.MODEL_CONFIGS or use a local checkpoint",
        )
    from astrollama.untrusted import read_json

    try:  # regular, bounded, UTF-8 JSON (astrollama.untrusted)
        data = read_json(cfg, "config", expect=None)
    except InputError as e:
        problem = str(e).removeprefix(f"{cfg}: ")
        raise RecipeError(cfg, "(json)", f"not a valid UTF-8 JSON config ({problem})") from None
    if not isinstance(data, dict):
        raise RecipeError(cfg, "(top level)", "must be a JSON object")
    for key in _ARCH_KEYS:
        v = data.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise RecipeError(cfg, key, f"must be a positive integer, got {v!r}")
    for key in ("num_key_value_heads", "head_dim"):
        v = data.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise RecipeError(cfg, key, f"must be a positive integer or absent, got {v!r}")
    return data


_ARCH_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size", "num_attention_heads")


def count_parameters(cfg: dict[str, Any]) -> int:
    """Parameters of a LLaMA-architecture model from its config (embeddings, attention with grouped
    KV heads, SwiGLU MLP, RMSNorm weights, untied or tied LM head)."""
    h, L, i, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or h // heads
    kv = cfg.get("num_key_value_heads", heads) * head_dim
    attn = h * heads * head_dim * 2 + h * kv * 2  # q, o ; k, v
    per_layer = attn + 3 * h * i + 2 * h  # + 2 RMSNorm weights
    head = 0 if cfg.get("tie_word_embeddings", False) else V * h
    return L * per_layer + V * h + head + h


def _lora_parameters(cfg: dict[str, Any], r: int, modules: list[str] | None) -> int:
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or h // heads
    kv = cfg.get("num_key_value_heads", heads) * head_dim
    i = cfg["intermediate_size"]
    shapes = {
        "q_proj": (h, heads * head_dim),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (heads * head_dim, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }
    mods = modules or ["q_proj", "v_proj"]  # peft's default for LLaMA
    return cfg["num_hidden_layers"] * sum(r * (shapes[m][0] + shapes[m][1]) for m in mods if m in shapes)


# ----------------------------------------------------------------------------------------------
# Tokens
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenCount:
    documents: int
    corpus_tokens: int  # all tokens of all documents (BOS included)
    sequences: int  # training sequences per epoch
    trained_tokens: int  # tokens with a loss per epoch (padding excluded)


def count_tokens(
    lengths: list[int], block_size: int, packing: bool, group_size: int = GROUP_TEXTS_BATCH_SIZE
) -> TokenCount:
    """Apply LMFlow's rule to document lengths (see module docstring)."""
    if packing:
        sequences = 0
        for start in range(0, len(lengths), group_size):
            sequences += sum(lengths[start : start + group_size]) // block_size
        trained = sequences * block_size
    else:
        sequences = len(lengths)
        trained = sum(min(n, block_size) for n in lengths)
    return TokenCount(len(lengths), sum(lengths), sequences, trained)


def _dataset_lengths(dataset: Path, tokenizer_name: str, template: str | None = None) -> list[int]:
    """Token counts per document (per conversation, encoded with ``template``, for SFT data)."""
    from tqdm import tqdm
    from transformers import AutoTokenizer

    from astrollama.lmflow_data import CONVERSATION, dataset_type, iter_text_only_file, read_conversation_dir
    from astrollama.train.chat import encode_conversation
    from astrollama.untrusted import check_model_dir

    tok_dir = resolve_tokenizer(tokenizer_name)
    if Path(tok_dir).is_dir():  # its files checked before the library reads them
        check_model_dir(tok_dir, need_weights=False)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    if dataset_type(dataset) == CONVERSATION:
        if template is None:
            raise ValueError(f"{dataset} holds conversations: the recipe needs data.conversation_template")
        convs = read_conversation_dir(dataset)
        return [
            len(encode_conversation(c, tok, template)[0]) for c in tqdm(convs, desc="tokenising", unit="conv")
        ]
    lengths: list[int] = []
    for f in tqdm(dataset_files(dataset), desc="tokenising", unit="file"):
        docs = list(iter_text_only_file(f))
        for start in range(0, len(docs), 1000):
            enc = tok(docs[start : start + 1000], add_special_tokens=True)["input_ids"]
            lengths += [len(x) for x in enc]
    log.info(
        "counted %d documents, %d tokens in %s with %s", len(lengths), sum(lengths), dataset, tokenizer_name
    )
    return lengths


# ----------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------
def memory_per_gpu(
    cfg: dict[str, Any],
    n_params: int,
    *,
    stage: int,
    offload: bool,
    world: int,
    micro: int,
    block: int,
    lora_params: int | None,
    checkpointing: bool,
    flash: bool,
) -> dict[str, float]:
    """Bytes per GPU for weights+gradients+optimizer states and for activations (module docstring)."""
    if lora_params is None:
        weights, grads, optim = 2.0 * n_params, 2.0 * n_params, 12.0 * n_params
        if stage >= 1:
            optim /= world
        if stage >= 2:
            grads /= world
        if stage >= 3:
            weights /= world
    else:  # frozen bf16 base + fully trained adapter
        weights = 2.0 * n_params / (world if stage >= 3 else 1) + 2.0 * lora_params
        grads, optim = 2.0 * lora_params, 12.0 * lora_params
    host = 0.0
    if offload:
        host, optim = optim, 0.0
    h, L, V, a = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["num_attention_heads"]
    s = block
    per_layer = s * h * (34 + (0 if flash else 5 * a * s / h))
    act = (2 * L * s * h + per_layer) if checkpointing else L * per_layer
    act = micro * (act + 8 * s * V)
    return {
        "weights": weights,
        "gradients": grads,
        "optimizer": optim,
        "activations": act,
        "total": weights + grads + optim + act,
        "host_optimizer": host,
    }


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------
def _budget(recipe: Recipe) -> tuple[str, dict[str, paper.Published]] | None:
    """The published recipe this one reproduces (longest RECIPES key its name starts with)."""
    keys = [k for k in paper.RECIPES if recipe.name.startswith(k)]
    if not keys:
        return None
    key = max(keys, key=len)
    return key, paper.RECIPES[key]


def _verdict(mfu: float) -> str:
    if mfu > 1.0:
        return "impossible (>100% MFU)"
    if mfu > 0.6:
        return "implausible (>60% MFU)"
    return "plausible"


def sbatch_time(hours: float) -> str:
    """``sbatch --time`` for ``hours`` of wall clock: x 1.2 + 30 min, rounded up to the hour."""
    total = math.ceil(hours * 1.2 + 0.5)
    return f"{total // 24}-{total % 24:02d}:00:00"


_sbatch_time = sbatch_time  # the earlier private name


@dataclass
class PlanReport:
    recipe: Recipe
    gpu: Gpu
    mfu: float
    nodes: int
    gpus_per_node: int
    batch: BatchPlan
    params: int
    trainable: int
    tokens: TokenCount
    token_source: str
    epochs: float
    steps: int
    computed_tokens: float
    flops: float
    gpu_hours: float
    wall_hours: float
    zero_stage: int
    offload: bool
    memory: dict[str, float]
    comparison: list[dict[str, Any]] = field(default_factory=list)
    budget_note: str = ""

    def render(self) -> str:
        r = self.recipe
        gb = 1024**3
        t = self.tokens
        lines = [
            f"recipe:      {r.name} ({r.path})",
            f"model:       {r.model.name_or_path}: {self.params / 1e9:.3g}e9 parameters"
            + (f", {self.trainable / 1e6:.3g}e6 trainable (LoRA)" if self.trainable != self.params else ""),
            f"allocation:  {self.nodes} node(s) x {self.gpus_per_node} {self.gpu.name} "
            f"({self.gpu.peak_flops.value / 1e12:.0f} TFLOP/s BF16 peak: {self.gpu.peak_flops.cite()})",
            f"batch:       {self.batch.box(self.nodes, self.gpus_per_node)}",
            f"tokens:      {self.token_source}",
        ]
        if t.documents:
            lines.append(f"             {t.documents:,} documents, {t.corpus_tokens:,} corpus tokens")
        lines += [
            f"             packing {'on' if r.data.packing else 'off'}, block {r.data.block_size}: "
            f"{t.sequences:,} sequences, {t.trained_tokens:,} trained tokens per epoch",
            f"steps:       {self.steps:,} optimizer steps ({self.epochs:g} epochs x ceil(sequences / {self.batch.global_batch_size}))",
            f"FLOPs:       6 x N x D = 6 x {self.params:.3g} x {self.computed_tokens:.3g} = {self.flops:.3g}",
            f"GPU-hours:   {self.gpu_hours:,.1f} at {self.mfu:.0%} MFU; wall {self.wall_hours:,.1f} h on "
            f"{self.batch.world_size} GPUs",
            f"sbatch:      --nodes={self.nodes} --time={sbatch_time(self.wall_hours)}  (wall x 1.2 + 30 min)",
        ]
        m = self.memory
        stage = f"ZeRO-{self.zero_stage}" + (" + optimizer offload" if self.offload else "")
        if self.zero_stage == 0:
            stage = "no ZeRO (DDP)"
        fit = "fits" if m["total"] / gb <= self.gpu.memory_gb.value * 0.9 else "DOES NOT FIT"
        lines += [
            f"memory/GPU:  {stage}: weights {m['weights'] / gb:.1f} + gradients {m['gradients'] / gb:.1f} + "
            f"optimizer {m['optimizer'] / gb:.1f} + activations {m['activations'] / gb:.1f} "
            f"= {m['total'] / gb:.1f} GiB of {self.gpu.memory_gb.value} GB: {fit}"
            + (
                f"; host RAM for optimizer {m['host_optimizer'] / gb * self.gpus_per_node:.0f} GiB per node"
                if self.offload
                else ""
            ),
        ]
        if self.comparison:
            lines += [
                "",
                self.budget_note,
                f"    {'training text':<48} {'tokens':>9} {'FLOPs':>9} {'MFU':>5}  verdict",
            ]
            for row in self.comparison:
                lines.append(
                    f"    {row['label']:<48} {row['tokens']:>9.3g} {row['flops']:>9.3g} {row['mfu']:>5.0%}  {row['verdict']}"
                )
        return "\n".join(lines)


def published_tokens(recipe: Recipe) -> tuple[float, str] | None:
    """Trained tokens per epoch estimated from the published corpus of the row the recipe
    reproduces (``n_tokens``, else ``n_papers`` x block size when packing is off: one sequence per
    paper), or None."""
    from astrollama import paper

    keys = [k for k in paper.RECIPES if recipe.name.startswith(k)]
    if not keys:
        return None
    card = paper.RECIPES[max(keys, key=len)]
    if "n_tokens" in card:
        return float(card["n_tokens"].value), f"published corpus: {card['n_tokens'].cite()}"
    # the AIC and summary rows share the corpus of papers (the card reports the summaries' count)
    papers = card.get("n_papers") or paper.RECIPES.get("astrollama-3-8b-base_summary", {}).get("n_papers")
    if papers is not None and not recipe.data.packing:
        block = recipe.data.block_size
        return float(papers.value) * block, f"{papers.value:,} papers x {block} tokens ({papers.cite()})"
    return None


def plan(
    recipe: Recipe,
    *,
    tokens: float | None = None,
    dataset: str | Path | None = None,
    tokenizer: str | None = None,
    mfu: float = 0.4,
    gpu: str = "a100-80g",
    nodes: int | None = None,
    gpus_per_node: int | None = None,
) -> PlanReport:
    """Plan one recipe on an allocation. Tokens: ``tokens`` (trained tokens per epoch), else counted
    from ``dataset`` (default: the recipe's ``data.dataset_path`` when it exists)."""
    nodes, gpn = _check_allocation(recipe, tokens, mfu, gpu, nodes, gpus_per_node)
    g = GPUS[gpu]
    batch = plan_batch(
        recipe.batch.global_batch_size, nodes * gpn, recipe.batch.max_micro_batch_size, file=str(recipe.path)
    )
    block = recipe.data.block_size
    cfg = model_config(recipe)
    max_pos = cfg.get("max_position_embeddings")
    if isinstance(max_pos, int) and not isinstance(max_pos, bool) and 0 < max_pos < block:
        raise RecipeError(
            recipe.path,
            "data.block_size",
            f"{block} is longer than the model's context (max_position_embeddings {max_pos})",
        )
    n_params = count_parameters(cfg)
    lora = recipe.model.lora
    lora_params = _lora_parameters(cfg, lora.r, lora.target_modules) if lora else None

    count, source = _token_count(recipe, tokens, dataset, tokenizer, block)

    max_steps = recipe.trainer.get("max_steps", -1) or -1
    steps_per_epoch = math.ceil(count.sequences / batch.global_batch_size)
    if max_steps > 0:
        steps = max_steps
        epochs = steps / max(steps_per_epoch, 1)
    else:
        epochs = float(recipe.trainer.get("num_train_epochs", 3.0))
        steps = math.ceil(steps_per_epoch * epochs)
    computed = float(steps * batch.global_batch_size * block)  # padding included
    flops = 6.0 * n_params * computed
    peak = g.peak_flops.value
    gpu_hours = flops / (peak * mfu) / 3600
    wall = gpu_hours / batch.world_size

    stage, offload, memory = _memory(recipe, cfg, n_params, batch, block, lora_params)
    report = PlanReport(
        recipe,
        g,
        mfu,
        nodes,
        gpn,
        batch,
        n_params,
        lora_params or n_params,
        count,
        source,
        epochs,
        steps,
        computed,
        flops,
        gpu_hours,
        wall,
        stage,
        offload,
        memory,
    )
    _add_budget_comparison(report)
    return report


def _check_allocation(
    recipe: Recipe, tokens: float | None, mfu: float, gpu: str, nodes: int | None, gpus_per_node: int | None
) -> tuple[int, int]:
    """The options checked (one line naming each bad one); ``(nodes, gpus per node)``."""
    if not 0 < mfu <= 1:
        raise RecipeError(recipe.path, "--mfu", f"must be in (0, 1], got {mfu}")
    if gpu not in GPUS:
        raise RecipeError(recipe.path, "--gpu", f"unknown GPU {gpu!r}; one of {', '.join(GPUS)}")
    if tokens is not None and not (math.isfinite(tokens) and 0 < tokens <= MAX_TOKENS):
        raise RecipeError(
            recipe.path, "--tokens", f"must be a positive finite number <= {MAX_TOKENS:.0e}, got {tokens:g}"
        )
    nodes = recipe.launch.nodes if nodes is None else nodes
    gpn = recipe.launch.gpus_per_node if gpus_per_node is None else gpus_per_node
    if not 1 <= nodes <= MAX_NODES:
        raise RecipeError(recipe.path, "--nodes", f"must be in 1..{MAX_NODES}, got {nodes}")
    if not 1 <= gpn <= MAX_GPUS_PER_NODE:
        raise RecipeError(recipe.path, "--gpus-per-node", f"must be in 1..{MAX_GPUS_PER_NODE}, got {gpn}")
    return nodes, gpn


def _token_count(
    recipe: Recipe, tokens: float | None, dataset: str | Path | None, tokenizer: str | None, block: int
) -> tuple[TokenCount, str]:
    """Trained tokens per epoch and where they come from: given, estimated from the published
    corpus size (no corpus yet), or counted in the dataset with the tokenizer."""
    if tokens is not None:
        seqs = math.ceil(tokens / block)
        return TokenCount(0, 0, seqs, int(tokens)), f"{tokens:.3g} trained tokens per epoch (given)"
    elif dataset is None and not Path(recipe.data.dataset_path).exists():
        # before the corpus exists: the published corpus size of the row, and say so
        est = published_tokens(recipe)
        if est is None:
            raise RecipeError(
                recipe.path,
                "data.dataset_path",
                f"{recipe.data.dataset_path} does not exist yet and the recipe reproduces no row with a "
                "published corpus size: pass --tokens N (trained tokens per epoch) to plan without it",
            )
        tokens = est[0]
        count = TokenCount(0, 0, math.ceil(tokens / block), int(tokens))
        source = (
            f"{recipe.data.dataset_path} does not exist yet, token count skipped; estimated from the {est[1]}"
        )
    else:
        ds = Path(dataset) if dataset is not None else Path(recipe.data.dataset_path)
        try:
            summarize_dataset(ds)  # every shard checked (one in memory at a time) before tokenising
        except LMFlowDataError as e:
            raise RecipeError(
                recipe.path,
                "--dataset" if dataset is not None else "data.dataset_path",
                f"cannot count tokens: {e}",
            ) from None
        tok_name = tokenizer or resolve_model(recipe.model.name_or_path)
        try:
            lengths = _dataset_lengths(ds, tok_name, recipe.data.conversation_template)
        except (OSError, ValueError) as e:  # no such model / not a tokenizer directory
            if isinstance(e, InputError) or is_environment_error(e):
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RecipeError(
                recipe.path,
                "--tokenizer" if tokenizer else "model.name_or_path",
                f"cannot load the tokenizer {tok_name!r} to count tokens (pass --tokenizer DIR "
                f"or --tokens N): {first}",
            ) from None
        count = count_tokens(lengths, block, recipe.data.packing)
        source = f"counted in {ds} with the {tok_name} tokenizer"
    return count, source


def _memory(
    recipe: Recipe, cfg: dict, n_params: int, batch: Any, block: int, lora_params: int | None
) -> tuple:
    """``(ZeRO stage, optimizer offloaded, memory per GPU)`` of the recipe's DeepSpeed config."""
    from astrollama.train import deepspeed

    stage, offload = 0, False
    if recipe.launch.deepspeed is not None:
        ds_cfg = deepspeed.load_config(recipe)
        stage, offload = deepspeed.zero_stage(ds_cfg), deepspeed.offloads_optimizer(ds_cfg)
    memory = memory_per_gpu(
        cfg,
        n_params,
        stage=stage,
        offload=offload,
        world=batch.world_size,
        micro=batch.per_device_train_batch_size,
        block=block,
        lora_params=lora_params,
        checkpointing=bool(recipe.trainer.get("gradient_checkpointing", False)),
        flash=recipe.model.use_flash_attention,
    )
    return stage, offload, memory


def _add_budget_comparison(report: PlanReport) -> None:
    """For recipes with a published GPU-hour budget: what that budget can and cannot cover."""
    found = _budget(report.recipe)
    if found is None or "a100_hours" not in found[1]:
        return
    key, card = found
    hours = card["a100_hours"]
    budget = hours.value * 3600 * paper.HARDWARE["a100_bf16_peak_flops"].value
    n = report.params
    rows: list[tuple[str, float]] = [("this plan", report.computed_tokens)]
    papers = card.get("n_papers")
    block = report.recipe.data.block_size
    if papers is not None:
        p = papers.value
        rows.append((f"{p:,} papers x {block} tokens (cut at block_size)", p * block))
        if "summary_tokens" in card:
            lo, hi = card["summary_tokens"].value
            for t in (lo, (lo + hi) // 2, hi):
                rows.append((f"{p:,} papers x {t:,} tokens (whole summaries)", p * t))
    epochs = report.epochs
    report.comparison = [
        {
            "label": label,
            "tokens": d * (1 if i == 0 else epochs),
            "flops": 6 * n * d * (1 if i == 0 else epochs),
            "mfu": 6 * n * d * (1 if i == 0 else epochs) / budget,
            "verdict": _verdict(6 * n * d * (1 if i == 0 else epochs) / budget),
        }
        for i, (label, d) in enumerate(rows)
    ]
    covers = {m: budget * m / (6 * n) for m in (0.3, 0.4, 0.5)}
    report.budget_note = "\n".join(
        [
            f"published budget for {key}: {hours.value:,} A100 GPU-hours ({hours.cite()})",
            f"  = {budget:.3g} FLOPs at 100% MFU; 6 x N x D covers "
            + ", ".join(f"{d:.2g} tokens at {m:.0%}" for m, d in covers.items())
            + " MFU",
            *([f"  papers: {papers.value:,} ({papers.note})"] if papers is not None else []),
            f"  MFU needed by each training text ({epochs:g} epochs):",
        ]
    )
