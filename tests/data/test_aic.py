"""AIC extraction from Nougat markdown and LaTeX, and the manifest stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from astrollama.data.aic import (
    AICError,
    classify_heading,
    extract_aic,
    extract_aic_latex_text,
    extract_aic_markdown,
    normalise_heading,
    run_aic,
)
from astrollama.data.manifest import Manifest

FIX = Path(__file__).parent / "fixtures" / "aic"

# file -> (missing, conclusion heading, text that must be in the AIC text, text that must not)
CASES = {
    "numbered_hash.mmd": (
        [],
        "Conclusions",
        ["twelve dwarf galaxy halos", "Motivation", "Previous surveys lacked", "Future arrays will map"],
        ["MISSING_PAGE", "three hundred hours", "telescope operators", "continuity equation", "Author A."],
    ),
    "roman_bold.mmd": (
        [],
        "Summary and conclusions",
        ["forty hot Jupiters", "short orbits", "clouds mute its signal"],
        ["space telescope", "Clouds at high altitude", "linear model", "Author B."],
    ),
    "unnumbered_inline.mmd": (
        [],
        "Concluding remarks",
        ["red timing noise of thirty", "precise clocks", "Red noise limits", "a third of the pulsars"],
        [
            "WARNING",
            "the noise the noise",
            "Key words",
            "power-law noise model",
            "research council",
            "fitted parameters",
            "MISSING_PAGE",
        ],
    ),
    "summary_plain.mmd": (
        ["abstract"],
        "Summary",
        ["Bars drive gas", "Dust lanes trace"],
        ["hydrodynamic", "Resolution tests"],
    ),
    "discussion_conclusions.mmd": (
        [],
        "Discussion and conclusions",
        ["Most massive stars", "Binary interaction", "frequent mass transfer"],
        ["flat in log period", "spectra are public"],
    ),
    "no_conclusion.mmd": (
        ["conclusion"],
        "",
        ["Lunar dust levitates", "Electrostatic forces"],
        ["sheath model"],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_markdown_heading_variants(name: str) -> None:
    missing, heading, present, absent = CASES[name]
    aic = extract_aic(mmd_path=FIX / name)
    text = aic.text("Title")
    assert aic.missing == missing
    assert aic.conclusion_heading == heading
    for s in present:
        assert s in text, s
    for s in absent:
        assert s not in text, s
    assert text.startswith("Title\n\nAbstract\n" if aic.abstract else "Title\n\nIntroduction\n")


def test_metadata_abstract_fallback_and_missing_report() -> None:
    no_abs = extract_aic(mmd_path=FIX / "summary_plain.mmd")
    assert no_abs.missing == ["abstract"] and no_abs.abstract_source == ""
    with_meta = extract_aic(mmd_path=FIX / "summary_plain.mmd", metadata_abstract="  Bars   feed\n dust. ")
    assert with_meta.abstract == "Bars feed dust." and with_meta.abstract_source == "metadata"
    assert with_meta.missing == []
    # text found in the paper wins over the metadata
    assert extract_aic(mmd_path=FIX / "numbered_hash.mmd", metadata_abstract="x").abstract_source == "text"


def test_no_introduction_nor_conclusion_is_an_error() -> None:
    with pytest.raises(AICError, match="neither.mmd: neither an Introduction nor a Conclusion"):
        extract_aic(mmd_path=FIX / "neither.mmd")


@pytest.mark.parametrize(
    ("heading", "norm", "depth", "kind"),
    [
        ("1 Introduction", "introduction", 1, "introduction"),
        ("1. Introduction", "introduction", 1, "introduction"),
        ("I. INTRODUCTION", "introduction", 1, "introduction"),
        ("**5 Conclusions**", "conclusions", 1, "conclusion"),
        ("6. Summary and Conclusions", "summary and conclusions", 1, "conclusion"),
        ("Concluding remarks", "concluding remarks", 0, "conclusion"),
        ("7 Discussion & conclusions", "discussion and conclusions", 1, "conclusion"),
        ("2.3 Summary of the data", "summary of the data", 2, None),
        ("Appendix A: Derivations", "appendix a derivations", 0, "appendix"),
        ("A Supplementary tables", "supplementary tables", 1, None),
        ("ACKNOWLEDGEMENTS", "acknowledgements", 0, "acknowledgments"),
        ("References", "references", 0, "references"),
    ],
)
def test_heading_normalisation(heading: str, norm: str, depth: int, kind: str | None) -> None:
    assert normalise_heading(heading) == (norm, depth)
    assert classify_heading(norm) == kind


def test_numbered_sentence_is_not_a_heading() -> None:
    mmd = "## 1 Introduction\n\nA.\n\n3 conclusions can be drawn from this\n\nB.\n\n## 4 Summary\n\nC.\n"
    aic = extract_aic_markdown(mmd)
    assert "B." in aic.introduction and aic.conclusion == "C."


def test_intro_subsections_kept_until_next_top_level_section() -> None:
    mmd = (
        "## 1 Introduction\n\nA.\n\n### 1.1 Summary of earlier work\n\nB.\n\n## 2 Method\n\nC.\n\n"
        "## 3 Conclusion\n\nD.\n\n### 3.1 Outlook\n\nE.\n\n## Appendix A\n\nF.\n"
    )
    aic = extract_aic_markdown(mmd)
    assert "A." in aic.introduction and "B." in aic.introduction and "C." not in aic.introduction
    assert "D." in aic.conclusion and "E." in aic.conclusion and "F." not in aic.conclusion


def test_latex_source_with_inputs_comments_and_markup() -> None:
    aic = extract_aic(tex_path=FIX / "latex")  # a directory: the main file is found
    assert aic.source == "latex" and aic.missing == []
    assert "magnetic field of protostellar disks" in aic.abstract
    assert "citep" not in aic.abstract and "comment" not in aic.abstract
    assert "threaded by magnetic fields" in aic.introduction  # from \input{intro}
    assert "Earlier work" in aic.introduction and "Ideal MHD" in aic.introduction
    assert "50% of them" in aic.introduction
    assert "induction equation" not in aic.introduction
    assert "toroidal field dominates" in aic.conclusion and "launches an outflow" in aic.conclusion
    for gone in ("referee", "constrained-transport", "\\ref", "\\label", "Measured at 10 au", "\\footnote"):
        assert gone not in aic.conclusion, gone
    assert aic.conclusion_heading == "Conclusions"


def test_latex_aa_structured_abstract_and_summary_section() -> None:
    tex = r"""\documentclass{aa}
