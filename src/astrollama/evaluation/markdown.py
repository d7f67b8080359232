"""``report.md``: the report's data (``report.json``) as GitHub markdown."""

from __future__ import annotations

from pathlib import Path

from astrollama import paper
from astrollama.evaluation.results import ModelResults


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _cite(source: str | None) -> str:
    return f"[{source}]" if source else ""


def _unverified(*refs: dict) -> str:
    return "" if all(r["verified"] for r in refs) else " (to confirm)"


def _mcq_cell(row: dict) -> str:
    if row["mcq_accuracy"] is None:
        return "n/a (no key)" if row["mcq_n"] else "not run"
    return f"**{_pct(row['mcq_accuracy'])}** [{_pct(row['mcq_ci_low'])}, {_pct(row['mcq_ci_high'])}] (n={row['mcq_n']})"


def _ppl_cell(row: dict) -> str:
    if row["perplexity"] is None:
        return "not run"
    if row["ppl_ci_low"] is None:
        return f"**{row['perplexity']:.2f}**"
    return f"**{row['perplexity']:.2f}** [{row['ppl_ci_low']:.2f}, {row['ppl_ci_high']:.2f}]"


def _pub_mcq_cell(row: dict) -> str:
    if row["published_mcq"] is None:
        return "-"
    src = row["published_mcq_source"]
    flag = "" if paper.MCQ_SCORES[row["published_model"]].verified else " (to confirm)"
    return f"{row['published_mcq']:.1f} ({row['published_model']}) {_cite(src)}{flag}"


def _pub_ppl_cell(row: dict) -> str:
    if row["published_perplexity"] is None:
        return "-"
    return f"{row['published_perplexity']} ({row['published_perplexity_model']}) {_cite(row['published_perplexity_source'])}"


def render_markdown(data: dict, results: list[ModelResults], png: str, sim_png: str | None) -> str:
    """The human-readable report (GitHub markdown)."""
    rows = data["models"]
    L = _render_models(data, rows, png)
    if data["changes"]:
        L += _render_changes(data["changes"])
    if data["stages"]:
        L += _render_stages(data, rows)
    L += _render_reference(data)
    if data["embeddings"]:
        L += _render_embeddings(data["embeddings"], sim_png)
    if data["completions"]:
        L += _render_completions(data["completions"])
    L += _render_settings(results)
    L += _render_references(data, rows)
    return "\n".join(L) + "\n"


def _render_models(data: dict, rows: list[dict], png: str) -> list[str]:
    """Title, how the numbers were measured, the toy-scale warning, ours beside published."""
    toy = any(r["scale"] == "toy" for r in rows)
    L: list[str] = ["# AstroLLaMA reproduction report", ""]
    L += [f"Generated {data['generated']} by `{data['command']}`.", ""]
    L += [
        "Our numbers: accuracy in percent on the MCQ file scored (token method, next-token "
        "probabilities of A-D), with a percentile-bootstrap 95% interval over questions; held-out "
        "perplexity (token-weighted, BOS never scored) with a 95% interval from resampling "
        "documents. Published numbers come from `astrollama.paper`, each with its source (see "
        "References).",
        "",
    ]
    if toy:
        L += [
            "> **Toy scale.** The `toy` models here are small models trained on a laptop-sized corpus and "
            "scored on a small question sample. The published column is the PAPER-SCALE reference (7B-70B models, "
            f"{paper.BENCHMARK['n_questions'].value:,} questions); it is not comparable in absolute "
            "terms. Compare the direction and size of the change from base to trained.",
            "",
        ]
    L += [
        "## Reproduced beside published",
        "",
        "| model | role | scale | MCQ accuracy, ours [95% CI] | MCQ accuracy, published | "
        "held-out perplexity, ours [95% CI] | perplexity, published |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        L.append(
            f"| {r['label']} | {r['role']} | {r['scale']} | {_mcq_cell(r)} | {_pub_mcq_cell(r)} | "
            f"{_ppl_cell(r)} | {_pub_ppl_cell(r)} |"
        )
    L += ["", *_scoring_lines(data, rows), "", f"![published vs reproduced]({png})", ""]
    return L


