"""The GPU check's driver: every section in its own process, one JSON of figures, the command line."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from astrollama.io import atomic_write_json
from astrollama.tools.gpucheck.sections import run_section
from astrollama.tools.gpucheck.sizes import (
    FLOPS_FORMULA,
    NEEDS_PREPARE,
    REPO,
    SECTIONS,
    SIZES,
    TRAIN_SECTIONS,
    peak_tflops,
)
from astrollama.tools.gpucheck.wheels import prepare_wheels

log = logging.getLogger(__name__)


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
                        "astrollama.tools.gpucheck",
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m astrollama.tools.gpucheck",
        description=sys.modules["astrollama.tools.gpucheck"].__doc__,
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
