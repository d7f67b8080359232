"""Quality of the AIC training text, per paper and in total (``astrollama data quality``).

Measured on a paper's AIC text (title, Abstract, Introduction, conclusion), per route (``latex``:
the e-print's LaTeX source; ``mmd``: the OCR ``.mmd``):

* ``macros_per_100k``: raw LaTeX control words (``\\foo``) OUTSIDE math, per 100,000 characters
  (math - ``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``, equation-like environments - is kept as
  LaTeX on purpose and not counted);
* ``dangling``: leftovers of removed citations/references: a preposition before punctuation
  ("by ,", "in ."), an empty or note-only parenthesis ("()", "(e.g.,)"), a lone ``\\S`` or "§";
* ``control``: control characters (Unicode Cc except newline and tab) and soft hyphens;
* ``missing``: the sections not found; ``intro_vs_latex``: the OCR introduction's length over the
  LaTeX one when both routes exist for the paper.

``data build`` puts the same totals (:func:`corpus_quality`) in each variant's ``stats.json``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MATH_OPEN = re.compile(
    r"\$\$|\$|\\\[|\\\(|\\begin\{(equation|align|eqnarray|gather|multline|displaymath|"
    r"flalign|alignat|math)(\*?)\}"
)
_MACRO = re.compile(r"\\[A-Za-z]+")
# dangling leftovers (see module doc): punctuation after a bare preposition (" by ,", " in.", but not
# "by, e.g.,"), empty or note-only parentheses, a lone \S or §
_DANGLING = re.compile(r" (?:by|in|from|of) ?[,.;:]| (?:with|cf\.) ?[.;:]")
_NOT_DANGLING = re.compile(r" ?, ?(?:e\.g\.|i\.e\.|for\b|cf\.)")
_EMPTY_PAREN = re.compile(r"\((?:\s*(?:e\.g\.|i\.e\.|see|cf\.)[,;]?)?\s*\)")
_SECTION_SIGN = re.compile(r"\\S(?![A-Za-z])|§(?!\s*\d)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad]")


def prose(text: str) -> str:
    """``text`` with each math span replaced by "x" (linear time; an unclosed span runs to the end)."""
    out, pos = [], 0
    while True:
        m = _MATH_OPEN.search(text, pos)
        if not m:
            out.append(text[pos:])
            return "".join(out)
        if m.start() > 0 and text[m.start() - 1] == "\\":  # \$ is a dollar sign
            out.append(text[pos : m.end()])
            pos = m.end()
            continue
        out.append(text[pos : m.start()] + "x")
        tok = m.group(0)
        close = {"$$": "$$", "$": "$", "\\[": "\\]", "\\(": "\\)"}.get(
            tok
        ) or f"\\end{{{m.group(1)}{m.group(2)}}}"
        e = text.find(close, m.end())
        pos = len(text) if e < 0 else e + len(close)


def text_quality(text: str) -> dict[str, Any]:
    """The counts of one text (see module doc)."""
    p = prose(text) if "$" in text or "\\" in text else text
    macros = len(_MACRO.findall(p)) if "\\" in p else 0
    return {
        "chars": len(text),
        "macros": macros,
        "macros_per_100k": round(macros * 1e5 / max(len(text), 1), 1),
        "dangling": _dangling(" " + p),
        "control": len(_CONTROL.findall(text)),
    }


def _dangling(p: str) -> int:
    n = sum(1 for m in _DANGLING.finditer(p) if not _NOT_DANGLING.match(p, m.end() - 1))
    n += len(_EMPTY_PAREN.findall(p)) if "(" in p else 0
    return n + (len(_SECTION_SIGN.findall(p)) if "\\S" in p or "§" in p else 0)


def quality_step(documents: int, max_docs: int = 1000) -> int:
    """Every how many documents :func:`corpus_quality` measures one (an even sample of ``max_docs``)."""
    return max(1, -(-documents // max_docs)) if max_docs else 1


def corpus_quality(texts: Sequence[str], *, max_docs: int = 1000) -> dict[str, Any]:
    """Totals over ``texts`` (macros per 100k characters of all text). More than ``max_docs``
    texts: an evenly spaced sample of ``max_docs`` (``sampled`` says how many were measured), so
    the build pays at most ~0.3 s for it."""
    return sampled_quality(texts[:: quality_step(len(texts), max_docs)], len(texts))


def sampled_quality(sample: Iterable[str], documents: int) -> dict[str, Any]:
    """:func:`corpus_quality` of a corpus of ``documents`` texts from its sample (texts
    ``0, step, 2 step, ...`` with ``step = quality_step(documents)``), which may be streamed."""
    tot = {"documents": documents, "sampled": 0, "chars": 0, "macros": 0, "dangling": 0, "control": 0}
    for t in sample:
        q = text_quality(t)
        tot["sampled"] += 1
        for k in ("chars", "macros", "dangling", "control"):
            tot[k] += q[k]
    tot["macros_per_100k"] = round(tot["macros"] * 1e5 / max(tot["chars"], 1), 1)
    return tot


def paper_quality(
    paper_id: str, title: str, *, tex: Path | None, mmd: Path | None, metadata_abstract: str | None = None
) -> list[dict[str, Any]]:
    """One row per route that exists for the paper (a failed extraction is a row with ``error``)."""
    from astrollama.data.aic import extract_aic

    rows, intros = [], {}
    for route, path in (("latex", tex), ("mmd", mmd)):
        if path is None:
            continue
        try:
            aic = (
                extract_aic(tex_path=path, metadata_abstract=metadata_abstract, where=str(path))
                if route == "latex"
                else extract_aic(mmd_path=path, metadata_abstract=metadata_abstract, where=str(path))
            )
        except ValueError as exc:  # AICError / EprintError (InputError): the paper fails this route
            rows.append({"id": paper_id, "route": route, "error": str(exc)})
            continue
        intros[route] = len(aic.introduction)
        rows.append(
            {
                "id": paper_id,
                "route": route,
                "missing": aic.missing,
                **text_quality(aic.text(title)),
                "intro_chars": len(aic.introduction),
            }
        )
    if intros.get("latex") and "mmd" in intros:
        for r in rows:
            if r["route"] == "mmd" and "error" not in r:
                r["intro_vs_latex"] = round(intros["mmd"] / intros["latex"], 3)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals per route over the rows of :func:`paper_quality`."""
    out: dict[str, Any] = {}
    for route in sorted({r["route"] for r in rows}):
        rs = [r for r in rows if r["route"] == route]
        ok = [r for r in rs if "error" not in r]
        chars = sum(r["chars"] for r in ok)
        macros = sum(r["macros"] for r in ok)
        ratios = [r["intro_vs_latex"] for r in ok if "intro_vs_latex" in r]
        out[route] = {
            "papers": len(rs),
            "failed": len(rs) - len(ok),
            "chars": chars,
            "macros": macros,
            "macros_per_100k": round(macros * 1e5 / max(chars, 1), 1),
            "dangling": sum(r["dangling"] for r in ok),
            "control": sum(r["control"] for r in ok),
            "missing_abstract": sum("abstract" in r["missing"] for r in ok),
            "missing_introduction": sum("introduction" in r["missing"] for r in ok),
            "missing_conclusion": sum("conclusion" in r["missing"] for r in ok),
            **(
                {
                    "intro_vs_latex_median": sorted(ratios)[len(ratios) // 2],
                    "intro_vs_latex_ge_0.5": sum(x >= 0.5 for x in ratios),
                    "with_both_routes": len(ratios),
                }
                if ratios
                else {}
            ),
        }
    return out


def _is_quality_report(path: Path) -> bool:
    try:
        obj = json.loads(path.read_bytes()) if path.stat().st_size < 2**28 else None
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and set(obj) == {"papers", "total"}


def run_quality(root: str | Path, *, out: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Measure every paper of the manifest at ``root`` that has a LaTeX source (stage
    ``download_src``) or an OCR ``.mmd`` (stage ``ocr``); write ``out`` (default
    ``ROOT/quality/quality.json``) atomically and return it."""
    from tqdm import tqdm

    from astrollama.data.manifest import Manifest, ManifestError
    from astrollama.io import atomic_write_json, claim_file

    m = Manifest(root)
    dest = Path(out) if out else m.root / "quality" / "quality.json"
    # --out: a new file or this command's earlier report, writable: checked before any paper is read
    claim_file(dest, "data quality", is_own=_is_quality_report)
    if not m.papers_path.is_file():
        raise ManifestError(f"{m.papers_path}: not found: no manifest in this data root")
    ocr, src = m.status("ocr"), m.status("download_src")
    rows: list[dict[str, Any]] = []
    for pid in tqdm(m.ids(), desc="quality", unit="paper", disable=not progress, mininterval=2.0):
        s, o = src.get(pid), ocr.get(pid)
        tex = m.resolve(s.outputs["src"]) if s and s.status == "ok" and "src" in s.outputs else None
        mmd = m.resolve(o.outputs["mmd"]) if o and o.status == "ok" and "mmd" in o.outputs else None
        if tex is None and mmd is None:
            continue
        row = m.get(pid) or {}
        rows.extend(
            paper_quality(
                pid, str(row.get("title") or ""), tex=tex, mmd=mmd, metadata_abstract=row.get("abstract")
            )
        )
    report = {"papers": rows, "total": summarise(rows)}
    atomic_write_json(dest, report)
    return report


def format_table(report: dict[str, Any]) -> str:
    """A markdown table of the rows and the totals."""
    lines = [
        "| paper | route | missing | chars | macros/100k | dangling | control | intro vs LaTeX |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["papers"]:
        if "error" in r:
            lines.append(f"| {r['id']} | {r['route']} | failed: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['id']} | {r['route']} | {', '.join(r['missing']) or '-'} | {r['chars']} | "
            f"{r['macros_per_100k']} | {r['dangling']} | {r['control']} | "
            f"{r.get('intro_vs_latex', '')} |"
        )
    for route, t in report["total"].items():
        lines.append(
            f"| **total** ({t['papers']} papers, {t['failed']} failed) | {route} | "
            f"abstract {t['missing_abstract']}, introduction {t['missing_introduction']}, "
            f"conclusion {t['missing_conclusion']} | {t['chars']} | {t['macros_per_100k']} | "
            f"{t['dangling']} | {t['control']} | {t.get('intro_vs_latex_median', '')} |"
        )
    return "\n".join(lines)


def register(sub: Any) -> None:
    """``astrollama data quality``."""
    import argparse

    p = sub.add_parser(
        "quality",
        help="quality of the AIC text per paper and in total (LaTeX and OCR routes)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", required=True, help="data root (manifest/)")
    p.add_argument("--out", help="JSON report (default ROOT/quality/quality.json)")
    p.set_defaults(func=_cli)


def _cli(a: Any) -> int:
    report = run_quality(a.root, out=a.out)
    print(format_table(report))
    log.info("quality: %s", json.dumps(report["total"]))
    return 0
