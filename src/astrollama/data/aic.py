"""AIC corpus variant: Abstract + Introduction + Conclusion of each paper.

Two sources, one result type (:class:`AIC`):

* Nougat ``.mmd`` markdown (AstroLLaMA-3 AIC models): headings are ``#``..``######`` lines or bold
  pseudo-headings (``**Abstract**``, ``**Abstract.** We ...``), numbered ("1 Introduction",
  "1. Introduction", "I. INTRODUCTION", "5 Conclusions", "A Derivations") or not. Nougat's
  missing-page markers (``[MISSING_PAGE_FAIL:3]`` ...) and repetition/error blocks
  (``+++ ==WARNING: ...== ... +++``) are removed.
* LaTeX source (AstroMLab-2 LLaMA-2 AIC models): ``\\begin{abstract}`` or ``\\abstract{...}``,
  ``\\section{Introduction}``, ``\\section{Conclusions}``; inputs inlined inside the source
  directory, the paper's macros expanded, citations and references written out from its
  ``.bbl``/``.aux`` (:mod:`astrollama.data.aic_latex`).

Rules shared by both:

* introduction = the first heading whose name starts with "introduction"; it runs, with its
  subsections, to the next heading at its level or above;
* conclusion = the LAST heading after the introduction whose name contains "conclu"
  ("Conclusions", "Summary and conclusions", "Concluding remarks", "Discussion and conclusions");
  failing that the last "Summary"-like heading ("Summary", "Summary and discussion",
  "Final remarks"); it stops at the next heading at its level or above, so appendices,
  acknowledgments and references that follow are never included;
* abstract = the abstract section, else the caller's metadata abstract (``abstract_source``
  says which);
* whatever is missing is listed in ``AIC.missing`` (the stage records it in the manifest); a
  paper with neither introduction nor conclusion is an error (:class:`AICError`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from astrollama.errors import InputError

log = logging.getLogger(__name__)

SECTIONS = ("abstract", "introduction", "conclusion")

_MISSING_PAGE = re.compile(r"\[MISSING_PAGE_(?:FAIL|EMPTY|POST)(?::\s*\d+)?\]")
_NOUGAT_BLOCK = re.compile(r"^\+\+\+ ==(?:WARNING|ERROR):[^\n]*==\n.*?^\+\+\+[ \t]*$", re.M | re.S)
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_BOLD_HEADING = re.compile(r"^\*\*(?P<head>[^*\n]{1,100}?)\*\*(?P<rest>.*)$")
_NUMBER = re.compile(
    r"^(?P<num>\d+(?:\.\d+)*\.?|[IVXLC]+\.(?:\d+\.?)*|[IVXLC]+(?=\s)|[A-Z](?:\.\d+)*\.?(?=\s))"
    r"\s+(?P<title>\S.*)$"
)
_CONCLUSION = re.compile(r"\bconclu(?:sion|sions|ding)\b")
_SUMMARY_LIKE = {
    "summary", "summary and discussion", "discussion and summary", "summary and outlook",
    "summary and future work", "summary and prospects", "final remarks", "closing remarks",
}
_BACKMATTER = {
    "references": ("references", "bibliography", "literature cited", "reference"),
    "acknowledgments": ("acknowledgments", "acknowledgements", "acknowledgment", "acknowledgement"),
    "appendix": ("appendix", "appendices", "supplementary material", "online material"),
    "backmatter": ("data availability", "data availability statement", "author contributions",
                   "software", "facilities", "conflict of interest", "funding"),
    "keywords": ("key words", "keywords", "subject headings", "unified astronomy thesaurus concepts"),
}


class AICError(InputError):
    """The paper has no usable Introduction nor Conclusion."""


@dataclass
class AIC:
    """The extracted sections of one paper (empty string = not found) and what is missing."""

    abstract: str = ""
    introduction: str = ""
    conclusion: str = ""
    conclusion_heading: str = ""
    abstract_source: str = ""  # "text" | "metadata" | ""
    source: str = ""  # "mmd" | "latex"
    missing: list[str] = field(default_factory=list)

    def text(self, title: str | None = None) -> str:
        """The training document: title, then each found section under a plain heading line."""
        parts: list[str] = [title.strip()] if title and title.strip() else []
        if self.abstract:
            parts.append("Abstract\n" + self.abstract)
        if self.introduction:
            parts.append("Introduction\n" + self.introduction)
        if self.conclusion:
            parts.append((self.conclusion_heading or "Conclusions") + "\n" + self.conclusion)
        return "\n\n".join(parts).strip() + "\n"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Heading:
    index: int  # line index
    title: str  # heading text without numbering / markup
    norm: str
    hashes: int  # markdown level; 0 for a bold pseudo-heading / LaTeX
    depth: int  # numbering depth ("1" -> 1, "1.2" -> 2, "IV." -> 1); 0 when unnumbered
    kind: str | None
    rest: str = ""  # text after a bold pseudo-heading on the same line


def normalise_heading(text: str) -> tuple[str, int]:
    """(normalised name without numbering, numbering depth) of a heading text."""
    t = re.sub(r"[*_`]+", "", text).strip()
    t = re.sub(r"\\[a-zA-Z]+\s*", "", t)  # stray LaTeX commands in OCR'd headings
    depth = 0
    m = _NUMBER.match(t)
    if m:
        num = m.group("num").rstrip(".")
        title = m.group("title")
        # "A Derivation" (appendix letter) vs "A new method" (an article): both top-level; a
        # roman numeral / letter only counts as numbering when a title follows.
        depth = 1 if re.fullmatch(r"[IVXLC]+|[A-Z]", num) else num.count(".") + 1
        t = title
    t = t.replace("&", " and ").lower()
    t = re.sub(r"[^a-z0-9 ]+", " ", t)
    t = re.sub(r"\s+", " ", t).strip()
    return t, depth


def classify_heading(norm: str) -> str | None:
    """Which section a normalised heading names, or None."""
    if not norm:
        return None
    if norm == "abstract" or norm.startswith("abstract "):
        return "abstract"
    if norm == "intro" or norm.startswith("introduction"):
        return "introduction"
    if _CONCLUSION.search(norm) or norm in _SUMMARY_LIKE:
        return "conclusion"
    for kind, names in _BACKMATTER.items():
        if norm in names or any(norm.startswith(n + " ") for n in names if kind == "appendix"):
            return kind
    return None


def clean_nougat_markers(text: str) -> str:
    """Remove Nougat's missing-page markers and repetition/error blocks."""
    text = _NOUGAT_BLOCK.sub("", text)
    return _MISSING_PAGE.sub("", text)


