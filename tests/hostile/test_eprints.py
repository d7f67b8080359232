"""Hostile LaTeX e-prints: the AIC stage records the paper as failed with one line,
reads nothing outside the paper's source directory, and neither hangs nor explodes.

Every case is an e-print source tree written here: path escapes through ``\\input``/``\\include``
(absolute, ``..``, symlinks), input fan-out and nesting, macro bombs, and inputs that are slow for
quadratic parsers (unclosed ``comment`` environments, braces, math, optional arguments).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from astrollama.data.manifest import Manifest

PID = "2401.00001"
HEAD = "\\documentclass{article}\n\\begin{document}\n\\begin{abstract}A.\\end{abstract}\n\\section{Introduction}\n"
SECRET = "SECRET-OUTSIDE-THE-EPRINT"


def _tree(src: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = src / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _fan_out(width: int, depth: int) -> dict[str, str]:
    files = {
        "main.tex": HEAD
        + "Intro."
        + "".join(f"\\input{{f1_{i}}}" for i in range(width))
        + "\n\\end{document}"
    }
    for lvl in range(1, depth + 1):
        for i in range(width):
            nxt = "".join(f"\\input{{f{lvl + 1}_{j}}}" for j in range(width)) if lvl < depth else ""
            files[f"f{lvl}_{i}.tex"] = "x " + nxt
    return files


def _outside(tmp: Path) -> Path:
    out = tmp / "outside"
    out.mkdir(exist_ok=True)
    (out / "secret.tex").write_text(SECRET)
    return out


# kind -> (files of the e-print given the outside dir, extra setup, expected reason fragment)
ESCAPES: dict[str, tuple[Callable[[Path], dict[str, str]], Callable[[Path, Path], None] | None, str]] = {
    "input-absolute": (
        lambda o: {"main.tex": HEAD + f"\\input{{{o}/secret.tex}}\n\\end{{document}}"},
        None,
        "absolute path refused",
    ),
    "input-etc-hostname": (
        lambda o: {"main.tex": HEAD + "\\input{/etc/hostname}\n\\end{document}"},
        None,
        "\\input{/etc/hostname}: absolute path refused",
    ),
    "input-no-braces": (
        lambda o: {"main.tex": HEAD + "\\input /etc/passwd\n\\end{document}"},
        None,
        "absolute path refused",
    ),
    "include-home": (
        lambda o: {"main.tex": HEAD + "\\include{~/.bashrc}\n\\end{document}"},
        None,
        "absolute path refused",
    ),
    "input-dotdot": (
        lambda o: {"main.tex": HEAD + "\\input{../outside/secret}\n\\end{document}"},
        None,
        "\\input{../outside/secret}: path leaves the source directory",
    ),
    "input-deep-dotdot": (
        lambda o: {"main.tex": HEAD + "\\input{../../../../etc/os-release}\n\\end{document}"},
        None,
        "path leaves the source directory",
    ),
    "input-dotdot-in-subdir": (
        lambda o: {
            "main.tex": HEAD + "\\input{sub/a}\n\\end{document}",
            "sub/a.tex": "\\input{sub/../../../outside/secret}",
        },
        None,
        "path leaves the source directory",
    ),
    "usepackage-dotdot": (
        lambda o: {
            "main.tex": "\\documentclass{article}\\usepackage{../outside/secret}"
            + HEAD[len("\\documentclass{article}") :]
            + "x\\end{document}"
        },
        None,
        "path leaves the source directory",
    ),
    "symlink-file-out": (
        lambda o: {"main.tex": HEAD + "\\input{link}\n\\end{document}"},
        lambda src, o: os.symlink(o / "secret.tex", src / "link.tex"),
        "\\input{link}: symlink leaves the source directory",
    ),
    "symlink-dir-out": (
        lambda o: {"main.tex": HEAD + "\\input{d/secret}\n\\end{document}"},
        lambda src, o: os.symlink(o, src / "d"),
        "symlink leaves the source directory",
    ),
    "input-fan-out-8x10": (lambda o: _fan_out(8, 10), None, "nesting deeper than 8"),
    "input-fan-out-8x5": (lambda o: _fan_out(8, 5), None, "more than 256 files read (input fan-out)"),
    "input-nesting-20": (
        lambda o: {
            "main.tex": HEAD + "\\input{n1}\\end{document}",
            **{f"n{k}.tex": f"\\input{{n{k + 1}}}" for k in range(1, 21)},
        },
        None,
        "nesting deeper than 8",
    ),
    "input-huge": (
        lambda o: {
            "main.tex": HEAD + "\\input{a}\\input{a}\\input{a}\\end{document}",
            "a.tex": "word " * 700_000,
        },
        None,
        "source larger than 8000000 characters",
    ),
    "def-bomb": (
        lambda o: {"main.tex": "\\documentclass{article}\\def\\a{\\a\\a}" + HEAD[23:] + "\\a\\end{document}"},
        None,
        "macros: nesting deeper than 32 (recursive definition)",
    ),
    "newcommand-recursive": (
        lambda o: {
            "main.tex": "\\documentclass{article}\\newcommand{\\b}[1]{\\b{#1}\\b{#1}}"
            + HEAD[23:]
            + "\\b{x}\\end{document}"
        },
        None,
        "macros: nesting deeper than 32",
    ),
    "def-mutual": (
        lambda o: {
            "main.tex": "\\documentclass{article}\\def\\x{\\y}\\def\\y{\\x}"
            + HEAD[23:]
            + "\\x\\end{document}"
        },
        None,
        "macros: nesting deeper than 32",
    ),
    "def-wide": (
        lambda o: {
            "main.tex": "\\documentclass{article}"
            + "".join(f"\\def\\m{k}{{" + f"\\m{chr(ord(k) + 1)}" * 4 + "}" for k in "abcdefghijklmno")
            + HEAD[23:]
            + "\\ma\\end{document}"
        },
        None,
        "macros: expansion exceeds 200000 expansions",
    ),
}


@pytest.fixture
def aic_failure(run_astrollama):
    """``check(tmp_path, files, setup, expect)``: ``data aic`` on the e-print records a one-line
    failure holding ``expect``, writes no AIC file, and no text from outside the tree gets in."""

    def check(tmp_path: Path, files: dict[str, str], setup, expect: str, budget_s: float = 10.0) -> str:
        root = tmp_path / "root"
        outside = _outside(tmp_path)
        src = root / "src" / PID
        src.mkdir(parents=True)
        _tree(src, files)
        if setup:
            setup(src, outside)
        m = Manifest(root)
        m.upsert_papers([{"id": PID, "title": "Hostile", "abstract": "A."}])
        m.record("download_src", PID, "ok", outputs={"src": src})
        t0 = time.perf_counter()
        r = run_astrollama(["data", "aic", "--root", root, "--source", "latex"])
        took = time.perf_counter() - t0
        shown = f"exit {r.code}\n{r.stderr[-2000:]}"
        assert r.code == 0 and "Traceback" not in r.stderr + r.stdout, shown
        assert took < budget_s, f"took {took:.1f}s"
        rec = Manifest(root).status("aic")[PID]
        assert rec.status == "failed", shown
        assert expect in rec.error and "\n" not in rec.error, rec.error
        assert f"src/{PID}/main.tex: " in rec.error, rec.error  # <file>: <field>: <problem>
        assert not list((root / "aic").rglob("*.json")) if (root / "aic").exists() else True
        written = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and "src" not in p.parts]
        assert written and SECRET not in json.dumps([str(p.read_bytes()) for p in written])
        return rec.error

    return check


@pytest.mark.parametrize("kind", sorted(ESCAPES))
def test_hostile_eprint_is_a_recorded_failure(kind, tmp_path, aic_failure):
    files, setup, expect = ESCAPES[kind]
    aic_failure(tmp_path, files(tmp_path / "outside"), setup, expect)


def test_data_aic_file_refuses_a_hostile_eprint_with_one_line(tmp_path, refuse):
    src = tmp_path / "eprint"
    _tree(src, {"main.tex": HEAD + "\\input{../../../../etc/os-release}\n\\end{document}"})
    refuse(
        ["data", "aic", "--file", src],
        tmp_path,
        expect=["main.tex", "\\input{../../../../etc/os-release}", "path leaves the source directory"],
    )


def test_find_main_tex_ignores_symlinks_out(tmp_path):
    from astrollama.data.aic import find_main_tex

    outside = _outside(tmp_path)
    (outside / "big.tex").write_text("\\documentclass{article}" + "x" * 100_000)
    src = tmp_path / "src"
    _tree(src, {"main.tex": HEAD + "Intro.\\end{document}"})
    os.symlink(outside / "big.tex", src / "big.tex")
    os.symlink(outside, src / "dir")
    assert find_main_tex(src) == src / "main.tex"


# Inputs that make a quadratic parser hang (an unclosed \begin{comment} of ~1 MB once hung):
# each must finish well within the budget and still give a result (or a clean AIC error).
SLOW = {
    "unclosed-comment-1mb": (HEAD + "Intro text.\n\\begin{comment}\n" + "a" * 1_000_000, 1.0),
    "many-unclosed-comments": (HEAD + "Intro text.\n" + "\\begin{comment}x" * 60_000, 1.0),
    # ~0.6-1.2 MB each; ~0.1-1 s on an idle core, the budget allows for a loaded CI machine
    "unclosed-braces": (HEAD + "Intro text. " + "a{" * 300_000, 10.0),
    "unclosed-math": (HEAD + "Intro text. " + "$a" * 300_000, 10.0),
    "unclosed-optional-args": (HEAD + "Intro text. " + "\\cite[" * 150_000, 10.0),
    "unclosed-sections": (HEAD + "Intro text. " + "\\section{" * 60_000, 10.0),
    "nested-section-titles": (HEAD + "Intro text. " + "\\section{\\emph{" * 30_000, 10.0),
    "unclosed-floats": (HEAD + "Intro text. " + "\\begin{figure}" * 60_000, 10.0),
    "unclosed-defs": ("\\documentclass{article}" + "\\def\\q{" * 60_000 + HEAD[23:] + "Intro text.", 10.0),
    "refs-without-aux": (HEAD + "Intro text. " + "Fig.~\\ref{a} and " * 40_000 + "\\end{document}", 10.0),
    # label counting: a flood of unclosed environments, then rows and labels inside them
    "unclosed-envs-with-labels": (
        HEAD + "Intro text. \\begin{align}" + "\\begin{cases}" * 60_000 + "x\\\\\\label{a}" * 60_000,
        10.0,
    ),
}


@pytest.mark.parametrize("kind", sorted(SLOW))
def test_adversarial_source_is_parsed_in_linear_time(kind, tmp_path):
    from astrollama.data.aic import AICError, extract_aic

    text, budget = SLOW[kind]
    src = tmp_path / "eprint"
    _tree(src, {"main.tex": text})
    t0 = time.perf_counter()
    try:
        out = extract_aic(tex_path=src).text()
    except AICError as exc:  # junk around a short introduction may leave no section: a clean refusal
        out = str(exc)
        assert "neither an Introduction nor a Conclusion" in out
    took = time.perf_counter() - t0
    assert took < budget, f"{kind}: {took:.2f}s"
    assert "Intro text." in out or "neither" in out


# A hostile .bib (the e-print ships no .bbl): unclosed braces, a huge file of which three entries
# are cited, an exponential @string chain. Each is read quickly or skipped; the paper goes on.
BIBS = {
    "unclosed-braces": "@article{a0, author = {" + "x{" * 300_000,
    "many-entries": "".join(
        f"@article{{a{i}, author = {{Ames, A}}, title = {{T{i}}}, year = 2000}}\n" for i in range(40_000)
    ),
    "string-chain": '@string{s0 = "x"}'
    + "".join(f"@string{{s{i} = s{i - 1} # s{i - 1}}}" for i in range(1, 80))
    + "@article{a1, author = s79, year = 2001}",
}


@pytest.mark.parametrize("kind", sorted(BIBS))
def test_hostile_bib_is_read_in_bounded_time(kind, tmp_path):
    from astrollama.data.aic import extract_aic

    src = tmp_path / "eprint"
    _tree(
        src,
        {
            "main.tex": HEAD + "Intro \\citep{a0,a1,a2}.\\bibliography{refs}\\end{document}",
            "refs.bib": BIBS[kind],
        },
    )
    t0 = time.perf_counter()
    intro = extract_aic(tex_path=src).introduction
    assert time.perf_counter() - t0 < 5.0, kind
    assert intro.startswith("Intro") and "\\" not in intro
    if kind == "many-entries":  # only the three cited entries, a/b/c by title as BibTeX sorts
        assert intro == "Intro (Ames 2000a; Ames 2000b; Ames 2000c)."
