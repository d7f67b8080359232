"""``astrollama merge RECIPE [key=value ...] [--dry-run]``: merge checkpoints with mergekit.

A merge recipe (``recipes/*-merge.yaml``, docs/train-merge.md) names two or more checkpoints of one
architecture and vocabulary, a method (``linear`` or ``dare_ties``), a weight per checkpoint and,
for DARE-TIES, a density per checkpoint and the common ``base_model`` the task vectors are taken
against. It is validated as strictly as a training recipe (the loader helpers of
:mod:`astrollama.train.recipe`: unknown keys, types, ranges, YAML aliases and duplicate keys
refused; one line ``<file>: <key>: <problem>``, exit 2), translated by :func:`mergekit_config`
(the one translation) and run through mergekit's Python API (``mergekit.merge.run_merge``).

Before anything is written the checkpoints are checked: each is a local directory with a
``config.json``, and all share the architecture and vocabulary (:data:`SHARED_CONFIG_KEYS`). The
merged model is written into a temporary directory beside ``output_dir`` together with its
provenance (``provenance/``: inputs with the SHA-256 of every file, the mergekit config, mergekit
version, seed, timestamps, git commit, ``pip freeze``) and renamed onto ``output_dir`` when
complete, so a killed merge never leaves a half-written model there. If ``output_dir`` already
holds a finished merge of the same recipe and input files, there is nothing to do (a requeued job or
a resubmission ends at once, exit 0); any other content there is refused. A requeued Slurm job
removes the temporary directory its earlier attempt left.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError

from astrollama.models import resolve_model
from astrollama.paths import REPO_ROOT
from astrollama.provenance import PipFreeze, environment, git_info
from astrollama.train.recipe import (
    PathValue,
    RecipeError,
    StrictModel,
    absolute_path,
    apply_override,
    load_chain,
    pydantic_error,
)
from astrollama.untrusted import read_json, read_text

log = logging.getLogger("astrollama.merge")

# config.json keys every checkpoint of a merge must share (a tensor-by-tensor merge needs equal
# shapes, and the same token ids must mean the same tokens)
SHARED_CONFIG_KEYS = (
    "model_type",
    "architectures",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "tie_word_embeddings",
)
WEIGHT_SUM_TOLERANCE = 1e-6
MERGE_RECIPE_SUFFIX = "-merge.yaml"  # how `astrollama train validate DIR` tells merge recipes apart
OWNER_FILE = ".astrollama-merge-owner.json"  # inside a merge's temporary directory while it runs


def is_merge_recipe(path: str | os.PathLike[str]) -> bool:
    return Path(path).name.endswith(MERGE_RECIPE_SUFFIX)


class MergeModel(StrictModel):
    """One input checkpoint: a local directory (or a model reference such as ``smollm2-135m``)."""

    path: str = Field(min_length=1)
    weight: float = Field(gt=0.0, le=1.0)
    density: float | None = Field(default=None, gt=0.0, le=1.0)


class MergeRecipe(StrictModel):
    path: PathValue
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
    reproduces: str = Field(min_length=1)
    method: Literal["linear", "dare_ties"]
    base_model: str | None = Field(default=None, min_length=1)
    models: dict[str, MergeModel] = Field(min_length=2)
    tokenizer_from: str | None = None  # a key of `models`; default: the first one
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    output_dir: PathValue
    _file: str = PrivateAttr(default="")  # the recipe path as given: error messages name it

    def resolved_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_merge_recipe(
    path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()
) -> MergeRecipe:
    """Load, override and validate a merge recipe. Raises :class:`RecipeError` (one line)."""
    path = Path(path)
    file = str(path)
    data = load_chain(path)
    for ov in overrides:
        apply_override(data, ov, file)
    data.setdefault("name", path.stem)
    data.setdefault("output_dir", f"runs/{data['name']}")
    data["path"] = str(path.resolve())
    try:
        recipe = MergeRecipe.model_validate(data)
    except ValidationError as e:
        raise pydantic_error(e, file, MergeRecipe) from None
    for key in recipe.models:
        if not key.isidentifier():
            raise RecipeError(file, f"models.{key}", "a model's key must be a name (letters, digits, _)")
    if recipe.method == "dare_ties":
        if recipe.base_model is None:
            raise RecipeError(
                file,
                "base_model",
                "required for dare_ties: the checkpoint the task vectors "
                "are taken against (the models' common ancestor)",
            )
        for key, m in recipe.models.items():
            if m.density is None:
                raise RecipeError(
                    file,
                    f"models.{key}.density",
                    "required for dare_ties: the fraction of each task vector kept, in (0, 1]",
                )
    else:
        if recipe.base_model is not None:
            raise RecipeError(
                file,
                "base_model",
                "only dare_ties takes a base model; a linear merge averages the listed models",
            )
        for key, m in recipe.models.items():
            if m.density is not None:
                raise RecipeError(file, f"models.{key}.density", "only dare_ties takes a density")
    total = math.fsum(m.weight for m in recipe.models.values())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        weights = " + ".join(f"{m.weight:g}" for m in recipe.models.values())
        raise RecipeError(file, "models", f"weights must sum to 1, got {weights} = {total:g}")
    if recipe.tokenizer_from is not None and recipe.tokenizer_from not in recipe.models:
        raise RecipeError(
            file,
            "tokenizer_from",
            f"must be one of the models' keys ({', '.join(recipe.models)}), got {recipe.tokenizer_from!r}",
        )
    recipe.output_dir = absolute_path(recipe.output_dir)
    recipe._file = file
    return recipe


# ----------------------------------------------------------------------------------------------
# Inputs: resolve, check, hash
# ----------------------------------------------------------------------------------------------
def _local_path(name: str) -> str:
    """A model reference (``smollm2-135m``) becomes its checkpoint; a path becomes absolute."""
    resolved = resolve_model(name)
    return resolved if resolved != name else os.path.abspath(os.path.expanduser(name))


def input_paths(recipe: MergeRecipe) -> dict[str, str]:
    """``{recipe key: local directory}`` for every input, the base model (key ``base_model``) last."""
    paths = {f"models.{k}.path": _local_path(m.path) for k, m in recipe.models.items()}
    if recipe.base_model is not None:
        paths["base_model"] = _local_path(recipe.base_model)
    return paths


def _read_config(file: str, key: str, directory: str) -> dict[str, Any]:
    from astrollama.errors import InputError
    from astrollama.untrusted import check_model_dir, read_json

    d = Path(directory)
    if not d.is_dir():
        raise RecipeError(file, key, f"no such checkpoint directory: {d}")
    cfg = d / "config.json"
    if not os.path.lexists(cfg):
        raise RecipeError(file, key, f"{d} is not a Hugging Face checkpoint (no config.json)")
    try:  # every file checked before mergekit opens it (astrollama.untrusted): bounded JSON,
        # safetensors headers consistent with their files, no pickle weights
        data = read_json(cfg, "config", expect=None)
        if not isinstance(data, dict):
            raise RecipeError(file, key, f"{cfg}: must hold a JSON object")
        if not any(d.glob("*.safetensors")) and not any(d.glob("*.bin")):
            raise RecipeError(file, key, f"{d} holds no weights (*.safetensors or *.bin)")
        check_model_dir(d)
    except RecipeError:
        raise
    except InputError as e:
        raise RecipeError(file, key, str(e)) from None
    return data


def _tensor_shapes(directory: str) -> dict[str, tuple[str, list[int]]]:
    """``tensor name -> (dtype, shape)`` from the safetensors headers of a checkpoint."""
    from astrollama.untrusted import safetensors_header

    out: dict[str, tuple[str, list[int]]] = {}
    for f in sorted(Path(directory).glob("*.safetensors")):
        for name, t in safetensors_header(f).items():
            if name != "__metadata__":
                out[name] = (str(t.get("dtype")), list(t.get("shape") or []))
    return out


def check_inputs(recipe: MergeRecipe, paths: dict[str, str]) -> None:
    """Every input exists and shares architecture and vocabulary with the first one (one-line error)."""
    file = recipe._file or str(recipe.path)
    configs = {key: _read_config(file, key, p) for key, p in paths.items()}
    seen: dict[str, str] = {}
    for key, p in paths.items():
        real = os.path.realpath(p)
        if real in seen:
            raise RecipeError(file, key, f"{p} is also {seen[real]}: a merge needs distinct checkpoints")
        seen[real] = key
    (ref_key, ref), *rest = configs.items()
    for key, cfg in rest:
        for k in SHARED_CONFIG_KEYS:
            if cfg.get(k) != ref.get(k):
                raise RecipeError(
                    file,
                    key,
                    f"{k} {cfg.get(k)!r} differs from {ref_key}'s {ref.get(k)!r}: "
                    f"merged checkpoints must share architecture and vocabulary",
                )
    # the tensors themselves, from the headers: a config that agrees over weights that do not is
    # refused here, not deep inside mergekit
    shapes = {key: _tensor_shapes(p) for key, p in paths.items()}
    ref_shapes = shapes[ref_key]
    for key, sh in shapes.items():
        if key == ref_key or not sh or not ref_shapes:
            continue
        for name in sorted(set(sh) | set(ref_shapes)):
            if name not in sh or name not in ref_shapes:
                where, other = (key, ref_key) if name not in sh else (ref_key, key)
                raise RecipeError(file, where, f"tensor {name!r} is missing (present in {other})")
            if sh[name][1] != ref_shapes[name][1]:
                raise RecipeError(
                    file,
                    key,
                    f"tensor {name!r} has shape {sh[name][1]}, {ref_key}'s has {ref_shapes[name][1]}: "
                    "merged checkpoints must have the same tensor shapes",
                )


def _sha256_files(directory: str) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every file directly in ``directory`` (a checkpoint), with a progress bar."""
    from tqdm import tqdm

    files = sorted(p for p in Path(directory).iterdir() if p.is_file())  # regular files only
    out: dict[str, dict[str, Any]] = {}
    with tqdm(
        total=sum(p.stat().st_size for p in files),
        unit="B",
        unit_scale=True,
        desc=f"hashing {Path(directory).name}",
        disable=None,
    ) as bar:
        for p in files:
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
                    bar.update(len(chunk))
            out[p.name] = {"sha256": h.hexdigest(), "bytes": p.stat().st_size}
    return out


