"""Recipe YAML -> a validated, fully resolved :class:`Recipe`. The one recipe loader.

Rules (documented for users in docs/train-recipes.md):

* **Strict schema.** Every section rejects unknown keys; numbers, booleans and strings are not
  converted into each other. A value YAML read as a string where a number is expected (PyYAML
  follows YAML 1.1 and reads ``2e-5`` as the string ``"2e-5"``) is an error whose message says to
  write ``2.0e-5``. Every error is one line: ``<file>: <dotted.key>: <problem>``.
* **Inheritance.** ``base: <file>`` (path relative to the recipe's own directory) names a recipe
  whose keys this one inherits. Mappings are merged key by key, recursively; anything else (lists,
  numbers, strings, ``null``) in the child replaces the base value. Bases may have bases. Files
  named ``_*.yaml`` are bases only.
* **Explicit packing.** ``data.packing`` must be written in the recipe file itself, never only in
  a base: LMFlow's default silently truncates every document to ``block_size``.
* **Overrides.** ``key=value`` on the command line sets a dotted key after inheritance. The value
  is read by the same YAML loader as the files, so ``2e-5`` is a string there too (and rejected
  where a number is expected); ``2.0e-5``, ``1.0e-4``, ``true``, ``null``, ``[a, b]`` work.
* **Paths.** Relative paths (``data.*_path``, ``launch.deepspeed``, ``launch.run_dir``) are
  resolved against the current working directory when the recipe is loaded (run commands from the
  repository root; ``slurm/cpt.sh`` does). ``~`` is expanded. ``launch.run_dir`` defaults to
  ``runs/<recipe name>``.
* **Untrusted files.** Recipes come from outside: a file that is not UTF-8, a directory, a YAML
  anchor/alias (``&a``/``*a``: refused, an alias bomb expands exponentially), an override holding
  a newline or other control character, NaN or infinite numbers, a ``name`` that is not one safe
  path component (``runs/<name>`` must stay inside ``runs/``) and a ``launch.run_dir`` that is a
  file are all one-line errors.
* **Trainer section.** ``trainer`` holds ``transformers.TrainingArguments`` (and, where LMFlow is
  importable, LMFlow ``FinetunerArguments``) names verbatim. Each key and the type of each value
  are checked against the dataclass fields, then the dataclass is built so that its own
  cross-field checks run. Keys derived from other sections (batch sizes, output_dir, deepspeed,
  ddp_timeout, ...) are refused there with a pointer to where they belong.
* **Model references.** ``model.name_or_path`` may name a model this project provisions offline
  (``smollm2-135m``, see :data:`astrollama.models.MODEL_REFERENCES`); :func:`astrollama.models.resolve_model` turns it into a local
  checkpoint directory at launch time, so validating a recipe never builds a model.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib.util
import math
import os
import tempfile
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astrollama.config import ConfigError, looks_like_number, number_hint, read_mapping, yaml_load

__all__ = [
    "RESERVED_TRAINER_KEYS",
    "Recipe",
    "RecipeError",
    "load_recipe",
    "trainer_arguments_class",
]


class RecipeError(ConfigError):
    """A recipe problem. ``str(e)`` is one line: ``<file>: <dotted.key>: <problem>``."""


def _yaml_load(text: str, where: str) -> Any:
    return yaml_load(text, where, RecipeError)


# ----------------------------------------------------------------------------------------------
# Schema (repo-owned sections)
# ----------------------------------------------------------------------------------------------
class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True, allow_inf_nan=False)


PathValue = Annotated[Path, Field(strict=False)]  # a YAML string becomes a Path


class LoraConfig(StrictModel):
    """LoRA adapter settings (LMFlow ``--use_lora``)."""

    r: int = Field(gt=0, le=65536)
    alpha: int = Field(gt=0, le=1 << 20)
    dropout: float = Field(ge=0.0, lt=1.0)
    target_modules: list[str] | None = None


class ModelConfig(StrictModel):
    name_or_path: str = Field(min_length=1)
    torch_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    trust_remote_code: bool = False
    use_flash_attention: bool = False
    lora: LoraConfig | None = None


MAX_BLOCK_SIZE = 1 << 20


class DataConfig(StrictModel):
    dataset_path: PathValue
    eval_dataset_path: PathValue | None = None
    # 2**20 tokens: above any released model's context (the planner also checks the model's own)
    block_size: int = Field(gt=0, le=MAX_BLOCK_SIZE)
    packing: bool
    preprocessing_num_workers: int = Field(default=1, gt=0, le=1024)
    # SFT: set for a directory of LMFlow `conversation` files (loss on assistant turns only); one of
    # LMFlow's template names (astrollama.train.chat.LMFLOW_TEMPLATES). None: a text_only corpus.
    conversation_template: str | None = None


# 2**20 sequences per optimizer step: far above any published recipe (LLaMA: 4M tokens = 2,048
# sequences of 2,048 tokens, arXiv:2302.13971)
MAX_GLOBAL_BATCH = 1 << 20
MAX_NODES, MAX_GPUS_PER_NODE = 4096, 64


class BatchConfig(StrictModel):
    global_batch_size: int = Field(gt=0, le=MAX_GLOBAL_BATCH)
    max_micro_batch_size: int = Field(gt=0, le=MAX_GLOBAL_BATCH)


class LaunchConfig(StrictModel):
    engine: Literal["lmflow", "local", "auto"] = "auto"
    deepspeed: PathValue | None = None
    nodes: int = Field(default=1, gt=0, le=MAX_NODES)
    gpus_per_node: int = Field(default=1, gt=0, le=MAX_GPUS_PER_NODE)
    run_dir: PathValue
    lmflow_dir: str | None = None
    ddp_timeout: int = Field(default=72000, gt=0, le=10**7)
    rdzv_port: int = Field(default=29500, gt=0, lt=65536)


class Recipe(StrictModel):
    """A validated recipe with inheritance and overrides applied and paths made absolute."""

    path: PathValue
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")  # one safe path component
    reproduces: str = Field(min_length=1)
    model: ModelConfig
    data: DataConfig
    batch: BatchConfig
    launch: LaunchConfig
    trainer: dict[str, Any] = Field(default_factory=dict)

    def resolved_dict(self) -> dict[str, Any]:
        """The fully resolved recipe as JSON-serialisable data (for provenance files)."""
        return self.model_dump(mode="json")


# ----------------------------------------------------------------------------------------------
# Trainer section
# ----------------------------------------------------------------------------------------------
RESERVED_TRAINER_KEYS: dict[str, str] = {
    "output_dir": "derived from launch.run_dir (checkpoints go to <run_dir>/checkpoints)",
    "overwrite_output_dir": "never passed: a rerun must resume from the last checkpoint",
    "per_device_train_batch_size": "derived from batch.global_batch_size and the allocation",
    "gradient_accumulation_steps": "derived from batch.global_batch_size and the allocation",
    "deepspeed": "set launch.deepspeed",
    "ddp_timeout": "set launch.ddp_timeout",
    "do_eval": "LMFlow's evaluation loads an online-only metric; evaluate with `astrollama eval`",
    "do_train": "always True, passed by astrollama.train.lmflow (LMFlow trains only with it)",
    "average_tokens_across_devices": "fixed to False by astrollama.train.lmflow (loss averaging across processes)",
    "resume_from_checkpoint": "runs resume automatically from the newest checkpoint in the output dir",
    "train_on_prompt": "SFT recipes train on assistant turns only (LMFlow's default, passed as False)",
}

_MISPLACED: dict[str, str] = {
    "block_size": "data.block_size",
    "disable_group_texts": "data.packing (packing: true = disable_group_texts False)",
    "dataset_path": "data.dataset_path",
    "eval_dataset_path": "data.eval_dataset_path",
    "preprocessing_num_workers": "data.preprocessing_num_workers",
    "model_name_or_path": "model.name_or_path",
    "torch_dtype": "model.torch_dtype",
    "use_flash_attention": "model.use_flash_attention",
    "trust_remote_code": "model.trust_remote_code",
    "use_lora": "model.lora",
    "lora_r": "model.lora.r",
    "lora_alpha": "model.lora.alpha",
    "lora_dropout": "model.lora.dropout",
    "warmup_ratio": "trainer.warmup_steps (transformers 5 removed warmup_ratio; a float < 1 is a ratio)",
    "global_batch_size": "batch.global_batch_size",
    "conversation_template": "data.conversation_template",
}


def lmflow_importable() -> bool:
    """Whether ``import lmflow`` can work in this interpreter (without importing it)."""
    return importlib.util.find_spec("lmflow") is not None


@functools.cache
def trainer_arguments_class() -> type:
    """The dataclass the trainer section is checked against: LMFlow's ``FinetunerArguments`` (a
    ``TrainingArguments`` subclass) where LMFlow is importable, else ``TrainingArguments``."""
    from transformers import TrainingArguments

    if lmflow_importable():
        try:
            from lmflow.args import FinetunerArguments

            return FinetunerArguments
        except Exception:  # a broken LMFlow install: fall back, loudly
            import logging

            logging.getLogger(__name__).warning("lmflow is installed but lmflow.args does not import")
    return TrainingArguments


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _type_ok(value: Any, tp: Any) -> bool:
    """Whether a YAML value fits a dataclass field type (bool is not an int; int is a float)."""
    if tp is Any or tp is object:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if origin is Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return value in {m.value for m in tp} or value in {m.name for m in tp}
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, list) and (not args or all(_type_ok(v, args[0]) for v in value))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return True  # an exotic annotation: leave it to the dataclass itself


# value ranges TrainingArguments does not check itself: key -> (lower bound, bound allowed)
_TRAINER_RANGES: dict[str, tuple[float, bool]] = {
    "learning_rate": (0.0, False),
    "num_train_epochs": (0.0, False),
    "weight_decay": (0.0, True),
    "warmup_steps": (0.0, True),
    "max_grad_norm": (0.0, True),
    "save_steps": (0.0, False),
    "logging_steps": (0.0, False),
    "adam_epsilon": (0.0, False),
    "save_total_limit": (1.0, True),
    "seed": (0.0, True),
}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _validate_trainer(trainer: Mapping[str, Any], file: str) -> None:
    cls = trainer_arguments_class()
    fields = _field_types(cls)
    for key, value in trainer.items():
        where = f"trainer.{key}"
        if key in RESERVED_TRAINER_KEYS:
            raise RecipeError(file, where, f"not settable in a recipe: {RESERVED_TRAINER_KEYS[key]}")
        if key in _MISPLACED:
            raise RecipeError(file, where, f"not a trainer argument here; use {_MISPLACED[key]}")
        if key not in fields:
            raise RecipeError(file, where, f"unknown key: not an argument of {cls.__name__}")
        tp = fields[key]
        if not _type_ok(value, tp):
            if looks_like_number(value):
                raise RecipeError(file, where, number_hint(value))
            raise RecipeError(file, where, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    for key, value in trainer.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise RecipeError(file, f"trainer.{key}", f"must be a finite number, got {value}")
    for key, (low, inclusive) in _TRAINER_RANGES.items():
        value = trainer.get(key)
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (value < low or (value == low and not inclusive))
        ):
            bound = f">= {low}" if inclusive else f"> {low}"
            raise RecipeError(file, f"trainer.{key}", f"must be {bound}, got {value}")
    max_steps = trainer.get("max_steps", -1)
    if isinstance(max_steps, int) and max_steps != -1 and max_steps < 1:
        raise RecipeError(
            file, "trainer.max_steps", f"must be -1 (use num_train_epochs) or >= 1, got {max_steps}"
        )
    strategy = trainer.get("save_strategy", "steps")
    if strategy != "steps":
        raise RecipeError(
            file,
            "trainer.save_strategy",
            f"must be 'steps' (got {strategy!r}): preemption-safe runs resume from step checkpoints",
        )
    # Build the real dataclass (LMFlow's FinetunerArguments where importable, else
    # TrainingArguments) so its own cross-field checks run. bf16/fp16 need a GPU to pass
    # transformers' device check, so on a machine without CUDA the check runs with use_cpu=True.
    import torch

    kwargs = dict(trainer)
    if not torch.cuda.is_available():
        kwargs.setdefault("use_cpu", True)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # e.g. gradient_checkpointing, LMFlow's name
        try:
            cls(output_dir=tmp, **kwargs)
        except Exception as e:  # any constructor complaint is a recipe error
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RecipeError(file, "trainer", f"{cls.__name__} rejects it: {first}") from None


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
def _deep_merge(base: dict[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in child.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _read_mapping(path: Path) -> dict[str, Any]:
    return read_mapping(path, RecipeError, "a recipe file (train validate accepts directories)")


def load_chain(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    given, path = path, path.resolve()
    if path in seen:
        chain = " -> ".join(p.name for p in (*seen, path))
        raise RecipeError(seen[0], "base", f"inheritance cycle: {chain}")
    data = _read_mapping(given)  # errors name the file as given (a symlink, not its target)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise RecipeError(path, "base", f"must be a file name, got {type(base).__name__} {base!r}")
    base_path = (path.parent / base).resolve()
    if not base_path.is_file():
        raise RecipeError(path, "base", f"no such file: {base_path}")
    return _deep_merge(load_chain(base_path, (*seen, path)), data)


def apply_override(data: dict[str, Any], override: str, file: str) -> None:
    key, sep, text = override.partition("=")
    key = key.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in override):
        raise RecipeError(
            file,
            key.split("\n")[0] or "(override)",
            "an override must not contain a newline or other control character",
        )
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(file, override, "an override must look like section.key=value")
    if key.split(".")[0] in {"base", "path"}:
        raise RecipeError(file, key, "cannot be overridden")
    value = _yaml_load(text, f"{file} (override {override!r})") if text.strip() else None
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(
                file, ".".join(parts[: i + 1]), f"is {child!r}, not a section; cannot set {key}"
            )
        node = child
    node[parts[-1]] = value


def pydantic_error(e: ValidationError, file: str, root: type[BaseModel] | None = None) -> RecipeError:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "lax-", "json-")))
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        model_cls = _section_model(err["loc"][:-1], root or Recipe)
        allowed = ", ".join(model_cls.model_fields) if model_cls else ""
        return RecipeError(file, loc, f"unknown key (allowed here: {allowed})")
    if err["type"] == "missing":
        return RecipeError(file, loc, "required key is missing")
    if loc == "name" and err["type"] == "string_pattern_mismatch":
        return RecipeError(
            file,
            loc,
            f"must be one safe path component (letters, digits, . _ + -; not "
            f"starting with . or -), since runs go to runs/<name>; got {value!r}",
        )
    if looks_like_number(value) and err["type"] in {"float_type", "int_type", "float_parsing", "int_parsing"}:
        return RecipeError(file, loc, number_hint(value))
    return RecipeError(file, loc, f"{err['msg']} (got {value!r})")


def _section_model(loc: Sequence[Any], root: type[BaseModel]) -> type[BaseModel] | None:
    model: type[BaseModel] = root
    item = False
    for part in loc:
        if item:  # the index (key) into a list (mapping) section: its items share one model
            item = False
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [a for a in typing.get_args(ann) if isinstance(a, type)] or [ann]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            return None
        model, item = nxt, typing.get_origin(ann) in (list, dict)
    return model


def absolute_path(p: Path | None) -> Path | None:
    return None if p is None else Path(os.path.abspath(p.expanduser()))


def check_template(recipe: Recipe, engine: str) -> None:
    """``data.conversation_template`` must be an LMFlow template name, and one the local engine
    implements when ``engine`` is ``local``."""
    from astrollama.train.chat import LMFLOW_TEMPLATES, LOCAL_TEMPLATES

    name = recipe.data.conversation_template
    if name is None:
        return
    if name not in LMFLOW_TEMPLATES:
        raise RecipeError(
            recipe.path,
            "data.conversation_template",
            f"{name!r} is not an LMFlow template; one of {', '.join(sorted(LMFLOW_TEMPLATES))}",
        )
    if engine == "local" and name not in LOCAL_TEMPLATES:
        raise RecipeError(
            recipe.path,
            "data.conversation_template",
            f"{name!r}: the local engine implements {', '.join(sorted(LOCAL_TEMPLATES))}; "
            "train with launch.engine=lmflow for the others",
        )


def load_recipe(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Recipe:
    """Load, merge, override and validate a recipe. Raises :class:`RecipeError` (one line)."""
    path = Path(path)
    file = str(path)
    leaf = _read_mapping(path)
    if not isinstance(leaf.get("data"), dict) or "packing" not in leaf["data"]:
        raise RecipeError(
            file,
            "data.packing",
            "must be set in the recipe file itself (true: concatenate documents into block_size "
            "chunks; false: LMFlow cuts every document at block_size)",
        )
    data = load_chain(path)
    for ov in overrides:
        apply_override(data, ov, file)
    data.setdefault("name", path.stem)
    if isinstance(data.get("launch"), dict):
        data["launch"].setdefault("run_dir", f"runs/{data['name']}")
    data["path"] = str(path.resolve())
    trainer = data.get("trainer") or {}
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        raise pydantic_error(e, file) from None
    _validate_trainer(trainer, file)
    check_template(recipe, recipe.launch.engine)
    for section, attr in (
        ("data", "dataset_path"),
        ("data", "eval_dataset_path"),
        ("launch", "deepspeed"),
        ("launch", "run_dir"),
    ):
        obj = getattr(recipe, section)
        setattr(obj, attr, absolute_path(getattr(obj, attr)))
    run_dir = recipe.launch.run_dir
    for p in (run_dir, *run_dir.parents):
        if p.exists() and not p.is_dir():
            raise RecipeError(file, "launch.run_dir", f"{p} exists and is not a directory")
    return recipe
