"""LaTeX route of AIC: the journal macro layer on fixtures written for these tests.

``fixtures/aic/latex_journal``: an AASTeX-style paper with macros (arguments, optional default,
``\\def``, ``\\providecommand``/``\\renewcommand``, a local ``.sty``, an ``\\input`` subsection),
track changes, notes, floats, back matter, a natbib/mnras ``.bbl`` and an ``.aux``.
``fixtures/aic/latex_bare``: an article-class paper with neither ``.bbl`` nor ``.aux``.
``fixtures/aic/latex_revtex``: a revtex4-2 PRD-style paper: front matter (``\\preprint``, ``\\email``,
``\\homepage``, ``\\affiliation``, ``\\pacs``, ``\\keywords``, ``\\collaboration``), ``\\bibnote``,
``ruledtabular``, acronym-package abbreviations and an apsrev4-2-style ``.bbl`` (numeric citations).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astrollama.data.aic import AICError, clean_latex, extract_aic, extract_aic_latex_text
from astrollama.data.aic.latex import collect_macros, parse_aux, parse_bbl, strip_latex_comments
from astrollama.data.quality import text_quality

FIX = Path(__file__).parent / "fixtures" / "aic"


@pytest.fixture(scope="module")
def journal():
    return extract_aic(tex_path=FIX / "latex_journal")


def test_macros_with_arguments_from_every_input_file_are_expanded(journal) -> None:
    # \sw (macros.tex, with \xspace), \ndw (\providecommand does not override), \val[2], \kpc[opt default]
    assert journal.abstract.startswith("We model twelve dwarf galaxies with the TIDY code")
    assert r"$M_{\rm vir} = 3.1\pm0.2\times10^{9}\,M_\odot$" in journal.abstract  # \def in math, math kept
    assert "the 5 kpc scale is resolved" in journal.introduction
    assert "The tidal radius spans the 2–5 kpc range." in journal.introduction  # notes.sty, \def#1#2, \input
    assert "seven" not in journal.text() and "\\" not in journal.text().replace("\\rm", "").replace(
        "\\pm", ""
    ).replace("\\times", "").replace("\\,", "").replace("\\odot", "")


def test_track_changes_keep_the_new_text_and_notes_leave(journal) -> None:
    assert "We now include the disk." in journal.introduction  # \added, \deleted, \replaced[..]{old}{new}
    for gone in ("never", "ignore", "referee asked", "check this number", "old value", "reword", "AB:"):
        assert gone not in journal.text(), gone


def test_back_matter_floats_and_bibliography_commands_leave_the_text(journal) -> None:
    text = journal.text()
    for gone in (
        "Astropy",
        "HST",
        "Tidal Foundation",
        "on request",
        "aasjournal",
        "refs",
        "sidewayscell",
        "longtablecell",
        "jones19",
        "startlongtable",
        "galaxies: dwarf",
    ):
        assert gone not in text, gone
    assert journal.conclusion == "The tails of twelve dwarfs are thin."
    assert "Caption: A rotated table." in journal.introduction  # captions kept, after the section text


def test_citations_read_author_year_from_the_bbl(journal) -> None:
    intro = journal.introduction
    assert "as shown by Smith et al. (2020), and they thin out" in intro  # \citet, natbib bibitem
    assert "(e.g., Smith et al. 2020; Jönes 2019, sec. 2)" in intro  # \citep[pre][post]{a,b}, accents
    assert "(e.g., Jönes 2019; see also Brown & Green 2018, p. 4)" in intro  # \citealt, \citealp, mnras
    assert "Brown & Green (2018) measured the decay. Next," in intro  # punctuation tidied after joining
    assert "Jönes first noted it in 2019." in intro  # \citeauthor, \citeyear
    assert "(Smith et al. 2020)" in journal.abstract


def test_references_read_their_numbers_from_the_aux(journal) -> None:
    assert "Section 3 and Fig. 2 and Section 3 describe the method" in journal.introduction
    assert "follows Eq. (4) and Eq. (4);" in journal.introduction


def test_paragraphs_stay_whole_and_short_titles_end_sections(journal) -> None:
    paras = journal.introduction.split("\n\n")
    # the comment-only line and the \label-only line do not split the first paragraph
    assert paras[0].startswith("Tidal tails") and paras[0].endswith("is resolved.")
    assert paras[1].startswith("We now include")
    assert "Motivation" in paras  # the \input subsection heading is its own line
    assert "E = " not in journal.introduction  # \section{Method} ended the introduction
    assert journal.missing == [] and journal.conclusion_heading == "Conclusions"


def test_without_bbl_or_aux_the_sentence_stays_grammatical() -> None:
    aic = extract_aic(tex_path=FIX / "latex_bare")
    intro = aic.introduction
    assert "Tails were modelled first by previous work, and later refined them." in intro
    assert "This was shown by previous work and is known." in intro
    assert "Several studies (e.g., previous work) agree; see Section and Fig." in intro
    assert "The energy is in Eq.;" in intro
    assert "reads Smith (2020) and (Lee et al. 2019)." in intro  # author-year citation keys
    assert aic.conclusion == "Previous work was right."
    q = text_quality(aic.text("T"))
    assert (q["macros"], q["dangling"], q["control"]) == (0, 0, 0)


def test_bbl_and_aux_parsers() -> None:
    bbl = parse_bbl((FIX / "latex_journal" / "main.bbl").read_text())
    assert bbl == {
        "smith20": ("Smith et al.", "2020"),
        "jones19": ("Jönes", "2019"),
        "bg18": ("Brown & Green", "2018"),
    }
    assert parse_bbl("\\bibitem{a} A.\n\\bibitem{b} B.") == {"a": "1", "b": "2"}  # numeric styles
    aux = parse_aux((FIX / "latex_journal" / "main.aux").read_text())
    assert aux == {"sec:intro": "1", "sec:method": "3", "eq:energy": "4", "fig:map": "2"}


def test_numeric_citations_and_unknown_commands() -> None:
    tex = r"""\documentclass{revtex4-1}\begin{document}