# ----------------------------------------------------------------------------------------------
# The one translation: recipe -> mergekit configuration
# ----------------------------------------------------------------------------------------------
def mergekit_config(recipe: MergeRecipe, paths: dict[str, str] | None = None) -> dict[str, Any]:
    """The mergekit ``MergeConfiguration`` (as a dict, mergekit's YAML schema) of a merge recipe."""
    paths = paths or input_paths(recipe)
    models = []
    for key, m in recipe.models.items():
        params: dict[str, Any] = {"weight": m.weight}
        if recipe.method == "dare_ties":
            params["density"] = m.density
        models.append({"model": paths[f"models.{key}.path"], "parameters": params})
    tok_key = recipe.tokenizer_from or next(iter(recipe.models))
    config: dict[str, Any] = {"merge_method": recipe.method, "models": models}
    if recipe.method == "dare_ties":
        config["base_model"] = paths["base_model"]
    # mergekit 0.1.5's defaults, written out for the provenance record. linear: the weights sum to 1
    # (checked), so normalising changes nothing. dare_ties: no normalisation, so 0.75 / 0.25 scale
    # the task vectors as written (base + 0.75 tau_sft + 0.25 tau_instruct where the signs agree),
    # and each sparsified task vector is rescaled to its former L1 norm.
    config["parameters"] = (
        {"normalize": True} if recipe.method == "linear" else {"normalize": False, "rescale": True}
    )
    config["dtype"] = recipe.dtype
    config["tokenizer_source"] = paths[f"models.{tok_key}.path"]
    return config


