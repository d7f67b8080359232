"""Summary corpus variant: 1,000-4,000-token summaries of each paper, section by section.

Method (prompt in ``data_prep/prompts/summarize_sections.yaml``; no official AstroMLab prompt is
public, this follows the closest public description, see docs/data-corpus.md):

1. The ``.mmd`` text is split at its headings; references, acknowledgments, appendices and other
   back matter are dropped (everything from a References / Appendix heading on), Nougat markers
   removed. Figure captions stay where Nougat put them, inside their section.
2. Sections are grouped greedily, in order, into chunks of at most ``chunk_tokens`` tokens
   (counted with the SUMMARISER's tokenizer). ``chunk_tokens`` is derived from the model's
   context: ``max_model_len - prompt template - previous-summary allowance - output reserve - 32``.
   A section longer than a chunk is cut at paragraphs, a paragraph longer than a chunk at token
   boundaries.
3. Chunk ``i`` gets the budget ``total * tokens_i / tokens_paper`` (at least ``min_chunk_budget``)
   where ``total = min(target_total, tokens_paper)``; the request's ``max_tokens`` is
   ``ceil(1.5 * budget) + 16`` (capped by the per-request reserve, ``max_model_len // 3``).
   Earlier compressed chunks are passed as context (their tail, when longer than the allowance
   ``min(previous_tokens, target_total, max_model_len // 4)``).
4. The summary is the compressed chunks joined in order. Its token count is checked against the
   target range ``[min_tokens, max_tokens]``; outside it the summary is KEPT and FLAGGED
   (``length_flag`` = ``short`` | ``long``); the build stage drops flagged summaries by default
   and counts them (``summary_length``), see :mod:`astrollama.data.build`.

The model runs behind one interface (:class:`~astrollama.data.llm.Backend`, ``transformers`` or
``vllm``), shared with the SFT question-answer stage (:mod:`astrollama.data.llm`).

Per paper the stage writes ``<yymm>/<ns_id>.txt`` (the summary) and then ``<ns_id>.json`` (the sidecar:
model id, prompt hash, token count, length flag, chunk plan); the sidecar is the completion mark.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from astrollama import killpoint
from astrollama.data.aic.markdown import md_headings
from astrollama.data.aic.rules import clean_nougat_markers
from astrollama.data.llm import (
    Backend,
    SummaryError,
    add_backend_args,
    backend_from_args,
    read_prompt,
    request_seed,
)
from astrollama.data.manifest import paper_path
from astrollama.io import atomic_write_json, atomic_write_text
from astrollama.paper import RECIPES
from astrollama.paths import DATA_PREP_PROMPTS_DIR, REPO_ROOT

log = logging.getLogger(__name__)

DEFAULT_PROMPT = DATA_PREP_PROMPTS_DIR / "summarize_sections.yaml"
_DROP_FROM = {"references", "appendix"}  # everything from here on is dropped
_DROP_ONLY = {"acknowledgments", "backmatter", "keywords"}


# the placeholders a summary prompt's ``user`` template may use (Prompt.conversation fills them)
PLACEHOLDERS = ("title", "part", "parts", "budget", "budget_words", "previous", "chunk")


@dataclass(frozen=True)
class Prompt:
    """A prompt file: system text, user template, and the file's SHA-256."""

    path: Path
    name: str
    system: str
    user: str
    first_previous: str
    sha256: str

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Prompt:
        p, d, sha = read_prompt(
            path,
            DEFAULT_PROMPT,
            ("chunk", "previous"),
            SummaryError,
            allowed=PLACEHOLDERS,
            keys=("name", "system", "user", "first_previous"),
        )
        if "{budget" not in d["user"]:
            raise SummaryError(f"{p}: user: lacks the placeholder {{budget}} (or {{budget_words}})")
        return cls(p, d["name"], d["system"], d["user"], d.get("first_previous", "(none)"), sha)

    def conversation(
        self, *, title: str, part: int, parts: int, budget: int, previous: str, chunk: str
    ) -> list[dict[str, str]]:
        user = self.user.format(
            title=title or "(untitled)",
            part=part,
            parts=parts,
            budget=budget,
            budget_words=max(1, int(budget * 0.75)),
            previous=previous or self.first_previous,
            chunk=chunk,
        )
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


# ------------------------------------------------------------------------------------ chunking


@dataclass
class Section:
    title: str
    text: str


