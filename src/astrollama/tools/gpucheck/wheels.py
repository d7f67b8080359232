"""The wheels the GPU check carries to a machine without network (``--prepare-wheels``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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