def _md_headings(lines: list[str]) -> list[_Heading]:
    out: list[_Heading] = []
    for i, line in enumerate(lines):
        s = line.strip()
        m = _MD_HEADING.match(s)
        if m:
            norm, depth = normalise_heading(m.group(2))
            out.append(_Heading(i, _display(m.group(2)), norm, len(m.group(1)), depth, classify_heading(norm)))
            continue
        b = _BOLD_HEADING.match(s)
        if b:
            head = b.group("head").strip().rstrip(".:")
            rest = b.group("rest").strip().lstrip(".:\u2014-").strip()
            norm, depth = normalise_heading(head)
            kind = classify_heading(norm)
            # "**Abstract.** We present..." is a heading with inline text; an arbitrary bold
            # phrase followed by text is just emphasis.
            if (rest and kind is None) or len(norm.split()) > 10:
                continue
            out.append(_Heading(i, _display(head), norm, 0, depth, kind, rest))
            continue
        # A bare "1 Introduction" / "5. CONCLUSIONS" line (no markup) for the known sections.
        if 0 < len(s) <= 60 and _NUMBER.match(s) and not s.endswith((".", ",", ";")):
            norm, depth = normalise_heading(s)
            kind = classify_heading(norm)
            # short, like a heading: "3 conclusions can be drawn" is a sentence, not a heading
            if kind in ("introduction", "conclusion", "references", "acknowledgments", "appendix") \
                    and len(norm.split()) <= 4:
                out.append(_Heading(i, _display(s), norm, 0, depth, kind))
    return out


def _display(heading: str) -> str:
    t = re.sub(r"[*_`]+", "", heading).strip()
    m = _NUMBER.match(t)
    if m:
        t = m.group("title")
    t = t.strip().rstrip(".:")
    return t[:1].upper() + t[1:].lower() if t.isupper() else t


def _ends(start: _Heading, h: _Heading) -> bool:
    """Does heading ``h`` (after ``start``) end the section opened by ``start``?"""
    if start.kind == "abstract":
        return True
    if start.depth and h.depth > start.depth:  # a numbered subsection ("1.2 Summary of ...")
        return False
    if h.kind is not None and h.kind != start.kind:
        return True
    if start.depth and h.depth:
        return h.depth <= start.depth
    if start.depth:  # numbered section, unnumbered heading
        return start.hashes > 0 and 0 < h.hashes <= start.hashes
    if h.depth == 1:
        return True
    if start.hashes == 0:  # a bold pseudo-heading ends at any markdown heading
        return h.hashes > 0
    return 0 < h.hashes <= start.hashes


