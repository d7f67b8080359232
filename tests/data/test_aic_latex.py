"""LaTeX route of AIC: the journal macro layer on fixtures written for these tests.

``fixtures/aic/latex_journal``: an AASTeX-style paper with macros (arguments, optional default,
``\\def``, ``\\providecommand``/``\\renewcommand``, a local ``.sty``, an ``\\input`` subsection),
track changes, notes, floats, back matter, a natbib/mnras ``.bbl`` and an ``.aux``.
``fixtures/aic/latex_bare``: an article-class paper with neither ``.bbl`` nor ``.aux``.
``fixtures/aic/latex_revtex``: a revtex4-2 PRD-style paper: front matter (``\\preprint``, ``\\email``,
``\\homepage``, ``\\affiliation``, ``\\pacs``, ``\\keywords``, ``\\collaboration``), ``\\bibnote``,
``ruledtabular``, acronym-package abbreviations and an apsrev4-2-style ``.bbl`` (numeric citations).
``fixtures/aic/latex_bib``: an AASTeX paper with a ``.bib`` and no ``.bbl``/``.aux`` (et al., two
authors, accents, "von", a corporate author, a/b years, a key the ``.bib`` lacks), a font package
redefining ``\\AA`` next to the authors' own macro file, and no conclusion heading.
Numbering by counting uses LaTeX written inline in the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astrollama.data.aic import AICError, clean_latex, extract_aic, extract_aic_latex_text
from astrollama.data.aic.latex_inputs import strip_latex_comments
from astrollama.data.aic.latex_macros import collect_macros
from astrollama.data.aic.references import parse_aux, parse_bbl
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
    assert "follows Eq. (4) and (4);" in journal.introduction  # the second one as LaTeX prints it


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
    from astrollama.data.aic.citations import _Context
    from astrollama.data.aic.latex_text import latex_to_text

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


# ------------------------------------------------------------------ numbering without an .aux

_COUNTED = r"""\documentclass{CLASS}
\begin{document}
\section{Introduction}\label{s:intro}
Text.
\section*{Unnumbered}\label{s:star}
\section{Body}\label{s:b}
\begin{equation}a\label{e:one}\end{equation}
\begin{align}b\nonumber\\ c\label{e:al2}\\ d\tag{T}\label{e:tag}\\
\end{align}
\begin{equation}\begin{split}p\\ q\end{split}\label{e:split}\end{equation}
\begin{subequations}\label{e:par}\begin{equation}x\label{e:sub}\end{equation}
\begin{equation}y\label{e:sub2}\end{equation}\end{subequations}
\begin{equation*}n\end{equation*}
\subsection{Part}\label{s:b1}
\subsubsection{Bit}\label{s:b1a}
\begin{figure}\caption{F}\label{f:one}\end{figure}
\begin{table}\caption{T}\label{t:one}\end{table}
\begin{figure*}\includegraphics{x}\caption{F2}\end{figure*}
\begin{table}\centering no caption\end{table}
\section{Conclusions}\label{s:c} Done.
\appendix
\section{Extra}\label{a:one}
\subsection{More}\label{a:sub}
\begin{equation}z\label{e:app}\end{equation}
\begin{figure}\caption{FA}\label{f:app}\end{figure}
\begin{table}\caption{TA}\label{t:app}\end{table}
\section{Other}\label{a:two}
\begin{equation}w\label{e:app2}\end{equation}
\end{document}"""
# shared by every class: the body before the appendix
_COMMON = {
    "e:one": "1",
    "e:al2": "2",  # the \nonumber row takes no number
    "e:tag": "T",
    "e:split": "3",  # split's rows are one equation
    "e:par": "4",
    "e:sub": "4a",
    "e:sub2": "4b",  # the trailing \\ before \end{align} is no row; equation* no number
    "f:one": "1",
}
_BY_CLASS = {
    # LaTeX defaults: appendix sections lettered, A.1 subsections, counters go on
    "article": {
        "sec": ("1", "1", "2", "2.1", "2.1.1", "3"),
        "app": ("A", "A.1", "5", "3", "2", "B", "6"),
        "t": "1",
    },
    # emulateapj.cls \appendix: \Alph sections, its \section resets the equations (A1, B1); floats go on
    "emulateapj": {
        "sec": ("1", "1", "2", "2.1", "2.1.1", "3"),
        "app": ("A", "A.1", "A1", "3", "2", "B", "B1"),
        "t": "1",
    },
    # aastex631.cls \appendix: \Alph sections, \Alph{section}\arabic{equation} reset once (A1, B2); floats go on
    "aastex631": {
        "sec": ("1", "1", "2", "2.1", "2.1.1", "3"),
        "app": ("A", "A.1", "A1", "3", "2", "B", "B2"),
        "t": "1",
    },
    # mnras.cls \appendix: subsection \thesection\arabic, equation/figure/table \thesection\arabic, reset per section
    "mnras": {
        "sec": ("1", "1", "2", "2.1", "2.1.1", "3"),
        "app": ("A", "A1", "A1", "A1", "A1", "B", "B1"),
        "t": "1",
    },
    # aa.cls \appendix: A.1 for subsections, equations, figures and tables
    "aa": {
        "sec": ("1", "1", "2", "2.1", "2.1.1", "3"),
        "app": ("A", "A.1", "A.1", "A.1", "A.1", "B", "B.1"),
        "t": "1",
    },
    # revtex: Roman sections, lettered subsections ("II A"), Roman tables, appendix equations A1
    "revtex4-2": {
        "sec": ("I", "I", "II", "II A", "II A 1", "III"),
        "app": ("A", "A 1", "A1", "3", "II", "B", "B1"),
        "t": "I",
    },
}


@pytest.mark.parametrize("cls", sorted(_BY_CLASS))
def test_labels_are_numbered_by_counting_with_the_class_conventions(cls: str) -> None:
    from astrollama.data.aic.labels import count_labels, scheme_for

    tex = _COUNTED.replace("CLASS", cls)
    got = {k: num for k, (_, num) in count_labels(tex, scheme_for(tex)).items()}
    want = dict(_COMMON)
    s, a = _BY_CLASS[cls]["sec"], _BY_CLASS[cls]["app"]
    # a label after a starred heading keeps the last number (LaTeX's \@currentlabel)
    want.update({"s:intro": s[0], "s:star": s[1], "s:b": s[2], "s:b1": s[3], "s:b1a": s[4], "s:c": s[5]})
    want.update({"a:one": a[0], "a:sub": a[1], "e:app": a[2], "f:app": a[3], "t:app": a[4], "a:two": a[5]})
    want.update({"e:app2": a[6], "t:one": _BY_CLASS[cls]["t"]})
    assert got == want


def test_subfigure_captions_are_lettered_under_their_figure() -> None:
    from astrollama.data.aic.labels import count_labels, scheme_for

    tex = r"""\documentclass{article}\begin{document}