\begin{document}
\abstract{Context text.}{Aims text.}{Methods with $T\sim10^4$\,K.}
\section{Introduction}\label{s:intro}
Intro \textbf{bold} text~\cite{X}.
\section{Results}
Body.
\section{Summary}
Summary text.
\begin{acknowledgements} Thanks. \end{acknowledgements}
\end{document}"""
    aic = extract_aic_latex_text(tex)
    assert aic.abstract == r"Context text. Aims text. Methods with $T\sim10^4$ K."  # \, is a space
    assert aic.introduction == "Intro bold text."
    assert aic.conclusion == "Summary text." and aic.conclusion_heading == "Summary"


def _manifest_with_ocr(root: Path, names: dict[str, str]) -> Manifest:
    m = Manifest(root)
    m.upsert_papers(
        [{"id": pid, "title": f"Paper {pid}", "abstract": f"Metadata abstract of {pid}."} for pid in names]
    )
    for pid, name in names.items():
        if name == "ocr-failed":
            m.record("ocr", pid, "failed", "encrypted: needs a password")
        elif name:
            dst = root / "ocr" / f"{pid}.mmd"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(FIX / name, dst)
            m.record("ocr", pid, "ok", outputs={"mmd": dst})
    return m


def test_stage_records_every_outcome_in_the_manifest(tmp_path: Path) -> None:
    names = {
        "2401.00001": "numbered_hash.mmd",
        "2401.00002": "summary_plain.mmd",
        "2401.00003": "neither.mmd",
        "2401.00004": "no_conclusion.mmd",
        "2401.00005": "ocr-failed",
        "2401.00006": "",
    }
    m = _manifest_with_ocr(tmp_path, names)
    stats = run_aic(tmp_path, progress=False)
    st = m.status("aic")
    assert (stats.ok, stats.failed, stats.skipped) == (3, 2, 1)
    assert st["2401.00001"].status == "ok" and st["2401.00001"].attrs["missing"] == []
    assert st["2401.00002"].attrs["abstract_source"] == "metadata"
    assert st["2401.00004"].attrs["missing"] == ["conclusion"]
    assert "neither an Introduction nor a Conclusion" in st["2401.00003"].error
    assert st["2401.00005"].error == "upstream: ocr failed: encrypted: needs a password"
    assert st["2401.00006"].status == "skipped"
    rec = json.loads(m.resolve(st["2401.00001"].outputs["aic"]).read_text())
    assert rec["id"] == "2401.00001" and rec["text"].startswith("Paper 2401.00001\n\nAbstract\n")
    # a rerun does nothing new; the skipped paper is retried once its OCR exists
    assert run_aic(tmp_path, progress=False).processed == 1


def test_stage_falls_back_to_latex_source(tmp_path: Path) -> None:
    m = _manifest_with_ocr(tmp_path, {"2401.00007": "ocr-failed", "2401.00008": "numbered_hash.mmd"})
    src = tmp_path / "src" / "2401.00007"
    shutil.copytree(FIX / "latex", src)
    m.record("download_src", "2401.00007", "ok", outputs={"src": src})
    run_aic(tmp_path, progress=False)
    st = m.status("aic")
    assert st["2401.00007"].status == "ok" and st["2401.00007"].attrs["source"] == "latex"
    assert st["2401.00008"].attrs["source"] == "mmd"
    # --source latex: papers without LaTeX source wait (skipped), they do not fail
    run_aic(tmp_path, source="latex", force=True, progress=False)
    st = m.status("aic")
    assert st["2401.00008"].status == "skipped" and st["2401.00007"].status == "ok"


def test_latex_records_say_how_the_conclusion_citations_and_references_were_made(tmp_path: Path) -> None:
    m = _manifest_with_ocr(tmp_path, {"2401.00009": "ocr-failed", "2401.00010": "numbered_hash.mmd"})
    src = tmp_path / "src" / "2401.00009"
    shutil.copytree(FIX / "latex_bib", src)
    m.record("download_src", "2401.00009", "ok", outputs={"src": src})
    run_aic(tmp_path, progress=False)
    st = m.status("aic")
    attrs = st["2401.00009"].attrs
    assert (attrs["conclusion_heading"], attrs["conclusion_rule"]) == ("Discussion", "last section")
    assert (attrs["unresolved_citations"], attrs["bare_references"]) == (1, 0)
    assert "conclusion_rule" not in st["2401.00010"].attrs  # the Nougat route records none of these
    rec = json.loads(m.resolve(st["2401.00009"].outputs["aic"]).read_text())
    assert rec["conclusion_rule"] == "last section" and "\nDiscussion\nThe line is weak" in rec["text"]
