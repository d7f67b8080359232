"""DeepSpeed configs: loading, and the check that a config agrees with its recipe.

The configs in ``ds_configs/`` leave batch sizes, accumulation, clipping and precision to the
Trainer (``"auto"``), which fills them from the flags ``astrollama.train.lmflow`` derives. A config
that hard-codes any of them must agree with the recipe and the batch plan, or DeepSpeed and the
Trainer would silently train differently from what the recipe says. Optimizer and scheduler are
the Trainer's (AdamW + the recipe's ``lr_scheduler_type``): a config that defines its own is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from astrollama.train.batch import BatchPlan
from astrollama.train.recipe import Recipe, RecipeError

__all__ = ["check", "load_config", "offloads_optimizer", "recipe_precision", "zero_stage"]

KEY = "launch.deepspeed"

# The keys DeepSpeed's config documents (deepspeed.ai/docs/config-json), so that a misspelt key
# (``gradient_cliping``) is refused here instead of ignored by DeepSpeed's top level.
TOP_KEYS = frozenset(
    [
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "optimizer",
        "scheduler",
        "fp16",
        "bf16",
        "amp",
        "torch_autocast",
        "gradient_clipping",
        "prescale_gradients",
        "gradient_predivide_factor",
        "sparse_gradients",
        "zero_optimization",
        "zero_allow_untested_optimizer",
        "zero_force_ds_cpu_optimizer",
        "steps_per_print",
        "wall_clock_breakdown",
        "dump_state",
        "memory_breakdown",
        "flops_profiler",
        "activation_checkpointing",
        "sparse_attention",
        "data_efficiency",
        "curriculum_learning",
        "monitor_config",
        "tensorboard",
        "wandb",
        "csv_monitor",
        "comet",
        "comms_logger",
        "autotuning",
        "elasticity",
        "communication_data_type",
        "seq_parallel_communication_data_type",
        "checkpoint",
        "data_types",
        "aio",
        "compression_training",
        "disable_allgather",
        "eigenvalue",
        "progressive_layer_drop",
        "pipeline",
        "weight_quantization",
        "nebula",
        "hybrid_engine",
        "compile",
        "use_data_before_expert_parallelism",
        "timers",
        "graph_harvesting",
        "zero_quantized_weights",
        "zero_quantized_gradients",
        "zero_hpz_partition_size",
    ]
)
ZERO_KEYS = frozenset(
    [
        "stage",
        "allgather_partitions",
        "allgather_bucket_size",
        "overlap_comm",
        "reduce_scatter",
        "reduce_bucket_size",
        "contiguous_gradients",
        "offload_param",
        "offload_optimizer",
        "cpu_offload",
        "cpu_offload_params",
        "cpu_offload_use_pin_memory",
        "sub_group_size",
        "stage3_max_live_parameters",
        "stage3_max_reuse_distance",
        "stage3_prefetch_bucket_size",
        "stage3_param_persistence_threshold",
        "stage3_gather_16bit_weights_on_model_save",
        "stage3_gather_fp16_weights_on_model_save",
        "stage3_module_granularity_threshold",
        "stage3_use_all_reduce_for_fetch_params",
        "elastic_checkpoint",
        "round_robin_gradients",
        "load_from_fp32_weights",
        "ignore_unused_parameters",
        "legacy_stage1",
        "zero_hpz_partition_size",
        "zero_quantized_weights",
        "zero_quantized_nontrainable_weights",
        "zero_quantized_gradients",
        "zeropp_loco_param",
        "mics_shard_size",
        "mics_hierarchical_params_gather",
        "memory_efficient_linear",
        "pipeline_loading_checkpoint",
        "override_module_apply",
        "log_trace_cache_warnings",
        "use_multi_rank_bucket_allreduce",
        "module_granularity_threshold",
        "use_all_reduce_for_fetch_params",
    ]
)
SUB_KEYS = {
    "fp16": frozenset(
        [
            "enabled",
            "auto_cast",
            "loss_scale",
            "initial_scale_power",
            "loss_scale_window",
            "hysteresis",
            "consecutive_hysteresis",
            "min_loss_scale",
            "fp16_master_weights_and_grads",
        ]
    ),
    "bf16": frozenset(
        [
            "enabled",
            "immediate_grad_update",
            "check_grad_overflow",
            "bf16_master_weights_and_grads",
            "bf16_optimizer_states",
        ]
    ),
}
OFFLOAD_KEYS = frozenset(
    [
        "device",
        "nvme_path",
        "buffer_count",
        "buffer_size",
        "max_in_cpu",
        "pin_memory",
        "pipeline",
        "pipeline_read",
        "pipeline_write",
        "fast_init",
        "ratio",
    ]
)


def load_config(recipe: Recipe, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The JSON config named by ``launch.deepspeed`` (or ``path``); one-line errors name the recipe."""
    p = Path(path) if path is not None else recipe.launch.deepspeed
    if p is None:
        raise RecipeError(recipe.path, KEY, "not set")
    if not p.is_file():
        raise RecipeError(recipe.path, KEY, f"DeepSpeed config not found: {p}")
    from astrollama.errors import InputError
    from astrollama.untrusted import read_text

    try:  # regular, bounded, UTF-8 (astrollama.untrusted)
        text = read_text(p, "config")
    except InputError as e:
        raise RecipeError(recipe.path, KEY, str(e)) from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecipeError(recipe.path, KEY, f"{p} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise RecipeError(recipe.path, KEY, f"{p} must hold a JSON object")
    _check_types(recipe, p, config)
    _check_keys(recipe, p, config)
    return config


def _check_types(recipe: Recipe, path: Path, config: dict[str, Any]) -> None:
    """The shape of the keys read here: sections are objects, numbers are numbers (one-line errors)."""

    def bad(field: str, problem: str) -> RecipeError:
        return RecipeError(recipe.path, KEY, f"{path}: {field}: {problem}")

    for section in ("bf16", "fp16", "zero_optimization"):
        if section in config and not isinstance(config[section], dict):
            raise bad(section, f'must be an object (e.g. {{"enabled": true}}), got {config[section]!r}')
    zero = config.get("zero_optimization", {})
    stage = zero.get("stage", 0)
    if not isinstance(stage, int) or isinstance(stage, bool) or stage not in (0, 1, 2, 3):
        raise bad("zero_optimization.stage", f"must be the integer 0, 1, 2 or 3, got {stage!r}")
    for sub in ("offload_optimizer", "offload_param"):
        if sub in zero and not isinstance(zero[sub], dict):
            raise bad(
                f"zero_optimization.{sub}", f'must be an object (e.g. {{"device": "cpu"}}), got {zero[sub]!r}'
            )
    for key in (
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        v = config.get(key)
        number = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
        if v is not None and v != "auto" and not number:
            raise bad(key, f'must be a number or "auto", got {v!r}')


def _check_keys(recipe: Recipe, path: Path, config: dict[str, Any]) -> None:
    """Unknown keys are refused (astrollama.config.check_keys), at the top level and in the
    sections whose keys DeepSpeed fixes."""
    from astrollama.config import check_keys

    def err(file: Any, key: str, problem: str) -> RecipeError:
        return RecipeError(recipe.path, KEY, f"{file}: {key}: {problem}")

    check_keys(config, TOP_KEYS, path, error=err)  # type: ignore[arg-type]
    for name, keys in SUB_KEYS.items():
        if isinstance(config.get(name), dict):
            check_keys(config[name], keys, path, name, error=err)  # type: ignore[arg-type]
    zero = config.get("zero_optimization")
    if isinstance(zero, dict):
        check_keys(zero, ZERO_KEYS, path, "zero_optimization", error=err)  # type: ignore[arg-type]
        for sub in ("offload_optimizer", "offload_param"):
            if isinstance(zero.get(sub), dict):
                check_keys(zero[sub], OFFLOAD_KEYS, path, f"zero_optimization.{sub}", error=err)  # type: ignore[arg-type]


def recipe_precision(recipe: Recipe) -> str:
    """``bf16``, ``fp16`` or ``fp32``, from the trainer section."""
    if recipe.trainer.get("bf16"):
        return "bf16"
    if recipe.trainer.get("fp16"):
        return "fp16"
    return "fp32"


def zero_stage(config: dict[str, Any]) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


def offloads_optimizer(config: dict[str, Any]) -> bool:
    device = config.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    return device not in (None, "none")


def _explicit(value: Any) -> bool:
    return value is not None and value != "auto"


def check(
    recipe: Recipe,
    config: dict[str, Any] | str | os.PathLike[str] | None = None,
    plan: BatchPlan | None = None,
) -> dict[str, Any]:
    """Raise :class:`RecipeError` unless ``config`` agrees with ``recipe`` (and ``plan``).

    ``config`` is a loaded dict or a path; by default the recipe's ``launch.deepspeed``. Returns
    the loaded config.
    """
    if not isinstance(config, dict):
        config = load_config(recipe, config)
    else:
        _check_types(recipe, recipe.launch.deepspeed or Path("(config)"), config)
    name = Path(recipe.launch.deepspeed).name if recipe.launch.deepspeed else "the DeepSpeed config"
    precision = recipe_precision(recipe)
    for mode in ("bf16", "fp16"):
        enabled = config.get(mode, {}).get("enabled", False)
        if enabled is True and precision != mode:
            raise RecipeError(
                recipe.path,
                KEY,
                f"{name} sets {mode}.enabled=true but the recipe trains in {precision} "
                f'(trainer.bf16/fp16); use "auto"',
            )
        if enabled not in (True, False, "auto"):
            raise RecipeError(recipe.path, KEY, f'{name}: {mode}.enabled must be true, false or "auto"')
    if plan is not None:
        wanted = {
            "train_batch_size": plan.global_batch_size,
            "train_micro_batch_size_per_gpu": plan.per_device_train_batch_size,
            "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        }
        for key, value in wanted.items():
            if _explicit(config.get(key)) and config[key] != value:
                raise RecipeError(
                    recipe.path,
                    KEY,
                    f'{name} sets {key}={config[key]} but the batch plan needs {value} ({plan.box()}); use "auto"',
                )
    clip = config.get("gradient_clipping")
    max_grad_norm = recipe.trainer.get("max_grad_norm", 1.0)
    if _explicit(clip) and float(clip) != float(max_grad_norm):
        raise RecipeError(
            recipe.path,
            KEY,
            f'{name} sets gradient_clipping={clip} but trainer.max_grad_norm is {max_grad_norm}; use "auto"',
        )
    for section in ("optimizer", "scheduler"):
        if section in config:
            raise RecipeError(
                recipe.path,
                KEY,
                f"{name} defines '{section}'; remove it so the Trainer's AdamW and the recipe's "
                "learning-rate schedule are used",
            )
    if zero_stage(config) not in (0, 1, 2, 3):
        raise RecipeError(recipe.path, KEY, f"{name}: zero_optimization.stage must be 0-3")
    return config
