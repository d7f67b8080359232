"""The report's figures: ``report.png`` (published vs reproduced), ``stages.png`` (a staged run)
and ``similarity.png`` (embedding similarity per model).

Each figure has a ``*_figure`` function that returns the matplotlib figure (the tests draw it and
check its layout: no two texts overlap, whatever the model names) and a ``plot_*`` function that
writes the PNG atomically. Layout rules:

* **Model names of any length.** A bar group or a stage is labelled on the axis by a short key (the
  run's stage name, e.g. ``CPT``, when it is short and unique, else ``M1``, ``M2`` ...); the key's
  full label, wrapped, is written under the figure (:func:`short_keys`).
* **Published bars** carry their value on top and the published model's name inside the bar,
  vertical, so neighbouring names cannot run into each other; each sits beside the row it is
  paired with in ``report.json`` (``published_model`` and ``published_basis``).
* **Similarity**: one panel per model on shared axes (no histogram hides another) and a panel of
  the cumulative distributions of all models, where every curve stays visible.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from astrollama import paper
from astrollama.io import save_png

KEY_MAX = 10  # a stage name longer than this is replaced by M1, M2, ... on the axis
WRAP = 110  # characters per line of the key under a figure
COLORS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def short_keys(rows: Sequence[dict]) -> list[str]:
    """Axis keys: each row's stage name when every one is short and they are unique, else M1..Mn."""
    stages = [str(r.get("stage") or "") for r in rows]
    if all(0 < len(s) <= KEY_MAX for s in stages) and len(set(stages)) == len(stages):
        return stages
    return [f"M{i + 1}" for i in range(len(rows))]


def key_lines(keys: Sequence[str], rows: Sequence[dict]) -> str:
    """``key: full label (role, scale)`` per row, wrapped at :data:`WRAP` characters."""
    out = []
    for k, r in zip(keys, rows, strict=True):
        text = f"{k}: {r['label']} ({r['role']}, {r['scale']})"
        out += textwrap.wrap(text, WRAP, subsequent_indent="    ", break_long_words=True)
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# report.png


def _bars(ax, x, w, ours, lo, hi, pub, pub_names, ylabel, title, chance=None) -> None:
    have_pub = any(v is not None for v in pub)
    s = w / 2 if have_pub else 0.0  # no published bars: centre ours
    err = np.array(
        [
            [0 if v is None or a is None else v - a for v, a in zip(ours, lo, strict=True)],
            [0 if v is None or b is None else b - v for v, b in zip(ours, hi, strict=True)],
        ]
    )
    if have_pub:
        ax.bar(
            x - w / 2,
            [np.nan if v is None else v for v in pub],
            w,
            color="lightgray",
            edgecolor="black",
            hatch="//",
            label="published (paper scale)",
        )
    ax.bar(
        x + s,
        [np.nan if v is None else v for v in ours],
        w,
        yerr=err,
        capsize=4,
        color="tab:blue",
        label="reproduced (ours, 95% CI)",
    )
    top = max([v for v in (*pub, *hi, *ours) if v is not None] or [1.0])
    for i, (p, name) in enumerate(zip(pub, pub_names, strict=True)):
        if p is not None:
            ax.annotate(
                f"{p:g}", (x[i] - w / 2, p), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                textcoords="offset points",
            )  # fmt: skip
            ax.text(
                x[i] - w / 2,
                0.03 * top,
                name,
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
                bbox={
                    "boxstyle": "square,pad=0.15",
                    "facecolor": "white",
                    "edgecolor": "none",
                    "alpha": 0.85,
                },
            )
        elif have_pub:
            ax.annotate(
                "n/a", (x[i] - w / 2, 0), ha="center", va="bottom", fontsize=7, color="gray", xytext=(0, 2),
                textcoords="offset points",
            )  # fmt: skip
    for i, (v, h) in enumerate(zip(ours, hi, strict=True)):
        if v is not None:
            ax.annotate(
                f"{v:.1f}", (x[i] + s, max(v, h or v)), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                textcoords="offset points",
            )  # fmt: skip
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", linewidth=1, label=f"chance ({chance}%)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def report_figure(rows: list[dict]):
    """Published vs reproduced bars: MCQ accuracy (left) and held-out perplexity (right)."""
    plt = _pyplot()
    keys = short_keys(rows)
    n = len(rows)
    legend_text = key_lines(keys, rows)
    n_key_lines = legend_text.count("\n") + 1 if legend_text else 0
    width = max(11.0, 1.6 * n + 3)
    height = 4.8 + 0.16 * n_key_lines
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(width, height), dpi=120)
    x = np.arange(n)
    w = 0.38
    pct = [None if r["mcq_accuracy"] is None else 100 * r["mcq_accuracy"] for r in rows]
    _bars(
        ax1,
        x,
        w,
        pct,
        [None if r["mcq_ci_low"] is None else 100 * r["mcq_ci_low"] for r in rows],
        [None if r["mcq_ci_high"] is None else 100 * r["mcq_ci_high"] for r in rows],
        [r["published_mcq"] for r in rows],
        [r["published_model"] for r in rows],
        "accuracy (%)",
        "Astronomy MCQ accuracy",
        chance=25,
    )
    ax1.set_ylim(0, 105)
    _bars(
        ax2,
        x,
        w,
        [r["perplexity"] for r in rows],
        [r["ppl_ci_low"] for r in rows],
        [r["ppl_ci_high"] for r in rows],
        [r["published_perplexity"] for r in rows],
        [r["published_perplexity_model"] for r in rows],
        "perplexity (lower is better)",
        "Held-out perplexity",
    )
    if all(r["published_perplexity"] is None for r in rows):
        a1 = paper.ASTROLLAMA1
        ax2.text(
            0.5,
            0.97,
            f"published reference (AstroLLaMA-1, 7B): {a1['perplexity_base'].value} -> "
            f"{a1['perplexity_astrollama'].value}, ~{100 * a1['perplexity_reduction'].value:.0f}% lower",
            transform=ax2.transAxes,
            ha="center",
            va="top",
            fontsize=7,
            color="dimgray",
        )
        ax2.set_ylim(0, 1.2 * max((r["ppl_ci_high"] or r["perplexity"] or 0) for r in rows) or 1)
    for ax in (ax1, ax2):
        ax.set_xticks(x, keys, fontsize=8)
        ax.set_xlim(-0.6, n - 0.4)
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    bottom = 0.07
    if legend_text:
        fig.text(0.01, 0.075, legend_text, ha="left", va="bottom", fontsize=7, family="monospace")
        bottom = 0.09 + 0.16 * n_key_lines / height
    if any(r["scale"] == "toy" for r in rows):
        fig.suptitle(
            "Published numbers are paper-scale references (7B-70B models); toy models are not "
            "comparable in absolute terms",
            fontsize=9,
            color="dimgray",
        )
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def plot_report(rows: list[dict], path: str | os.PathLike[str]) -> Path:
    """Write :func:`report_figure` to ``path`` (PNG, atomically)."""
    return save_png(report_figure(rows), path)