def split_sections(mmd: str) -> tuple[str, list[Section]]:
    """(title, body sections) of a Nougat ``.mmd`` text, back matter dropped.

    The title is the first level-1 heading (if any). Sections from a References or Appendix
    heading on are dropped, Acknowledgments / Data availability / keywords sections alone.
    """
    lines = clean_nougat_markers(mmd).splitlines()
    heads = md_headings(lines)
    title = heads[0].title if heads and heads[0].hashes == 1 and heads[0].kind is None else ""
    first = heads[0].index if heads else len(lines)
    secs = [Section("", "\n".join(lines[:first]).strip())]  # text before any heading
    for k, h in enumerate(heads):
        if h.kind in _DROP_FROM:
            break
        if h.kind in _DROP_ONLY:
            continue
        end = heads[k + 1].index if k + 1 < len(heads) else len(lines)
        body = "\n".join(([h.rest] if h.rest else []) + lines[h.index + 1 : end])
        body = re.sub(r"\n{3,}", "\n\n", body).strip()
        # the title heading's body is the front matter (authors, affiliations)
        secs.append(Section("" if (k == 0 and title) else h.title, body))
    return title, [s for s in secs if s.text]


def _render(sec: Section) -> str:
    return f"## {sec.title}\n{sec.text}" if sec.title else sec.text


def plan_chunks(
    sections: list[Section],
    count: Callable[[str], int],
    chunk_tokens: int,
    encode: Callable[[str], list[int]],
    decode: Callable[[Sequence[int]], str],
) -> list[str]:
    """Group rendered sections, in order, into chunks of at most ``chunk_tokens`` tokens."""
    pieces: list[str] = []
    for sec in sections:
        text = _render(sec)
        if count(text) <= chunk_tokens:
            pieces.append(text)
            continue
        for para in re.split(r"\n\s*\n", text):
            if count(para) <= chunk_tokens:
                pieces.append(para)
            else:
                ids = encode(para)
                pieces.extend(decode(ids[i : i + chunk_tokens]) for i in range(0, len(ids), chunk_tokens))
    chunks: list[str] = []
    cur: list[str] = []
    for p in pieces:
        cand = "\n\n".join([*cur, p])
        if cur and count(cand) > chunk_tokens:
            chunks.append("\n\n".join(cur))
            cur = [p]
        else:
            cur.append(p)
    if cur:
        chunks.append("\n\n".join(cur))
    return chunks


# --------------------------------------------------------------------------------------- stage


#: The published summary length range (model card of astrollama-3-8b-base_summary).
PUBLISHED_SUMMARY_TOKENS: tuple[int, int] = tuple(
    RECIPES["astrollama-3-8b-base_summary"]["summary_tokens"].value
)


@dataclass
class SummaryConfig:
    """Length target and chunking knobs. Defaults: the published 1,000-4,000-token range
    (:data:`PUBLISHED_SUMMARY_TOKENS`) aiming at 2,500 (our choice); the demo uses a tiny target."""

    min_tokens: int = PUBLISHED_SUMMARY_TOKENS[0]
    max_tokens: int = PUBLISHED_SUMMARY_TOKENS[1]
    target_total: int = 2500
    min_chunk_budget: int = 32
    previous_tokens: int = 1024  # at most this many tokens of earlier parts passed as context
    seed: int = 0
    batch_papers: int = 64  # papers whose chunk i is generated in one backend call

    def __post_init__(self) -> None:
        if not 0 < self.min_tokens <= self.target_total <= self.max_tokens:
            raise SummaryError(
                f"--min-tokens/--target-tokens/--max-tokens: must satisfy 0 < min_tokens ({self.min_tokens}) <= "
                f"target_total ({self.target_total}) <= max_tokens ({self.max_tokens})"
            )


@dataclass
class PaperInput:
    id: str
    mmd_path: Path
    title: str = ""


@dataclass
class PaperResult:
    id: str
    status: str  # "done" | "skipped" (already done) | "failed"
    reason: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)


_ATTRS = ("summary_model", "prompt_name", "prompt_sha256", "summary_tokens", "length_target", "length_flag")


def summary_paths(out_dir: str | os.PathLike[str], paper_id: str) -> tuple[Path, Path]:
    """(summary .txt, sidecar .json) of a paper: ``<out>/<yymm>/<namespaced id>.{txt,json}``."""
    return paper_path(out_dir, paper_id, ".txt"), paper_path(out_dir, paper_id, ".json")


@dataclass
class _Job:
    paper: PaperInput
    title: str
    chunks: list[str]
    budgets: list[int]
    paper_tokens: int
    parts: list[str] = field(default_factory=list)
    finish: list[str] = field(default_factory=list)
    error: str = ""