\section{Introduction}
Known from \cite{a,b}. \unknowncmd{Kept} text with \ion{Fe}{ii}, 5\,\AA{} and \'Angstr\"om.
\end{document}"""
    from astrollama.data.aic.latex import _Context, latex_to_text

    aic = extract_aic_latex_text(tex)  # revtex (APS) numbers the citations in their order without a .bbl
    assert aic.introduction == "Known from [1, 2]. Kept text with Fe ii, 5 Å and Ángström."
    assert extract_aic_latex_text(tex.replace("revtex4-1", "article")).introduction.startswith(
        "Known from previous work. Kept"
    )
    assert (
        latex_to_text(r"Known from \cite{a,b}.", _Context(cites={"a": "1", "b": "2"})) == "Known from [1, 2]."
    )


def test_revtex_front_matter_leaves_and_citations_are_numeric() -> None:
    aic = extract_aic(tex_path=FIX / "latex_revtex")
    assert aic.abstract == "We follow the spin-down of a toy pulsar after a glitch [1]."
    assert aic.introduction == (
        "Glitches were first catalogued long ago [1, 2], and Ref. [3] gave a recovery law. Quill [2] measured "
        "the relaxation; the same law holds [1]. A gravitational wave (GW) search and a neutron stars (NSs) "
        "census complete the picture.\n\nCaption: Toy glitch sizes."
    )
    assert aic.conclusion == "The recovery law of Ref. [3] fits."
    text = aic.text("Glitch recovery of a toy pulsar")
    for leak in (
        "TEST-PREPRINT",
        "example.org",
        "Institute",
        "Department",
        "97.60",
        "glitches",
        "Toy Collab",
        "model dependent",
        "a & b",
    ):
        assert leak not in text, leak
    q = text_quality(text)
    assert (q["macros"], q["dangling"], q["control"]) == (0, 0, 0)
    # the apsrev .bbl read on its own is author-year; the revtex class makes it numeric
    assert parse_bbl((FIX / "latex_revtex" / "main.bbl").read_text()) == {
        "zorn11": ("Zorn et al.", "2011"),
        "quill15": ("Quill", "2015"),
        "marsh19": ("Marsh", "2019a"),
    }


def test_inline_bibliography_and_author_year_revtex() -> None:
    body = r"""\begin{document}\section{Introduction}
As \citet{k1} showed \cite{k2}.
\begin{thebibliography}{2}
\bibitem[{Ames(2001)}]{k1} A. Ames, Toy J. 1 (2001).
\bibitem[{Bell(2002)}]{k2} B. Bell, Toy J. 2 (2002).
\end{thebibliography}
\end{document}"""
    numbered = extract_aic_latex_text("\\documentclass[aps,prl]{revtex4-1}" + body).introduction
    assert numbered == "As Ames [1] showed [2]."
    rmp = extract_aic_latex_text(
        "\\documentclass[aps,rmp]{revtex4-1}" + body
    ).introduction  # RMP: author-year
    assert rmp == "As Ames (2001) showed Bell (2002)."
    plain = body.replace("[{Ames(2001)}]", "").replace("[{Bell(2002)}]", "")
    assert (
        extract_aic_latex_text("\\documentclass{article}" + plain).introduction == "As Ref. [1] showed [2]."
    )


def test_acronym_forms() -> None:
    tex = r"""\documentclass{article}\newacronym{snr}{SNR}{signal-to-noise ratio}
\begin{document}\section{Introduction}
\begin{acronym}\acro{PSD}{power spectral density}\end{acronym}
\Ac{PSD} estimates, then \acp{PSD} and \acs{snr}; \gls{snr} twice: \gls{snr}.
\acused{XX}\ac{XX} and \acl{PSD}, \acresetall\ac{PSD} again, \ac{UNDEF}.
\end{document}"""
    assert extract_aic_latex_text(tex).introduction == (
        "Power spectral density (PSD) estimates, then PSDs and SNR; signal-to-noise ratio (SNR) twice: SNR. "
        "XX and power spectral density, power spectral density (PSD) again, UNDEF."
    )


def test_comments_are_stripped_without_splitting_paragraphs() -> None:
    assert strip_latex_comments("a\n% whole line\nb 50\\% c % tail\n\nd") == "a\nb 50\\% c \n\nd"
    assert strip_latex_comments("x\\\\% comment\ny") == "x\\\\\ny"  # \\ then a real comment
    assert (
        strip_latex_comments("keep\\begin{comment}drop\\end{comment} more\\begin{comment}rest") == "keep more"
    )
    assert (
        clean_latex(strip_latex_comments("one\n% c\ntwo\n\\label{x}\nthree\n\nfour"))
        == "one two three\n\nfour"
    )


def test_collect_macros_forms() -> None:
    macros, rest = collect_macros(
        r"\newcommand\a{A}\newcommand{\b}[2][x]{#1-#2}\def\c#1{<#1>}"
        r"\let\d\a\DeclareMathOperator{\sgn}{sgn} body"
    )
    assert rest.strip() == "body"
    assert (macros["a"].body, macros["b"].nargs, macros["b"].default, macros["c"].nargs) == ("A", 2, "x", 1)
    assert macros["d"].body == "A" and macros["sgn"].body == r"\operatorname{sgn}"


def test_latex_without_sections_is_an_aic_error() -> None:
    with pytest.raises(AICError, match="neither an Introduction nor a Conclusion"):
        extract_aic_latex_text(r"\begin{document}Just text.\end{document}")