\begin{figure}\caption{one}\label{f1}\end{figure}
\begin{figure}\begin{subfigure}{x}\caption{a}\label{f2a}\end{subfigure}
\begin{subfigure}{x}\caption{b}\label{f2b}\end{subfigure}\caption{two}\label{f2}\end{figure}
\begin{figure}\caption{three}\label{f3}\begin{subfigure}{x}\caption{a}\label{f3a}\end{subfigure}\end{figure}
\end{document}"""
    got = {k: num for k, (_, num) in count_labels(tex, scheme_for(tex)).items()}
    assert got == {"f1": "1", "f2a": "2a", "f2b": "2b", "f2": "2", "f3": "3", "f3a": "3a"}


def test_equations_numbered_within_sections() -> None:
    from astrollama.data.aic.labels import count_labels, equations_by_section, scheme_for

    for head in (
        "\\documentclass[eqsecnum]{aastex631}",
        "\\documentclass{article}\\numberwithin{equation}{section}",
    ):
        tex = _COUNTED.replace("\\documentclass{CLASS}", head)
        got = count_labels(tex, scheme_for(tex), eq_in_section=equations_by_section(tex))
        assert (got["e:one"][1], got["e:sub2"][1]) == ("2.1", "2.4b"), head


def test_counted_numbers_reach_every_reference_command() -> None:
    tex = r"""\documentclass{aastex631}\begin{document}