def _plan(paper: PaperInput, backend: Backend, cfg: SummaryConfig, prompt: Prompt) -> _Job:
    from astrollama.untrusted import read_text

    mmd = read_text(paper.mmd_path, "text", error=SummaryError)  # regular, bounded, UTF-8
    found_title, sections = split_sections(mmd)
    title = paper.title or found_title
    if not sections:
        raise SummaryError(f"{Path(paper.mmd_path).name}: no body text left after dropping back matter")

    def count(t: str) -> int:
        return len(backend.encode(t))

    template = backend.prompt_length(
        prompt.conversation(title=title, part=99, parts=99, budget=9999, previous="", chunk="")
    )
    reserve = _reserve(cfg, backend)
    prev_allow = _prev_allow(cfg, backend)
    chunk_tokens = backend.max_model_len - template - prev_allow - reserve - 32
    if chunk_tokens < 128:
        raise SummaryError(
            f"max_model_len {backend.max_model_len} leaves only {chunk_tokens} tokens per chunk "
            f"(template {template}, previous {prev_allow}); use a longer-context model or smaller target"
        )
    chunks = plan_chunks(sections, count, chunk_tokens, backend.encode, backend.decode)
    sizes = [count(c) for c in chunks]
    paper_tokens = sum(sizes)
    total = min(cfg.target_total, paper_tokens)
    budgets = [max(cfg.min_chunk_budget, round(total * s / paper_tokens)) for s in sizes]
    return _Job(paper, title, chunks, budgets, paper_tokens)