# ------------------------------------------------------------------------------------------------
# stages.png


def stages_figure(rows: list[dict], chains: list[dict]):
    """Ours stage by stage (MCQ accuracy with 95% error bars, left; perplexity, right), with the
    published per-stage chains (grey, paper scale) on the accuracy panel."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 5.2), dpi=120)
    x = np.arange(len(rows))
    names = [r["stage"] for r in rows]
    keys = short_keys(rows)

    def line(ax, vals, lo, hi, fmt):
        v = np.array([np.nan if a is None else a for a in vals], dtype=float)
        err = np.array(
            [
                [0 if a is None or b is None else a - b for a, b in zip(vals, lo, strict=True)],
                [0 if a is None or b is None else b - a for a, b in zip(vals, hi, strict=True)],
            ]
        )
        ax.errorbar(x, v, yerr=err, marker="o", capsize=4, color="tab:blue", label="ours (95% CI)")
        for i, a in enumerate(vals):
            if a is not None:
                ax.annotate(fmt.format(a), (x[i], a), xytext=(5, 3), textcoords="offset points", fontsize=8)

    def scaled(key, k=1.0):
        return [None if r[key] is None else k * r[key] for r in rows]

    line(ax1, scaled("mcq_accuracy", 100), scaled("mcq_ci_low", 100), scaled("mcq_ci_high", 100), "{:.1f}")
    # a published chain's stages sit at our stages of the same name (base, cpt, sft, merged)
    pos = {str(n).lower(): i for i, n in enumerate(names)}
    for k, c in enumerate(chains):
        pts = [(pos[s], x_["value"]) for s, x_ in c["stages"].items() if x_ and s in pos]
        if pts:
            px, py = zip(*pts, strict=True)
            ax1.plot(
                px,
                py,
                linestyle="--",
                marker="s^Dv"[k % 4],
                color="gray",
                alpha=0.8,
                label=f"published: {c['chain']}",
            )
    ax1.axhline(25, color="gray", linestyle=":", linewidth=1, label="chance (25%)")
    ax1.set_ylim(0, 100)
    ax1.set_ylabel("MCQ accuracy (%)")
    ax1.set_title("MCQ accuracy by stage")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    line(ax2, scaled("perplexity"), scaled("ppl_ci_low"), scaled("ppl_ci_high"), "{:.2f}")
    ax2.set_ylabel("held-out perplexity (lower is better)")
    ax2.set_title("Held-out perplexity by stage")
    for ax in (ax1, ax2):
        ax.set_xticks(x, keys, fontsize=8)
        ax.set_xlim(-0.4, len(rows) - 0.6)
        ax.grid(axis="y", alpha=0.3)
    legend_text = key_lines(keys, rows)
    if legend_text:
        fig.text(0.01, 0.01, legend_text, ha="left", va="bottom", fontsize=7, family="monospace")
        fig.tight_layout(rect=(0, 0.03 + 0.03 * (legend_text.count("\n") + 1), 1, 1))
    else:
        fig.tight_layout()
    return fig


def plot_stages(rows: list[dict], chains: list[dict], path: str | os.PathLike[str]) -> Path:
    """Write :func:`stages_figure` to ``path`` (PNG, atomically)."""
    return save_png(stages_figure(rows, chains), path)


# ------------------------------------------------------------------------------------------------
# similarity.png


def similarity_figure(sims: dict[str, np.ndarray], *, title: str = ""):
    """One histogram panel per model (shared bins and axes, fraction of pairs, mean marked) and
    one panel with every model's cumulative distribution, so no model hides another."""
    plt = _pyplot()
    labels = list(sims)
    n = len(labels)
    lo = min(float(s.min()) for s in sims.values())
    hi = max(float(s.max()) for s in sims.values())
    pad = max((hi - lo) * 0.05, 1e-3)
    n_pairs = next(iter(sims.values())).size
    bins = np.linspace(lo - pad, hi + pad, int(np.clip(np.sqrt(n_pairs) * 2, 8, 40)) + 1)
    fig = plt.figure(figsize=(max(10.0, 3.0 * n), 7.2), dpi=120)
    grid = fig.add_gridspec(2, n, height_ratios=(1, 1.15))
    first = None
    for i, label in enumerate(labels):
        s = sims[label]
        ax = fig.add_subplot(grid[0, i], sharex=first, sharey=first)
        first = first or ax
        color = COLORS[i % len(COLORS)]
        ax.hist(s, bins=bins, weights=np.full(s.size, 1.0 / s.size), color=color, alpha=0.75, edgecolor=color)
        ax.axvline(float(s.mean()), color="black", linestyle="--", linewidth=1)
        ax.set_title(
            "\n".join(textwrap.wrap(label, 30, max_lines=2, placeholder="...")), fontsize=8, color=color
        )
        ax.text(
            0.03,
            0.97,
            f"mean {s.mean():.3f}\nstd {s.std():.3f}",
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=7,
        )
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel("fraction of pairs", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    cdf = fig.add_subplot(grid[1, :])
    styles = ("-", "--", "-.", ":")
    for i, label in enumerate(labels):
        s = np.sort(sims[label])
        cdf.step(
            s,
            np.arange(1, s.size + 1) / s.size,
            where="post",
            color=COLORS[i % len(COLORS)],
            linestyle=styles[i % len(styles)],
            linewidth=1.6,
            label=textwrap.shorten(f"{label}: mean {s.mean():.3f}, std {s.std():.3f}", 90, placeholder="..."),
        )
    cdf.set_xlim(bins[0], bins[-1])
    cdf.set_ylim(0, 1.02)
    cdf.set_xlabel("cosine similarity between two abstracts (mean last-layer embedding, BOS excluded)")
    cdf.set_ylabel("fraction of pairs at or below")
    cdf.set_title(
        "cumulative distributions (a curve further left: lower similarities, more discriminative)", fontsize=9
    )
    cdf.grid(alpha=0.3)
    cdf.legend(loc="upper left", fontsize=7, frameon=True)
    n_docs = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    fig.suptitle(
        title or f"Pairwise similarity of {n_docs} held-out abstracts ({n_pairs} pairs per model)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_similarity(sims: dict[str, np.ndarray], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Write :func:`similarity_figure` to ``path`` (PNG, atomically)."""
    return save_png(similarity_figure(sims, title=title), path)


# ------------------------------------------------------------------------------------------------
# layout check (used by the tests; also handy when changing a figure)


def drawn_texts(fig) -> list:
    """The texts ``fig`` draws: tick labels inside the view limits, axis labels, titles, texts
    and annotations, legend entries, figure texts and the suptitle (each once)."""
    fig.canvas.draw()
    out: dict[int, object] = {}

    def add(t) -> None:
        if t is not None and t.get_visible() and str(t.get_text()).strip():
            out[id(t)] = t

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks matplotlib draws (inside the limits)
                if tick.get_visible():
                    add(tick.label1)
                    add(tick.label2)
            add(axis.label)
        for t in (ax.title, ax._left_title, ax._right_title, *ax.texts):
            add(t)
        if ax.get_legend():
            for t in ax.get_legend().get_texts():
                add(t)
    for lg in fig.legends:
        for t in lg.get_texts():
            add(t)
    for t in (*fig.texts, fig._suptitle):
        add(t)
    return list(out.values())


def text_overlaps(fig, *, tolerance: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of drawn texts of ``fig`` (:func:`drawn_texts`) whose boxes on the canvas overlap by
    more than ``tolerance`` pixels each way (matplotlib's renderer extents)."""
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn_texts(fig)]
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            inter = ba.intersection(ba, bb)
            if inter is not None and inter.width > tolerance and inter.height > tolerance:
                out.append((a, b))
    return out