def _render_changes(changes: list[dict]) -> list[str]:
    """Base -> trained: ours (paired interval) beside the published change."""
    title = "Change from continued pre-training" if len(changes) == 1 else "Change from the base model"
    L = [f"## {title}", "", "| metric | ours | published (paper scale) |", "|---|---|---|"]
    for ch in changes:
        if "mcq_delta" in ch or "published_mcq_delta" in ch:
            ours = "-"
            if "mcq_delta" in ch:
                d = ch["mcq_delta"]
                ours = (
                    f"{ch['base']} -> {ch['trained']}: **{d['value']:+.1f}** points "
                    f"[{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}] (paired bootstrap, n={d['n']})"
                )
            pub = "-"
            if "published_mcq_delta" in ch:
                p = ch["published_mcq_delta"]
                pub = (
                    f"{p['base_model']} {p['base']['value']} {_cite(p['base']['source'])} -> "
                    f"{p['trained_model']} {p['trained']['value']} {_cite(p['trained']['source'])}: "
                    f"{p['value']:+.1f} points{_unverified(p['base'], p['trained'])}"
                )
            L.append(f"| MCQ accuracy | {ours} | {pub} |")
        pc = ch["published_ppl_change"]
        ours = "-"
        if "ppl_change" in ch:
            c = ch["ppl_change"]
            ours = f"{c['base']:.2f} -> {c['trained']:.2f}: **{100 * c['relative']:+.1f}%**"
        pub = (
            f"LLaMA-2-7B {pc['base']['value']} -> AstroLLaMA-1 {pc['trained']['value']} "
            f"{_cite(pc['base']['source'])}{_unverified(pc['base'], pc['trained'])}; "
            f'"~{100 * pc["reduction"]["value"]:.0f}% lower" {_cite(pc["reduction"]["source"])}'
            f"{_unverified(pc['reduction'])}"
        )
        L.append(f"| held-out perplexity | {ours} | {pub} |")
    L.append("")
    return L


def _render_reference(data: dict) -> list[str]:
    """The published paper-scale scores of every recipe and AstroLLaMA-1's numbers."""
    L = [
        "## Paper-scale reference (published; not comparable in absolute terms with a toy run)",
        "",
        "AstroMLab-1 benchmark accuracy (%), token method for base models.",
        "",
        "| recipe | base model | base | trained model | trained | change |",
        "|---|---|---|---|---|---|",
    ]
    for ref in data["reference"]:
        L.append(
            f"| `{ref['recipe']}` | {ref['base_model']} | {ref['base']['value']} {_cite(ref['base']['source'])}"
            f"{_unverified(ref['base'])} | {ref['trained_model']} | "
            f"{ref['trained']['value']} {_cite(ref['trained']['source'])}{_unverified(ref['trained'])} | "
            f"{ref['delta']:+.1f} |"
        )
    a1 = data["astrollama1"]
    L += [
        "",
        "AstroLLaMA-1 (LLaMA-2-7B + LoRA on astro-ph abstracts):",
        "",
        f"- held-out perplexity: LLaMA-2-7B {a1['perplexity_base']['value']} -> AstroLLaMA-1 "
        f"{a1['perplexity_astrollama']['value']} {_cite(a1['perplexity_base']['source'])}"
        f"{_unverified(a1['perplexity_base'], a1['perplexity_astrollama'])}; "
        f'"~{100 * a1["perplexity_reduction"]["value"]:.0f}% lower" {_cite(a1["perplexity_reduction"]["source"])}'
        f"{_unverified(a1['perplexity_reduction'])}",
        f"- MMLU astronomy (lm-eval, 0-shot): LLaMA-2-7B {a1['mmlu_astronomy_llama2_7b']['value']} -> "
        f"AstroLLaMA-1 {a1['mmlu_astronomy_astrollama']['value']} {_cite(a1['mmlu_astronomy_astrollama']['source'])}"
        f"{_unverified(a1['mmlu_astronomy_llama2_7b'], a1['mmlu_astronomy_astrollama'])}",
        "",
    ]
    return L


def _render_embeddings(emb: dict, sim_png: str | None) -> list[str]:
    L = [
        "## Embedding similarity",
        "",
        f"Pairwise cosine similarity of mean last-layer embeddings (BOS excluded) over "
        f"{emb['n_documents']} held-out documents ({next(iter(emb['models'].values()))['n_pairs']} pairs). "
        "A wider, lower distribution separates abstracts better (AstroLLaMA-1's reading).",
        "",
        "| model | mean | std | p5 | p50 | p95 |",
        "|---|---|---|---|---|---|",
    ]
    for label, m in emb["models"].items():
        L.append(
            f"| {label} | {m['mean']:.4f} | {m['std']:.4f} | {m['p5']:.4f} | {m['p50']:.4f} | {m['p95']:.4f} |"
        )
    L += ["", f"![similarity histogram]({sim_png})", ""]
    return L


def _render_completions(completions: list[dict]) -> list[str]:
    c0 = completions[0]
    s = c0["settings"]
    L = [
        "## Completions",
        "",
        f"Prompt (seed {s['seed']}, temperature {s['temperature']}, top-p {s['top_p']}, "
        f"{s['max_new_tokens']} new tokens at most):",
        "",
        f"> {c0['prompt']}",
        "",
    ]
    for c in completions:
        text = c["completion"].strip().replace("\n", " ")
        L += [f"**{c['label']}**: ...{text}", ""]
    return L