def _reserve(cfg: SummaryConfig, backend: Backend) -> int:
    """Output tokens reserved per request (a request never asks for more)."""
    return min(math.ceil(1.5 * cfg.target_total) + 16, backend.max_model_len // 3)


def _prev_allow(cfg: SummaryConfig, backend: Backend) -> int:
    """Tokens of earlier parts passed back as context (their tail when longer)."""
    return min(cfg.previous_tokens, cfg.target_total, backend.max_model_len // 4)


def _previous(job: _Job, backend: Backend, allow: int) -> str:
    prev = "\n\n".join(job.parts)
    ids = backend.encode(prev)
    return prev if len(ids) <= allow else "[...]\n" + backend.decode(ids[-allow:])


def summarize_papers(
    papers: Sequence[PaperInput],
    backend: Backend,
    out_dir: str | os.PathLike[str],
    *,
    config: SummaryConfig | None = None,
    prompt: Prompt | None = None,
    progress: bool = True,
    on_result: Callable[[PaperResult], None] | None = None,
) -> list[PaperResult]:
    """Summarise ``papers`` into ``out_dir`` (resumable: papers with a sidecar are skipped).

    Papers are processed in groups of ``batch_papers``; within a group, chunk ``i`` of every paper
    is generated in one backend call (vLLM batches them). Each finished paper is written at once
    (summary, then sidecar), so a kill loses at most the current group's unfinished work.
    """
    from tqdm import tqdm

    cfg = config or SummaryConfig()
    prompt = prompt or Prompt.load()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: list[PaperResult] = []

    def emit(r: PaperResult) -> None:
        results.append(r)
        if on_result:
            on_result(r)

    todo = _pending(papers, out, emit)
    log.info(
        "summaries: %d papers, %d already done, %d to do (model %s, prompt %s sha256 %s)",
        len(papers),
        len(papers) - len(todo),
        len(todo),
        backend.model_id,
        prompt.name,
        prompt.sha256[:12],
    )
    bar = tqdm(total=len(todo), desc="summaries", unit="paper", disable=not progress)
    for g in range(0, len(todo), cfg.batch_papers):
        jobs: list[_Job] = []
        for p in todo[g : g + cfg.batch_papers]:
            try:
                jobs.append(_plan(p, backend, cfg, prompt))
            except (SummaryError, OSError, UnicodeDecodeError) as e:
                emit(PaperResult(p.id, "failed", f"{type(e).__name__}: {e}"))
                bar.update(1)
        for part in range(max((len(j.chunks) for j in jobs), default=0)):
            _generate_part(jobs, part, backend, cfg, prompt)
        for j in jobs:
            if j.error:
                emit(PaperResult(j.paper.id, "failed", j.error))
            else:
                emit(_write(j, backend, cfg, prompt, out))
                killpoint.hit("summary.paper")
            bar.update(1)
    bar.close()
    return results


def _pending(
    papers: Sequence[PaperInput], out: Path, emit: Callable[[PaperResult], None]
) -> list[PaperInput]:
    """The papers still to summarise, by id; a finished one (sidecar present) is reported again."""
    todo = []
    for p in sorted(papers, key=lambda p: p.id):
        done = read_summary(out, p.id)
        if done is not None:  # finished by an earlier (maybe killed) run: report it again
            emit(
                PaperResult(
                    p.id,
                    "done",
                    "",
                    {k: done[1][k] for k in _ATTRS},
                    dict(zip(("summary", "summary_meta"), summary_paths(out, p.id), strict=True)),
                )
            )
        else:
            todo.append(p)
    return todo


def _generate_part(jobs: list[_Job], part: int, backend: Backend, cfg: SummaryConfig, prompt: Prompt) -> None:
    """Chunk ``part`` of every job that has one and no error yet, in one backend call."""
    live = [j for j in jobs if part < len(j.chunks) and not j.error]
    if not live:
        return
    convs = [
        prompt.conversation(
            title=j.title,
            part=part + 1,
            parts=len(j.chunks),
            budget=j.budgets[part],
            previous=_previous(j, backend, _prev_allow(cfg, backend)),
            chunk=j.chunks[part],
        )
        for j in live
    ]
    max_new = [min(math.ceil(1.5 * j.budgets[part]) + 16, _reserve(cfg, backend)) for j in live]
    seeds = [request_seed(cfg.seed, j.paper.id, part) for j in live]
    gens = backend.generate(convs, max_new, seeds)
    for j, gen in zip(live, gens, strict=True):
        if isinstance(gen, Exception):
            j.error = f"part {part + 1}/{len(j.chunks)}: {type(gen).__name__}: {gen}"
        elif not gen.text:
            j.error = f"part {part + 1}/{len(j.chunks)}: the model returned no text"
        else:
            j.parts.append(gen.text)
            j.finish.append(gen.finish_reason)


def _write(job: _Job, backend: Backend, cfg: SummaryConfig, prompt: Prompt, out: Path) -> PaperResult:
    text = "\n\n".join(job.parts).strip() + "\n"
    n = len(backend.encode(text))
    flag = "short" if n < cfg.min_tokens else "long" if n > cfg.max_tokens else None
    attrs = {
        "summary_model": backend.model_id,
        "prompt_name": prompt.name,
        "prompt_sha256": prompt.sha256,
        "summary_tokens": n,
        "length_target": [cfg.min_tokens, cfg.max_tokens],
        "length_flag": flag,
    }
    sidecar = {
        "id": job.paper.id,
        **attrs,
        "prompt_file": prompt.path.name,
        "target_total": cfg.target_total,
        "paper_tokens": job.paper_tokens,
        "chunks": len(job.chunks),
        "chunk_budgets": job.budgets,
        "finish_reasons": job.finish,
        "seed": cfg.seed,
        "config": asdict(cfg),
    }
    txt, side = summary_paths(out, job.paper.id)
    atomic_write_text(txt, text)
    killpoint.hit("summary.between")
    atomic_write_json(side, sidecar)
    if flag:
        log.warning(
            "%s: summary has %d tokens, outside the target %d-%d (flagged %s)",
            job.paper.id,
            n,
            cfg.min_tokens,
            cfg.max_tokens,
            flag,
        )
    return PaperResult(job.paper.id, "done", "", attrs, {"summary": txt, "summary_meta": side})


def read_summary(out_dir: str | os.PathLike[str], paper_id: str) -> tuple[str, dict[str, Any]] | None:
    """(summary text, sidecar) of a finished paper, or None."""

    txt, side = summary_paths(out_dir, paper_id)
    if not side.is_file():
        return None
    from astrollama.untrusted import read_json, read_text

    return read_text(txt, "text"), read_json(side, "text")


# ---------------------------------------------------------------------------- manifest stage

STAGE = "summary"


def mmd_inputs(manifest: Any, ids: Sequence[str], runner: Any) -> list[PaperInput]:
    """``PaperInput`` for each id whose OCR finished; others are recorded (failed when the OCR
    failed, skipped while it has not run)."""
    ocr = manifest.status("ocr")
    out = []
    for pid in ids:
        rec = ocr.get(pid)
        if rec is not None and rec.status == "ok" and "mmd" in rec.outputs:
            row = manifest.get(pid) or {}
            out.append(PaperInput(pid, manifest.resolve(rec.outputs["mmd"]), str(row.get("title") or "")))
        elif rec is not None and rec.status == "failed":
            runner.fail(pid, f"upstream: ocr failed: {rec.error}")
        else:
            runner.skip(pid, "waiting for ocr (no .mmd yet)")
    return out


def run_summary(
    root: str | os.PathLike[str],
    backend: Backend,
    *,
    config: SummaryConfig | None = None,
    prompt: Prompt | None = None,
    shard_index: int | None = None,
    num_shards: int | None = None,
    retry_failed: bool = False,
    force: bool = False,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> Any:
    """Summarise this shard's pending papers of the manifest at ``root`` into ``<root>/summary``.

    ``limit`` restricts the stage to the first ``limit`` papers by id (the rest stay pending; the
    demo uses it to keep CPU time small; a rerun with the same limit does nothing new). Returns the
    shard stats.
    """
    from astrollama.data.manifest import Manifest
    from astrollama.data.runner import StageRunner

    m = Manifest(root)
    runner = StageRunner(
        m,
        STAGE,
        shard_index=shard_index,
        num_shards=num_shards,
        retry_failed=retry_failed,
        force=force,
        progress=False,
        outputs=[m.root / "summary"],
    )
    if limit is not None:
        every = sorted(m.ids() if ids is None else ids)
        ids = every[:limit]
        log.info(
            "summaries: --limit %d: only the first %d of %d papers (by id) are summarised; the other %d "
            "stay pending",
            limit,
            len(ids),
            len(every),
            len(every) - len(ids),
        )
    todo = runner.select(ids)
    papers = mmd_inputs(m, todo, runner)
    if force:
        for p in papers:
            for f in summary_paths(m.root / "summary", p.id):
                f.unlink(missing_ok=True)

    def record(r: PaperResult) -> None:
        if r.status == "done":
            runner.ok(r.id, outputs=r.outputs, **r.attrs)
        else:
            runner.fail(r.id, r.reason)

    summarize_papers(
        papers, backend, m.root / "summary", config=config, prompt=prompt, progress=progress, on_result=record
    )
    return runner.finish()


def register(sub: Any) -> None:
    """``astrollama data summarize``."""
    import argparse

    from astrollama.cli_args import number, seed_arg
    from astrollama.data.runner import add_shard_args

    p = sub.add_parser(
        "summarize",
        help="OCR .mmd -> 1,000-4,000-token summaries (transformers | vllm)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", required=True, help="data root (manifest/; outputs go to ROOT/summary/)")
    add_backend_args(
        p, "summariser checkpoint directory (or HF id on a cluster; smollm2-135m: the offline demo model)"
    )
    p.add_argument(
        "--prompt", default=None, help=f"prompt YAML (default {DEFAULT_PROMPT.relative_to(REPO_ROOT)})"
    )
    p.add_argument(
        "--min-tokens",
        type=number(int, min=1),
        default=PUBLISHED_SUMMARY_TOKENS[0],
        help="summaries shorter than this are flagged (default: the published range)",
    )
    p.add_argument(
        "--max-tokens",
        type=number(int, min=1),
        default=PUBLISHED_SUMMARY_TOKENS[1],
        help="summaries longer than this are flagged",
    )
    p.add_argument(
        "--target-tokens", type=number(int, min=1), default=2500, help="total summary budget per paper"
    )
    p.add_argument(
        "--seed", type=seed_arg(), default=0, help="per-request seeds derive from it and the paper id"
    )
    p.add_argument("--batch-papers", type=number(int, min=1), default=64, help="papers per generation round")
    p.add_argument(
        "--min-chunk-budget",
        type=number(int, min=1),
        default=SummaryConfig.min_chunk_budget,
        help="fewest summary tokens asked of one chunk",
    )
    p.add_argument(
        "--previous-tokens",
        type=number(int, min=0),
        default=SummaryConfig.previous_tokens,
        help="at most this many tokens of earlier summary parts passed as context",
    )
    p.add_argument(
        "--limit",
        type=number(int, min=1),
        default=None,
        help="only the first N papers by id (a CPU demo knob)",
    )
    add_shard_args(p)
    p.set_defaults(func=_cli)


def _cli(a: Any) -> int:
    cfg = SummaryConfig(
        min_tokens=a.min_tokens,
        max_tokens=a.max_tokens,
        target_total=a.target_tokens,
        seed=a.seed,
        batch_papers=a.batch_papers,
        min_chunk_budget=a.min_chunk_budget,
        previous_tokens=a.previous_tokens,
    )
    prompt = Prompt.load(a.prompt)  # checked whole before a model is loaded
    backend = backend_from_args(a)
    stats = run_summary(
        a.root,
        backend,
        config=cfg,
        prompt=prompt,
        shard_index=a.shard_index,
        num_shards=a.num_shards,
        retry_failed=a.retry_failed,
        force=a.force,
        limit=a.limit,
    )
    if stats.failed:
        log.warning(
            "summary: %d papers failed; reasons: astrollama data manifest failures --root %s --stage %s",
            stats.failed,
            a.root,
            STAGE,
        )
    return 0