def _section_body(lines: list[str], heads: list[_Heading], k: int) -> str:
    start = heads[k]
    end = len(lines)
    for h in heads[k + 1 :]:
        if _ends(start, h):
            end = h.index
            break
    body = [start.rest] if start.rest else []
    for line in lines[start.index + 1 : end]:
        m = _MD_HEADING.match(line.strip())
        body.append(m.group(2) if m else line)  # subsection headings kept as plain lines
    return _tidy("\n".join(body))


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _pick(heads: list[_Heading]) -> tuple[int | None, int | None, int | None]:
    """Indices (into ``heads``) of the abstract, introduction and conclusion headings."""
    abstract = next((k for k, h in enumerate(heads) if h.kind == "abstract"), None)
    intro = next((k for k, h in enumerate(heads) if h.kind == "introduction"), None)
    after = intro + 1 if intro is not None else (abstract + 1 if abstract is not None else 0)
    # the conclusion must come before the back matter that follows the body
    cands = [k for k in range(after, len(heads)) if heads[k].kind == "conclusion"]
    top = [k for k in cands if heads[k].depth <= 1]  # "4.3 Conclusions from the fits" is no conclusion
    cands = top or cands
    strong = [k for k in cands if _CONCLUSION.search(heads[k].norm)]
    concl = strong[-1] if strong else (cands[-1] if cands else None)
    return abstract, intro, concl


def _finish(aic: AIC, metadata_abstract: str | None, where: str) -> AIC:
    if not aic.abstract and metadata_abstract and metadata_abstract.strip():
        aic.abstract = " ".join(metadata_abstract.split())
        aic.abstract_source = "metadata"
    elif aic.abstract:
        aic.abstract_source = "text"
    aic.missing = [s for s in SECTIONS if not getattr(aic, s)]
    if not aic.introduction and not aic.conclusion:
        raise AICError(f"{where}: neither an Introduction nor a Conclusion section was found")
    return aic


def extract_aic_markdown(text: str, *, metadata_abstract: str | None = None, where: str = "<mmd>") -> AIC:
    """Extract the AIC sections from Nougat ``.mmd`` markdown."""
    lines = clean_nougat_markers(text).splitlines()
    heads = _md_headings(lines)
    a, i, c = _pick(heads)
    aic = AIC(source="mmd")
    if a is not None:
        aic.abstract = _section_body(lines, heads, a)
    if i is not None:
        aic.introduction = _section_body(lines, heads, i)
    if c is not None:
        aic.conclusion = _section_body(lines, heads, c)
        aic.conclusion_heading = heads[c].title
    return _finish(aic, metadata_abstract, where)


# ----------------------------------------------------------------------------------------- LaTeX
# The LaTeX route lives in astrollama.data.aic_latex (it uses the heading rules above); its public
# names stay importable from here (resolved on first use: aic_latex imports this module).
_LATEX_NAMES = ("EprintError", "clean_latex", "extract_aic_latex", "extract_aic_latex_text", "find_main_tex",
                "resolve_latex_inputs", "strip_latex_comments")