def _render_settings(results: list[ModelResults]) -> list[str]:
    L = ["## Settings", ""]
    for r in results:
        ms = (r.mcq or {}).get("settings") or {}
        ps = (r.ppl or {}).get("settings") or {}
        L.append(
            f"- **{r.label}** ({r.meta.get('model')}): MCQ template `{_template_name(ms)}`, letter token "
            f"`{_letter_rule(ms)}`, dtype "
            f"{ms.get('dtype', 'n/a')}, batch {ms.get('batch_size', 'n/a')}; perplexity block "
            f"{ps.get('block_size', 'n/a')}, stride {ps.get('stride', 'n/a')}, "
            f"{(r.ppl or {}).get('n_tokens', 'n/a')} tokens / {(r.ppl or {}).get('n_documents', 'n/a')} docs"
        )
    return L


def _render_references(data: dict, rows: list[dict]) -> list[str]:
    L = ["", "## References", ""]
    used = sorted(
        {s for r in rows for s in (r["published_mcq_source"], r["published_perplexity_source"]) if s}
        | {x[k]["source"] for x in data["reference"] for k in ("base", "trained")}
        | {v["source"] for v in data["astrollama1"].values()}
        | {x["source"] for c in data["stage_reference"] for x in c["stages"].values() if x}
    )
    for key in used:
        src = paper.SOURCES[key]
        L.append(f"- [{key}] {src.title}. {src.url}")
    return L


def _points(d: dict | None) -> str:
    if not d or "mcq" not in d:
        return "-"
    m = d["mcq"]
    return f"{m['value']:+.1f} [{m['ci95'][0]:+.1f}, {m['ci95'][1]:+.1f}]"


def _rel(d: dict | None) -> str:
    return "-" if not d or "ppl_relative" not in d else f"{100 * d['ppl_relative']:+.1f}%"


def _render_stages(data: dict, rows: list[dict]) -> list[str]:
    """The stage table (ours) and the published per-stage chains beside it."""
    first = data["stages"][0]["stage"]
    L = [
        "## Stage by stage",
        "",
        f"The models in the order given, each stage from the one before. MCQ changes in percentage points "
        f"with a paired bootstrap 95% interval over the questions both answered; perplexity changes "
        f"relative. The first stage ({first}) is the reference.",
        "",
        "| stage | model | MCQ accuracy [95% CI] | MCQ vs previous stage | MCQ vs "
        f"{first} | held-out perplexity [95% CI] | perplexity vs previous | perplexity vs {first} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for st, r in zip(data["stages"], rows, strict=True):
        L.append(
            f"| {st['stage']} | {st['label']} | {_mcq_cell(r)} | {_points(st.get('vs_previous'))} | "
            f"{_points(st.get('vs_first'))} | {_ppl_cell(r)} | {_rel(st.get('vs_previous'))} | "
            f"{_rel(st.get('vs_first'))} |"
        )
    L += [
        "",
        'Published, stage by stage (AstroMLab-1 accuracy in %, paper scale; "-": no published score '
        "for that stage; base models by the token method, chat and merged models from their answers):",
        "",
        "| chain | " + " | ".join({"cpt": "CPT", "sft": "SFT"}.get(s, s) for s in paper.STAGES) + " |",
        "|---|" + "---|" * len(paper.STAGES),
    ]
    for c in data["stage_reference"]:
        cells = [
            ("-" if x is None else f"{x['model']} {x['value']} {_cite(x['source'])}{_unverified(x)}")
            for x in (c["stages"].get(s) for s in paper.STAGES)
        ]
        L.append(f"| {c['chain']} | " + " | ".join(cells) + " |")
    L += ["", "![stage by stage](stages.png)", ""]
    return L


def _letter_rule(settings: dict | None) -> str:
    lt = (settings or {}).get("letter_token")
    if isinstance(lt, dict):
        return str(lt.get("rule"))
    return (
        "prompt (recorded before the option existed)" if (settings or {}).get("letter_token_ids") else "n/a"
    )


def _scoring_lines(data: dict, rows: list[dict]) -> list[str]:
    """How the MCQ was scored (template, letter-token rule) and which published row each model
    stands beside, and why (``published_basis``)."""
    scoring = sorted(
        {(_template_name(s or {}), _letter_rule(s)) for s in data["mcq_settings"].values() if s is not None}
    )
    out = [
        "MCQ scoring: "
        + "; ".join(f"template `{t}`, letter token `{rule}`" for t, rule in scoring)
        + " (`--letter-token`: `prompt` = the letter's token as it follows the prompt, `reference` = "
        "`tokenizer.encode(letter, add_special_tokens=False)[-1]`; docs/eval-mcq.md)."
        if scoring
        else "MCQ: not scored."
    ]
    paired = [
        f"{r['stage']} -> {r['published_model']} ({r['published_basis']})"
        for r in rows
        if r["published_model"]
    ]
    if paired:
        out.append("Published row beside each model: " + "; ".join(paired) + ".")
    return out


def _template_name(settings: dict) -> str:
    t = settings.get("template")
    if isinstance(t, dict):
        return Path(str(t.get("path") or t.get("name") or "?")).name
    return Path(str(t)).name if t else "n/a"
