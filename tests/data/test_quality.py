"""``astrollama data quality`` and the quality totals in ``data build``'s stats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from astrollama.cli import main
from astrollama.data.build import build_variant
from astrollama.data.build_inputs import Doc
from astrollama.data.manifest import Manifest
from astrollama.data.quality import corpus_quality, prose, run_quality, text_quality

FIX = Path(__file__).parent / "fixtures" / "aic"


def test_text_quality_counts_what_the_issue_names() -> None:
    text = (
        "Shown by , with $\\alpha_{\\rm x}$ and \\[ \\frac{a}{b} \\] kept (e.g.,) and in . "
        "See \\S and \\emph{raw} \\cite{k}.\x02 Soft\u00adhyphen \\begin{equation}\\beta\\end{equation}"
    )
    q = text_quality(text)
    assert q["macros"] == 3  # \S, \emph, \cite outside math; math macros do not count
    assert q["dangling"] == 4  # "by ,", "(e.g.,)", "in .", "\S"
    assert q["control"] == 2  # \x02 and the soft hyphen
    assert q["macros_per_100k"] == round(3e5 / len(text), 1)
    ok = text_quality(
        "Smith et al. (2020) showed, by e.g. modelling, that $x$ (see Section 3) holds in 2020."
    )
    assert (ok["macros"], ok["dangling"], ok["control"]) == (0, 0, 0)


def test_prose_is_linear_on_unclosed_math() -> None:
    assert prose("a $b$ c \\$5 d $$e") == "a x c \\$5 d x"
    big = "$" + "a" * 1_000_000 + "\\[" * 100_000
    assert prose(big) == "x"


def test_corpus_quality_totals() -> None:
    t = corpus_quality(["\\foo bar", "so by , baz"])
    assert t == {
        "documents": 2,
        "sampled": 2,
        "chars": 19,
        "macros": 1,
        "dangling": 1,
        "control": 0,
        "macros_per_100k": round(1e5 / 19, 1),
    }
    s = corpus_quality([f"d{i} \\x" for i in range(10)], max_docs=4)  # evenly spaced sample
    assert (s["documents"], s["sampled"], s["macros"]) == (10, 4, 4)


def _root_with_both_routes(root: Path) -> Manifest:
    m = Manifest(root)
    m.upsert_papers(
        [
            {"id": "2401.00001", "title": "Tidal tails", "abstract": "Meta."},
            {"id": "2401.00002", "title": "Broken", "abstract": "Meta."},
        ]
    )
    src = root / "src" / "2401.00001"
    shutil.copytree(FIX / "latex_journal", src)
    m.record("download_src", "2401.00001", "ok", outputs={"src": src})
    mmd = root / "ocr" / "2401.00001.mmd"
    mmd.parent.mkdir(parents=True)
    mmd.write_text(
        "# Abstract\n\nWe model dwarfs.\n\n# 1 Introduction\n\nTidal tails trace orbits "
        "(Smith et al., 2020).\n\n# 2 Conclusions\n\nThin tails.\n"
    )
    m.record("ocr", "2401.00001", "ok", outputs={"mmd": mmd})
    bad = root / "src" / "2401.00002"
    bad.mkdir(parents=True)
    (bad / "main.tex").write_text(
        "\\documentclass{article}\\begin{document}\\input{/etc/hostname}\\end{document}"
    )
    m.record("download_src", "2401.00002", "ok", outputs={"src": bad})
    return m


def test_run_quality_compares_both_routes_and_writes_json(tmp_path: Path) -> None:
    _root_with_both_routes(tmp_path)
    report = run_quality(tmp_path, progress=False)
    saved = json.loads((tmp_path / "quality" / "quality.json").read_text())
    assert saved == report
    rows = {(r["id"], r["route"]): r for r in report["papers"]}
    latex, mmd = rows[("2401.00001", "latex")], rows[("2401.00001", "mmd")]
    assert latex["missing"] == [] and latex["macros"] == 0 and latex["dangling"] == 0
    assert mmd["intro_vs_latex"] == round(mmd["intro_chars"] / latex["intro_chars"], 3) < 0.5
    assert "absolute path refused" in rows[("2401.00002", "latex")]["error"]
    tot = report["total"]
    assert tot["latex"]["papers"] == 2 and tot["latex"]["failed"] == 1 and tot["mmd"]["with_both_routes"] == 1


def test_quality_cli_prints_the_table(tmp_path: Path, capsys) -> None:
    _root_with_both_routes(tmp_path)
    out = tmp_path / "q.json"
    assert main(["data", "quality", "--root", str(tmp_path), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| 2401.00001 | latex | - |" in table and "failed: " in table and "**total**" in table
    assert json.loads(out.read_text())["total"]["latex"]["failed"] == 1


def test_build_stats_carry_the_quality_totals(tmp_path: Path, tiny_model: Path) -> None:
    docs = [
        Doc(f"2401.{i:05d}", " ".join(f"d{i}w{j}" for j in range(40)) + " \\raw macro.") for i in range(10)
    ]
    stats = build_variant("aic", docs, tmp_path, tokenizer_dir=tiny_model, progress=False)
    assert stats["quality"]["documents"] == 10 and stats["quality"]["macros"] == 10
    assert "raw LaTeX macros per 100k characters" in (tmp_path / "aic" / "stats.md").read_text()


def test_quality_on_a_root_without_manifest_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    assert main(["data", "quality", "--root", str(tmp_path)]) == 2
    assert "papers.jsonl: not found: no manifest" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