def __getattr__(name: str) -> Any:
    if name in _LATEX_NAMES:
        from astrollama.data import aic_latex

        return getattr(aic_latex, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def extract_aic(
    *, mmd_path: str | Path | None = None, tex_path: str | Path | None = None,
    metadata_abstract: str | None = None, where: str | None = None,
) -> AIC:
    """AIC from a ``.mmd`` file or a LaTeX main file / source directory (exactly one).

    ``where`` names the input in error messages (default: the path).
    """
    if (mmd_path is None) == (tex_path is None):
        raise ValueError("give exactly one of mmd_path or tex_path")
    if mmd_path is not None:
        p = Path(mmd_path)
        return extract_aic_markdown(p.read_text(encoding="utf-8"), metadata_abstract=metadata_abstract,
                                    where=where or str(p))
    from astrollama.data.aic_latex import extract_aic_latex, find_main_tex

    p = Path(tex_path)  # type: ignore[arg-type]
    root = p if p.is_dir() else p.parent
    if p.is_dir():
        main = find_main_tex(p)
        where = f"{where}/{main.relative_to(p).as_posix()}" if where else str(main)
        p = main
    return extract_aic_latex(p, metadata_abstract=metadata_abstract, root=root, where=where or str(p))


# ---------------------------------------------------------------------------- manifest stage

STAGE = "aic"
SOURCES = ("auto", "mmd", "latex")


def aic_record(paper_id: str, title: str, aic: AIC) -> dict[str, Any]:
    """The stage's per-paper JSON: the sections, what is missing, and the training ``text``."""
    return {"id": paper_id, "title": title, **aic.to_dict(), "text": aic.text(title)}


def run_aic(
    root: str | Path, *, source: str = "auto", shard_index: int | None = None,
    num_shards: int | None = None, retry_failed: bool = False, force: bool = False,
    ids: Sequence[str] | None = None, progress: bool = True,
) -> Any:
    """Extract AIC for this shard's pending papers of the manifest at ``root``.

    Input per paper: the OCR ``.mmd`` (stage ``ocr``) or the LaTeX source directory (stage
    ``download_src``); ``source="auto"`` prefers the ``.mmd``. Output ``<root>/aic/<yymm>/<ns>.json``;
    the manifest gets ``ok`` with ``missing``/``abstract_source``/``source`` attrs, or ``failed``
    with the reason (no introduction nor conclusion, upstream failure, unreadable file), or
    ``skipped`` while no input exists yet.
    """
    from astrollama.data import killpoint
    from astrollama.data.manifest import Manifest, paper_path
    from astrollama.data.stages import StageRunner, write_outputs

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    m = Manifest(root)
    from tqdm import tqdm

    runner = StageRunner(m, STAGE, shard_index=shard_index, num_shards=num_shards,
                         retry_failed=retry_failed, force=force, progress=False)
    todo = runner.select(ids)
    ocr, src = m.status("ocr"), m.status("download_src")
    out_dir = m.root / "aic"
    missing_counts: dict[str, int] = {}
    for pid in tqdm(todo, desc="aic", unit="paper", disable=not progress, mininterval=2.0):
        with runner.isolate(pid):
            row = m.get(pid) or {}
            o, s = ocr.get(pid), src.get(pid)
            have_mmd = o is not None and o.status == "ok" and "mmd" in o.outputs and source != "latex"
            have_tex = s is not None and s.status == "ok" and "src" in s.outputs and source != "mmd"
            meta_abs = row.get("abstract")
            if have_mmd:
                aic = extract_aic(mmd_path=m.resolve(o.outputs["mmd"]), metadata_abstract=meta_abs,
                                  where=o.outputs["mmd"])  # root-relative: records do not depend on root
            elif have_tex:
                aic = extract_aic(tex_path=m.resolve(s.outputs["src"]), metadata_abstract=meta_abs,
                                  where=s.outputs["src"])
            else:
                allowed = {"auto": ("ocr", "download_src"), "mmd": ("ocr",), "latex": ("download_src",)}[source]
                ups = [f"{n} failed: {r.error}" for n, r in (("ocr", o), ("download_src", s))
                       if n in allowed and r is not None and r.status == "failed"]
                if ups:  # terminal upstream failure (rerun with --retry-failed once an input exists)
                    runner.fail(pid, "upstream: " + "; ".join(ups))
                else:
                    runner.skip(pid, f"no input yet (source={source}: needs ocr .mmd or download_src)")
                continue
            rec = aic_record(pid, str(row.get("title") or ""), aic)
            path = paper_path(out_dir, pid, ".json")
            for sec in aic.missing:
                missing_counts[sec] = missing_counts.get(sec, 0) + 1
            write_outputs({"aic": (path, json.dumps(rec, ensure_ascii=False, indent=1) + "\n")})
            killpoint.hit("aic.between")
            runner.ok(pid, outputs={"aic": path}, source=aic.source, missing=aic.missing,
                      abstract_source=aic.abstract_source, conclusion_heading=aic.conclusion_heading)
    if missing_counts:
        log.info("aic: papers with a missing section (recorded as attr 'missing'): %s", missing_counts)
    return runner.finish()


def register(sub: Any) -> None:
    """``astrollama data aic``."""
    import argparse

    from astrollama.data.stages import add_shard_args

    p = sub.add_parser("aic", help="Abstract + Introduction + Conclusion from .mmd or LaTeX source",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="data root (manifest/; outputs go to ROOT/aic/)")
    p.add_argument("--source", choices=SOURCES, default="auto", help="auto: .mmd when OCR finished, else LaTeX")
    p.add_argument("--file", help="extract from one .mmd / .tex file or source dir and print it (no manifest)")
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
    run_aic(a.root, source=a.source, shard_index=a.shard_index, num_shards=a.num_shards,
            retry_failed=a.retry_failed, force=a.force)
    return 0