def render_config(config: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------
def merge(recipe: MergeRecipe, argv: list[str] | None = None, *, progress: bool = True) -> Path:
    """Check the inputs, run mergekit into a temporary directory, add provenance, rename; return the path."""
    import mergekit
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from astrollama.io import atomic_dir, atomic_write_text, claim_dir

    file = recipe._file or str(recipe.path)
    final = Path(recipe.output_dir)
    # someone else's directory, or an unwritable place: refused before any input is read
    claim_dir(final, "merge", legacy=(_finished_merge,), what=f"{file}: output_dir")
    _clear_stale_temporaries(final)
    paths = input_paths(recipe)
    check_inputs(recipe, paths)
    config = mergekit_config(recipe, paths)
    mk_yaml = render_config(config)
    try:
        mk_config = MergeConfiguration.model_validate(config)
    except ValidationError as e:
        raise RecipeError(
            file, "(mergekit)", f"mergekit rejects the translated config: {e.errors()[0]['msg']}"
        ) from None
    inputs = {key: {"path": p, "files": _sha256_files(p)} for key, p in paths.items()}
    if _finished_merge(final):
        why = _differs_from_finished(final, recipe, mk_yaml, inputs)
        if why:
            raise RecipeError(
                file,
                "output_dir",
                f"{final} holds another merge ({why}): remove it or set output_dir=... to another directory",
            )
        log.info("already merged: %s holds this merge of the same inputs; nothing to do", final)
        return final
    freeze = PipFreeze()  # runs in the background during the merge
    started = time.time()
    options = MergeOptions(
        random_seed=recipe.seed, device="cpu", copy_tokenizer=True, quiet=not progress, write_model_card=True
    )
    log.info("merging %d models (%s) into %s", len(recipe.models), recipe.method, final)
    with atomic_dir(final) as tmp:
        owner = tmp / OWNER_FILE  # names the Slurm job, so that its requeued attempt can clear it
        atomic_write_text(owner, json.dumps({"slurm_job_id": os.environ.get("SLURM_JOB_ID")}) + "\n")
        run_merge(mk_config, str(tmp), options, config_source=mk_yaml)
        tok_dir = Path(config["tokenizer_source"])
        if not (tmp / "generation_config.json").exists() and (tok_dir / "generation_config.json").is_file():
            shutil.copyfile(tok_dir / "generation_config.json", tmp / "generation_config.json")
        prov = tmp / "provenance"
        prov.mkdir()
        resolved = recipe.resolved_dict()
        atomic_write_text(prov / "recipe.json", json.dumps(resolved, indent=2) + "\n")
        atomic_write_text(prov / "mergekit.yaml", mk_yaml)
        atomic_write_text(prov / "git.json", json.dumps(git_info(REPO_ROOT), indent=2) + "\n")
        atomic_write_text(prov / "environment.json", json.dumps(environment(), indent=2) + "\n")
        atomic_write_text(prov / "pip-freeze.txt", freeze.text())
        atomic_write_text(
            prov / "merge.json",
            json.dumps(
                {
                    "recipe": str(recipe.path),
                    "overrides": argv or [],
                    "method": recipe.method,
                    "seed": recipe.seed,
                    "mergekit_version": getattr(mergekit, "__version__", None) or _dist_version("mergekit"),
                    "inputs": inputs,
                    "output_dir": str(final),
                    "host": socket.gethostname(),
                    "python": sys.executable,
                    "started": _iso(started),
                    "finished": _iso(time.time()),
                },
                indent=2,
            )
            + "\n",
        )
        owner.unlink()
    log.info("merged model: %s (%.1f s)", final, time.time() - started)
    return final


def _finished_merge(directory: Path) -> bool:
    """A merge's own output (astrollama.io ownership): renamed into place with its provenance."""
    return (directory / "provenance" / "merge.json").is_file()


def _clear_stale_temporaries(final: Path) -> None:
    """Remove the temporary directories an earlier attempt of this Slurm job left beside ``final``
    (a requeued or preempted merge: Slurm ended that attempt before starting this one); warn about
    any other (another job's or a local run's: it may still be running)."""
    job = os.environ.get("SLURM_JOB_ID")
    for stale in sorted(final.parent.glob(f".{final.name}.*.tmp")):
        try:
            owner = read_json(stale / OWNER_FILE, "config").get("slurm_job_id")
        except (OSError, ValueError, AttributeError):
            owner = None
        if job and owner == job:
            shutil.rmtree(stale)
            log.info("removed %s, left by an earlier attempt of job %s", stale, job)
        else:
            log.warning(
                "%s: left by an interrupted merge (or one still running); remove it to free the space", stale
            )


def _differs_from_finished(
    final: Path, recipe: MergeRecipe, mk_yaml: str, inputs: dict[str, dict[str, Any]]
) -> str | None:
    """Why the finished merge in ``final`` is not this one (None: same recipe, config and input files)."""
    prov = final / "provenance"
    try:
        done = read_json(prov / "merge.json", "results")  # regular, bounded (astrollama.untrusted)
        done_recipe = read_json(prov / "recipe.json", "config")
        done_yaml = read_text(prov / "mergekit.yaml", "config")
    except (OSError, ValueError) as e:
        return f"its provenance cannot be read: {e}"
    if done_recipe != recipe.resolved_dict() or done_yaml != mk_yaml:
        return "made from a different recipe"
    for key, now in inputs.items():
        then = (done.get("inputs") or {}).get(key) if isinstance(done, dict) else None
        if not isinstance(then, dict) or then.get("files") != now["files"]:
            return f"{key}: the checkpoint's files changed since"
    return None


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def build_parser():
    """The parser of ``astrollama merge``."""
    from astrollama.cli_args import CommandParser

    p = CommandParser(prog="astrollama merge", description=__doc__.splitlines()[0])
    p.add_argument("recipe", help="a merge recipe (recipes/*-merge.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. models.sft.path=runs/x seed=1")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the recipe and print the mergekit config; read and write no model",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """``astrollama merge``; InputError propagates to ``astrollama.cli.main`` (one line, exit 2)."""
    a = build_parser().parse_args(argv)
    recipe = load_merge_recipe(a.recipe, a.overrides)
    if a.dry_run:
        print(f"# mergekit config of {a.recipe} (seed {recipe.seed}; output {recipe.output_dir})")
        print(render_config(mergekit_config(recipe)), end="")
        return 0
    print(merge(recipe, list(a.overrides)))
    return 0
