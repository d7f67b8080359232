"""The AIC manifest stage and its CLI (``astrollama data aic``): ``.mmd`` when OCR finished, else the
LaTeX source.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astrollama.data.aic.markdown import extract_aic_markdown
from astrollama.data.aic.rules import AIC

log = logging.getLogger(__name__)


def extract_aic(
    *,
    mmd_path: str | Path | None = None,
    tex_path: str | Path | None = None,
    metadata_abstract: str | None = None,
    where: str | None = None,
) -> AIC:
    """AIC from a ``.mmd`` file or a LaTeX main file / source directory (exactly one).

    ``where`` names the input in error messages (default: the path).
    """
    if (mmd_path is None) == (tex_path is None):
        raise ValueError("give exactly one of mmd_path or tex_path")
    if mmd_path is not None:
        from astrollama.data.aic.rules import AICError
        from astrollama.untrusted import read_text

        p = Path(mmd_path)
        return extract_aic_markdown(
            read_text(p, "text", error=AICError), metadata_abstract=metadata_abstract, where=where or str(p)
        )
    from astrollama.data.aic.latex import extract_aic_latex
    from astrollama.data.aic.latex_inputs import find_main_tex

    p = Path(tex_path)  # type: ignore[arg-type]
    root = p if p.is_dir() else p.parent
    if p.is_dir():
        main = find_main_tex(p)
        where = f"{where}/{main.relative_to(p).as_posix()}" if where else str(main)
        p = main
    return extract_aic_latex(p, metadata_abstract=metadata_abstract, root=root, where=where or str(p))


STAGE = "aic"


SOURCES = ("auto", "mmd", "latex")


def aic_record(paper_id: str, title: str, aic: AIC) -> dict[str, Any]:
    """The stage's per-paper JSON: the sections, what is missing, and the training ``text``."""
    return {"id": paper_id, "title": title, **aic.to_dict(), "text": aic.text(title)}


def run_aic(
    root: str | Path,
    *,
    source: str = "auto",
    shard_index: int | None = None,
    num_shards: int | None = None,
    retry_failed: bool = False,
    force: bool = False,
    ids: Sequence[str] | None = None,
    progress: bool = True,
) -> Any:
    """Extract AIC for this shard's pending papers of the manifest at ``root``.

    Input per paper: the OCR ``.mmd`` (stage ``ocr``) or the LaTeX source directory (stage
    ``download_src``); ``source="auto"`` prefers the ``.mmd``. Output ``<root>/aic/<yymm>/<ns>.json``;
    the manifest gets ``ok`` with ``missing``/``abstract_source``/``source`` attrs, or ``failed``
    with the reason (no introduction nor conclusion, upstream failure, unreadable file), or
    ``skipped`` while no input exists yet.
    """
    from astrollama import killpoint
    from astrollama.data.manifest import Manifest, paper_path
    from astrollama.data.runner import StageRunner, write_outputs

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    m = Manifest(root)
    from tqdm import tqdm

    runner = StageRunner(
        m,
        STAGE,
        shard_index=shard_index,
        num_shards=num_shards,
        retry_failed=retry_failed,
        force=force,
        progress=False,
        outputs=[m.root / "aic"],
    )
    todo = runner.select(ids)
    ocr, src = m.status("ocr"), m.status("download_src")
    out_dir = m.root / "aic"
    missing_counts: dict[str, int] = {}
    for pid in tqdm(todo, desc="aic", unit="paper", disable=not progress, mininterval=2.0):
        with runner.isolate(pid):
            row = m.get(pid) or {}
            aic = _paper_aic(m, runner, pid, row.get("abstract"), ocr.get(pid), src.get(pid), source)
            if aic is None:
                continue
            rec = aic_record(pid, str(row.get("title") or ""), aic)
            path = paper_path(out_dir, pid, ".json")
            for sec in aic.missing:
                missing_counts[sec] = missing_counts.get(sec, 0) + 1
            write_outputs({"aic": (path, json.dumps(rec, ensure_ascii=False, indent=1) + "\n")})
            killpoint.hit("aic.between")
            _record_ok(runner, pid, path, aic)
    if missing_counts:
        log.info("aic: papers with a missing section (recorded as attr 'missing'): %s", missing_counts)
    return runner.finish()


def _paper_aic(m: Any, runner: Any, pid: str, meta_abs: Any, o: Any, s: Any, source: str) -> AIC | None:
    """The paper's AIC from its OCR ``.mmd`` or LaTeX source (``source`` says which may be used);
    without an input, None with the paper recorded as failed (upstream failure) or skipped."""
    have_mmd = o is not None and o.status == "ok" and "mmd" in o.outputs and source != "latex"
    have_tex = s is not None and s.status == "ok" and "src" in s.outputs and source != "mmd"
    if have_mmd:
        return extract_aic(
            mmd_path=m.resolve(o.outputs["mmd"]), metadata_abstract=meta_abs, where=o.outputs["mmd"]
        )  # root-relative: records do not depend on root
    if have_tex:
        return extract_aic(
            tex_path=m.resolve(s.outputs["src"]), metadata_abstract=meta_abs, where=s.outputs["src"]
        )
    allowed = {"auto": ("ocr", "download_src"), "mmd": ("ocr",), "latex": ("download_src",)}[source]
    ups = [
        f"{n} failed: {r.error}"
        for n, r in (("ocr", o), ("download_src", s))
        if n in allowed and r is not None and r.status == "failed"
    ]
    if ups:  # terminal upstream failure (rerun with --retry-failed once an input exists)
        runner.fail(pid, "upstream: " + "; ".join(ups))
    else:
        runner.skip(pid, f"no input yet (source={source}: needs ocr .mmd or download_src)")
    return None


def _record_ok(runner: Any, pid: str, path: Path, aic: AIC) -> None:
    runner.ok(
        pid,
        outputs={"aic": path},
        source=aic.source,
        missing=aic.missing,
        abstract_source=aic.abstract_source,
        conclusion_heading=aic.conclusion_heading,
        **(
            {
                "conclusion_rule": aic.conclusion_rule,
                "unresolved_citations": aic.unresolved_citations,
                "bare_references": aic.bare_references,
            }
            if aic.source == "latex"
            else {}
        ),
    )


def register(sub: Any) -> None:
    """``astrollama data aic``."""
    import argparse

    from astrollama.data.runner import add_shard_args

    p = sub.add_parser(
        "aic",
        help="Abstract + Introduction + Conclusion from .mmd or LaTeX source",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", help="data root (manifest/; outputs go to ROOT/aic/)")
    p.add_argument(
        "--source", choices=SOURCES, default="auto", help="auto: .mmd when OCR finished, else LaTeX"
    )
    p.add_argument(
        "--file", help="extract from one .mmd / .tex file or source dir and print it (no manifest)"
    )
    add_shard_args(p)
    p.set_defaults(func=_cli)


def _cli(a: Any) -> int:
    if a.file:
        f = Path(a.file)
        aic = extract_aic(mmd_path=f) if f.suffix == ".mmd" else extract_aic(tex_path=f)
        print(aic.text())
        if aic.missing:
            print(f"[missing: {', '.join(aic.missing)}]")
        return 0
    if not a.root:
        raise ValueError("give --root (manifest stage) or --file (one paper)")
    run_aic(
        a.root,
        source=a.source,
        shard_index=a.shard_index,
        num_shards=a.num_shards,
        retry_failed=a.retry_failed,
        force=a.force,
    )
    return 0
