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
  ``.bbl``/``.aux`` (:mod:`astrollama.data.aic.latex`).

Rules shared by both:

* introduction = the first heading whose name starts with "introduction"; it runs, with its
  subsections, to the next heading at its level or above;
* conclusion = the LAST heading after the introduction whose name contains "conclu"
  ("Conclusions", "Summary and conclusions", "Concluding remarks", "Discussion and conclusions");
  failing that the last "Summary"-like heading ("Summary", "Summary and discussion",
  "Final remarks"); it stops at the next heading at its level or above, so appendices,
  acknowledgments and references that follow are never included; LaTeX only, when no heading
  qualifies: the last numbered section of the body (before the appendix, acknowledgments and
  bibliography; not a notation list), if another section stands between it and the introduction
  (``AIC.conclusion_rule`` says ``"name"`` or ``"last section"``; docs/data-corpus.md gives why);
* abstract = the abstract section, else the caller's metadata abstract (``abstract_source``
  says which);
* whatever is missing is listed in ``AIC.missing`` (the stage records it in the manifest); a
  paper with neither introduction nor conclusion is an error (:class:`AICError`).
"""

from astrollama.data.aic.latex import extract_aic_latex, extract_aic_latex_text
from astrollama.data.aic.latex_inputs import (
    EprintError,
    find_main_tex,
    resolve_latex_inputs,
    strip_latex_comments,
)
from astrollama.data.aic.latex_text import clean_latex
from astrollama.data.aic.markdown import extract_aic_markdown
from astrollama.data.aic.rules import (
    AIC,
    SECTIONS,
    AICError,
    classify_heading,
    clean_nougat_markers,
    normalise_heading,
)
from astrollama.data.aic.stage import SOURCES, STAGE, aic_record, extract_aic, register, run_aic

__all__ = [
    "AIC",
    "SECTIONS",
    "SOURCES",
    "STAGE",
    "AICError",
    "EprintError",
    "aic_record",
    "classify_heading",
    "clean_latex",
    "clean_nougat_markers",
    "extract_aic",
    "extract_aic_latex",
    "extract_aic_latex_text",
    "extract_aic_markdown",
    "find_main_tex",
    "normalise_heading",
    "register",
    "resolve_latex_inputs",
    "run_aic",
    "strip_latex_comments",
]