\section{Introduction}
See Section~\ref{sec:m}; \S\ref{sec:m1}; \ref{fig:a}; Figures~\ref{fig:a} and~\ref{fig:b}; \ref{fig:a} and
\ref{sec:m}; \cref{fig:a,fig:b}; \Cref{sec:m}; \autoref{tab:x}; Eq.~\ref{eq:e}; \eqref{eq:e}; \cref{eq:e};
Appendix~\ref{app:d}; \ref{app:d}; Eqs.~(\ref{eq:e}) and (\ref{eq:app}); Eqs.\ \eqref{eq:e}, and \eqref{eq:app};
Sections~\ref{sec:m}, \ref{sec:m1},
and~\ref{app:d}; and \ref{nowhere}.
\section{Method}\label{sec:m}
\subsection{Fit}\label{sec:m1}
\begin{equation}E=mc^2\label{eq:e}\end{equation}
\begin{figure}\caption{A}\label{fig:a}\end{figure}
\begin{figure}\caption{B}\label{fig:b}\end{figure}
\begin{deluxetable}{cc}\tablecaption{X}\label{tab:x}\end{deluxetable}
\section{Conclusions} Done.
\appendix\section{Derivation}\label{app:d}
\begin{equation}x\label{eq:app}\end{equation}
\end{document}"""
    aic = extract_aic_latex_text(tex)
    assert aic.introduction.split("\n\n")[0] == (
        "See Section 2; Section 2.1; Figure 1; Figures 1 and 2; Figure 1 and Section 2; Figures 1 and 2; "
        "Section 2; Table 1; Eq. 1; Eq. (1); Eq. (1); Appendix A; Appendix A; Eqs. (1) and (A1); Eqs. (1), and (A1); "
        "Sections 2, 2.1, "
        "and Appendix A; and Section."
    )
    assert aic.bare_references == 1  # \ref{nowhere}: no label anywhere
    assert "Eq.," not in aic.text() and "Section," not in aic.text()


def test_the_aux_is_preferred_and_counting_fills_what_it_lacks(tmp_path: Path) -> None:
    (tmp_path / "main.tex").write_text(
        "\\documentclass{article}\\begin{document}\\section{Introduction}\n"
        "Go to Section~\\ref{s:a} and Section~\\ref{s:b}.\n"
        "\\section{Alpha}\\label{s:a}\\section{Beta}\\label{s:b}\\section{Conclusion} Done.\\end{document}\n"
    )
    (tmp_path / "main.aux").write_text("\\newlabel{s:a}{{7}{3}{Alpha}{section.7}{}}\n")
    aic = extract_aic(tex_path=tmp_path)
    assert "Go to Section 7 and Section 3." in aic.introduction  # s:a from the .aux, s:b counted


# ------------------------------------------------------------------------- .bib without a .bbl


def test_citations_from_the_bib_read_like_the_bbl_route() -> None:
    aic = extract_aic(tex_path=FIX / "latex_bib")
    assert aic.abstract == "We measure the 6708 Å line in twelve toy dwarfs (Orr et al. 2021)."
    intro = aic.introduction
    # three authors -> et al.; two -> "&"; braces and accents decoded
    assert "first seen by Orr et al. (2021) and confirmed by Silva Aguirre & Özdemir (2015)." in intro
    # "von" part kept, a corporate {braced} author whole
    assert (
        "Two teams agree (Jönes & Brown 2019; van der Berg 2018) and Toy Software Collaboration (2022)"
        in intro
    )
    # "and others" is et al.; same authors and year -> a/b by title; keys match whatever their case
    assert "wrote twice (Orr et al. 2020a; Orr et al. 2020b), and Orr et al. (2021) is matched" in intro
    # a key the .bib lacks: what the .bbl route does (neutral wording or dropped), and counted
    assert "One key is missing from the file and the sentence goes on." in intro
    assert aic.unresolved_citations == 1
    assert "The method is in Section 2 and Appendix A." in intro


def test_parse_bib_forms() -> None:
    from astrollama.data.aic.bibtex import parse_bib
    from astrollama.data.aic.latex_text import _plain

    bib = (FIX / "latex_bib" / "refs.bib").read_text()
    got = parse_bib(bib, _plain)
    assert got["SilvaAguirre15"] == ("Silva Aguirre & Özdemir", "2015")
    assert got["unused"] == ("Nobody", "1999") and got["vdb2018"] == ("van der Berg", "2018")
    # only the cited entries are parsed when the cited keys are given
    assert set(parse_bib(bib, _plain, {"orr2021", "PairA2019"})) == {"Orr2021", "PairA2019"}
    # an exponential @string chain is not expanded; a broken entry is skipped, the others kept
    bomb = "".join(f"@string{{s{i} = s{i - 1} # s{i - 1}}}\n" for i in range(1, 60))
    broken = (
        "@article{bad, author = {Unclosed, A, year = 2000}\n@article{ok, author = {Fine, F}, year = 2001}\n"
    )
    assert parse_bib('@string{s0 = "x"}\n' + bomb + broken, _plain).get("ok") == ("Fine", "2001")


# ---------------------------------------------------------------------- style packages ignored


def test_definitions_from_font_or_style_packages_are_not_expanded() -> None:
    from astrollama.data.aic.latex_inputs import is_style_package

    aic = extract_aic(tex_path=FIX / "latex_bib")
    assert "6708 Å line" in aic.abstract  # toyfonts.sty's \def\AA{\mbox{A}} left alone
    assert "twelve toy dwarfs" in aic.abstract  # toymacros.sty (the authors' own file) still counts
    assert is_style_package((FIX / "latex_bib" / "toyfonts.sty").read_text())
    assert not is_style_package((FIX / "latex_bib" / "toymacros.sty").read_text())
    assert not is_style_package((FIX / "latex_journal" / "notes.sty").read_text())


# ------------------------------------------------------------------------ conclusion fallback


def _paper(*sections: str) -> str:
    body = "".join(f"\\section{{{t}}}\nText of {t.lower()}.\n" for t in sections)
    return f"\\documentclass{{article}}\\begin{{document}}{body}\\end{{document}}"


def test_without_a_conclusion_heading_the_last_body_section_stands_in() -> None:
    aic = extract_aic_latex_text(_paper("Introduction", "Data", "Results", "Discussion"))
    assert (aic.conclusion_heading, aic.conclusion_rule, aic.conclusion) == (
        "Discussion",
        "last section",
        "Text of discussion.",
    )
    named = extract_aic_latex_text(_paper("Introduction", "Data", "Conclusions", "Outlook"))
    assert (named.conclusion_heading, named.conclusion_rule) == ("Conclusions", "name")  # a name wins
    # the appendix, acknowledgments and starred sections are not the body's end
    tex = _paper("Introduction", "Data", "Call for observations").replace(
        "\\end{document}", "\\section*{Acknowledgments}Thanks.\\appendix\\section{Proof}P.\\end{document}"
    )
    assert extract_aic_latex_text(tex).conclusion_heading == "Call for observations"
    assert (
        extract_aic_latex_text(_paper("Introduction", "Data", "Results", "Notation")).conclusion_heading
        == "Results"
    )
    # one body section after the introduction is the paper itself, not its conclusion
    short = extract_aic_latex_text(_paper("Introduction", "Method"))
    assert short.conclusion == "" and short.missing == ["abstract", "conclusion"]


# ------------------------------------------------------------------------------- the bench script


def test_bench_latex_script_prints_the_fidelity_figures(tmp_path: Path, repo_root: Path) -> None:
    import shutil
    import subprocess
    import sys

    for name in ("latex_bib", "latex_bare"):
        shutil.copytree(FIX / name, tmp_path / "papers" / name / "src")
    script = str(repo_root / "data_prep" / "bench_latex.py")
    run = subprocess.run(
        [sys.executable, script, str(tmp_path / "papers")], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith("latex_")}
    # columns: bib refs bare cites unres guess dropped silent
    assert rows["latex_bib"][1:9] == ["bib", "2", "0", "9", "1", "0", "1", "0"]
    assert rows["latex_bare"][1] == "-" and rows["latex_bare"][8] == "0"  # counted, so none silent
    assert "2 papers" in out and "bare references per paper" in out
    bad = subprocess.run(
        [sys.executable, script, str(tmp_path / "none")], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.strip() == f"{tmp_path / 'none'}: no <name>/src/ folders"


@pytest.mark.parametrize(
    "head", [r"\documentclass[aps,prd]{revtex4-2}", r"\documentclass{article}\bibliographystyle{unsrt}"]
)
def test_numeric_styles_number_the_bib_entries_in_citation_order(tmp_path: Path, head: str) -> None:
    import shutil

    shutil.copy(FIX / "latex_bib" / "refs.bib", tmp_path / "refs.bib")
    (tmp_path / "main.tex").write_text(
        head + "\\begin{document}\\section{Introduction}\n"
        "\\citet{PairA2019} saw it \\cite{Orr2021,vdb2018}, as \\cite{PairA2019} did \\cite{nosuchkey}.\n"
        "\\section{Conclusion} Done.\\bibliography{refs}\\end{document}\n"
    )
    aic = extract_aic(tex_path=tmp_path)
    # only the keys the .bib holds are numbered; \citet names the authors from the .bib
    assert aic.introduction == "Jönes & Brown [1] saw it [2, 3], as [1] did."
    assert aic.unresolved_citations == 1
