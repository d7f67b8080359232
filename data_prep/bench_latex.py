"""Fidelity of the LaTeX AIC route on a folder of papers: ``python data_prep/bench_latex.py PAPERS``.

``PAPERS`` holds one folder per paper, ``<name>/src/`` being its e-print tree (the layout of
``tests/data/test_aic_real.py``). For every paper the AIC sections are extracted and, inside them,
each ``\\ref``-like and citation command is watched as it is converted:

* ``refs`` / ``bare``: reference commands, and those written without a number (no ``.aux`` entry
  and, where the route counts, no counted number);
* ``cites`` / ``unres`` / ``guess``: citation commands, keys found in no ``.bbl``/``.bib``/inline
  bibliography (``unres``), keys whose author-year was guessed from the key's spelling (``guess``);
* ``dropped``: citation commands that left no text; ``silent``: those the route did not count
  (a route that records ``AIC.unresolved_citations`` counts every unresolved one);
* ``concl``: the conclusion heading taken (``-`` when none).

It prints one row per paper and the totals; the same script measures any version of the package
(``PYTHONPATH=<tree>/src``), so a change is measured against its predecessor in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from astrollama.data.aic.latex import extract_aic_latex
from astrollama.data.aic.latex_args import _arg
from astrollama.data.aic.latex_inputs import find_main_tex
from astrollama.data.aic.latex_text import _Converter
from astrollama.data.aic.rules import AIC


def _watch() -> dict[str, int]:
    """Wrap the converter's reference and citation handlers to count what they write."""
    n = {"refs": 0, "bare": 0, "cites": 0, "unres": 0, "guess": 0, "dropped": 0, "dropped_unres": 0}
    ref, cite = _Converter._ref, _Converter._cite

    def _ref(self, s, name, i, bm):  # noqa: ANN001, ANN202
        key, _ = _arg(s, i, bm)
        keys = [k.strip() for k in key.split(",") if k.strip()]
        n["refs"] += 1
        n["bare"] += not any(k in self.ctx.labels for k in keys)
        return ref(self, s, name, i, bm)

    def _cite(self, s, name, i, bm):  # noqa: ANN001, ANN202
        before = len("".join(self.out))
        j = cite(self, s, name, i, bm)
        keys = [k.strip() for k in s[i:j].rsplit("{", 1)[-1].rstrip("}").split(",") if k.strip()]
        unres = [k for k in keys if self.ctx.cite(k) is None]
        n["cites"] += 1
        n["unres"] += len(unres)
        listed = {c.lower() for c in self.ctx.cites}
        n["guess"] += sum(1 for k in keys if k.lower() not in listed and self.ctx.cite(k) is not None)
        if not "".join(self.out)[before:].strip() and name.rstrip("*") not in ("nocite", "citeyear"):
            n["dropped"] += 1
            n["dropped_unres"] += bool(unres)
        return j

    _Converter._ref, _Converter._cite = _ref, _cite
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("papers", type=Path, help="folder of <name>/src/ e-print trees")
    args = ap.parse_args(argv)
    papers = sorted(p for p in args.papers.iterdir() if (p / "src").is_dir()) if args.papers.is_dir() else []
    if not papers:
        print(f"{args.papers}: no <name>/src/ folders", file=sys.stderr)
        return 2
    counts = _watch()
    counted = "unresolved_citations" in AIC.__dataclass_fields__
    cols = ("refs", "bare", "cites", "unres", "guess", "dropped", "silent")
    print(f"{'paper':<14} {'bib':<4} " + " ".join(f"{c:>7}" for c in cols) + "  conclusion")
    total = dict.fromkeys(cols, 0)
    no_concl, t0 = 0, time.perf_counter()
    for p in papers:
        before = dict(counts)
        src = p / "src"
        bib = "bbl" if list(src.glob("*.bbl")) else ("bib" if list(src.rglob("*.bib")) else "-")
        try:
            aic = extract_aic_latex(find_main_tex(src), root=src, where=p.name)
        except Exception as e:  # noqa: BLE001 - a benchmark reports every failure and goes on
            print(f"{p.name:<14} failed: {type(e).__name__}: {e}")
            continue
        row = {c: counts[c] - before[c] for c in cols if c in counts}
        dropped_unres = counts["dropped_unres"] - before["dropped_unres"]
        row["silent"] = row["dropped"] - (dropped_unres if counted else 0)
        for c in cols:
            total[c] += row[c]
        no_concl += not aic.conclusion
        head = aic.conclusion_heading if aic.conclusion else "-"
        print(f"{p.name:<14} {bib:<4} " + " ".join(f"{row[c]:>7}" for c in cols) + f"  {head[:40]}")
    k = len(papers)
    print(f"{'total':<14} {'':<4} " + " ".join(f"{total[c]:>7}" for c in cols) + f"  {no_concl} without")
    print(
        f"{k} papers, {time.perf_counter() - t0:.1f} s: bare references per paper {total['bare'] / k:.2f}, "
        f"citations dropped {total['dropped']} (silently {total['silent']}), unresolved keys {total['unres']}, "
        f"guessed keys {total['guess']}, papers without a conclusion {no_concl}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
