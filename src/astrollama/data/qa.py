"""Astro Q&A stage: question/answer conversations written from each paper by an instruct LLM.

Per paper (``astrollama data qa --root DATA --model M``), resumable like every stage:

1. the source text is the paper's AIC training text (``--source aic``, default) or its summary
   (``--source summary``), cut to what fits the model's context after the prompt and the answer
   budget (the beginning is kept: abstract and introduction first);
2. one request with the prompt file ``data_prep/prompts/qa.yaml`` (``{title}``, ``{text}``,
   ``{n_questions}``) through the summariser's backends (:mod:`astrollama.data.summarize`:
   ``transformers`` on CPU, ``vllm`` on GPUs; greedy by default, else sampling seeded per paper);
3. the output is parsed into ``Q:``/``A:`` pairs and every pair is filtered; a rejected pair is
   kept in the paper's file with its reason and counted:

   * ``parse``: text that is not a well-formed ``Q:`` line followed by an ``A:`` line;
   * ``truncated``: the last pair of an output cut by the token limit;
   * ``question_length`` / ``answer_length``: outside ``[min, max]`` words;
   * ``not_standalone``: the question points at the paper ("this paper", "the paper", "our study",
     "the authors", "we", "the text");
   * ``ungrounded``: below ``min_grounding`` of the answer's content words (lower-case words of 3+
     characters that are not stop words) occur in the source text;
   * ``duplicate``: the same question (normalised words) earlier in the paper;
   * ``contaminated``: >= ``decontam_min_matches`` benchmark n-grams in the question + answer (the
     CPT build's decontamination, :mod:`astrollama.data.decontam`, with ``--mcq``);

4. ``<root>/qa/<yymm>/<id>.json`` is written atomically (kept conversations in LMFlow's
   ``conversation`` form, rejections, the raw output, model, prompt hash, seed), then the manifest
   records ``ok`` with ``qa_kept`` and ``qa_rejected`` (reason -> count). A kill between the two
   only regenerates that paper, with the same bytes (greedy or seeded).

``astrollama data sft-convert --input qa=DATA`` gathers the kept conversations into LMFlow shards
(decontaminated again, split by paper id like the CPT corpora).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from astrollama import killpoint
from astrollama.data.dedup import normalised_words, word_hashes
from astrollama.data.llm import (
    Backend,
    add_backend_args,
    backend_from_args,
    read_prompt,
    request_seed,
)
from astrollama.data.manifest import paper_path
from astrollama.errors import InputError
from astrollama.io import atomic_write_json
from astrollama.lmflow_data import check_conversation
from astrollama.paths import DATA_PREP_PROMPTS_DIR, REPO_ROOT

log = logging.getLogger(__name__)

STAGE = "qa"
DEFAULT_PROMPT = DATA_PREP_PROMPTS_DIR / "qa.yaml"
SOURCES = ("aic", "summary")
REASONS = (
    "parse",
    "truncated",
    "question_length",
    "answer_length",
    "not_standalone",
    "ungrounded",
    "duplicate",
    "contaminated",
)


class QAError(InputError):
    """A bad prompt file, option or stage output."""


# ------------------------------------------------------------------------------------- prompt


@dataclass(frozen=True)
class QAPrompt:
    path: Path
    name: str
    system: str
    user: str
    sha256: str

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> QAPrompt:
        p, d, sha = read_prompt(path, DEFAULT_PROMPT, ("title", "text", "n_questions"), QAError)
        return cls(p, d["name"], d["system"], d["user"], sha)

    def conversation(self, *, title: str, text: str, n_questions: int) -> list[dict[str, str]]:
        user = self.user.format(title=title or "(untitled)", text=text, n_questions=n_questions)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


# ------------------------------------------------------------------------------------ filters


@dataclass(frozen=True)
class QAConfig:
    source: str = "aic"
    n_questions: int = 3  # our choice
    max_new_tokens: int = 512  # our choice: 3 pairs of <= 4 sentences fit
    min_question_words: int = 4  # our choice, as are the bounds below
    max_question_words: int = 60
    min_answer_words: int = 5
    max_answer_words: int = 250
    min_grounding: float = 0.6  # our choice
    decontam_ngram: int = 13  # the CPT build's defaults
    decontam_min_matches: int = 1
    seed: int = 0
    batch_papers: int = 64

    def check(self) -> None:
        for name, ok, want in (
            ("--source", self.source in SOURCES, f"one of {', '.join(SOURCES)}"),
            ("--n-questions", self.n_questions >= 1, ">= 1"),
            ("--max-new-tokens", self.max_new_tokens >= 1, ">= 1"),
            (
                "--min-question-words/--max-question-words",
                1 <= self.min_question_words <= self.max_question_words,
                "1 <= min <= max",
            ),
            (
                "--min-answer-words/--max-answer-words",
                1 <= self.min_answer_words <= self.max_answer_words,
                "1 <= min <= max",
            ),
            ("--min-grounding", 0 <= self.min_grounding <= 1, "in [0, 1]"),
            ("--decontam-ngram", self.decontam_ngram >= 1, ">= 1"),
            ("--decontam-min-matches", self.decontam_min_matches >= 1, ">= 1"),
            ("--batch-papers", self.batch_papers >= 1, ">= 1"),
        ):
            if not ok:
                raise QAError(f"{name}: must be {want}")


# our own short list of English function words: they say nothing about grounding
STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "was",
        "were",
        "with",
        "that",
        "this",
        "these",
        "those",
        "from",
        "into",
        "onto",
        "over",
        "under",
        "than",
        "then",
        "there",
        "their",
        "they",
        "them",
        "which",
        "what",
        "when",
        "where",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "its",
        "has",
        "have",
        "had",
        "having",
        "not",
        "but",
        "nor",
        "yet",
        "also",
        "such",
        "very",
        "can",
        "could",
        "may",
        "might",
        "must",
        "shall",
        "should",
        "will",
        "would",
        "been",
        "being",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "own",
        "same",
        "only",
        "just",
        "too",
        "out",
        "off",
        "per",
        "via",
        "upon",
        "our",
        "your",
        "his",
        "her",
        "she",
        "him",
        "you",
        "one",
        "two",
        "three",
        "between",
        "through",
        "during",
        "before",
        "below",
        "does",
        "did",
        "doing",
        "done",
        "because",
        "until",
        "within",
        "without",
    ]
)
_LABEL = re.compile(
    r"^[ \t]*(?:[-*#]+[ \t]*)?(?:\d+[.)][ \t]*)?(?:\*\*)?(Q|Question|A|Answer)[ \t]*\d*[ \t]*"
    r"(?:\*\*)?[ \t]*[:.)](?:\*\*)?[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_NUMBER = re.compile(r"^\d{1,2}[.)]\s+")
_NOT_STANDALONE = re.compile(
    r"\b(?:this|our|the present|the current)\s+(?:paper|study|work|article|letter|"
    r"manuscript|analysis|research)\b|\bthe\s+(?:paper|article|manuscript|authors?|text|"
    r"passage)\b|\bwe\b",
    re.IGNORECASE,
)


def parse_qa(output: str) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """(pairs, rejections) of a model output in the ``Q: ... / A: ...`` layout.

    Text before the first label is ignored (a preamble); a question without an answer, an
    answer without a question or an output with no labels at all is a ``parse`` rejection.
    """
    marks = list(_LABEL.finditer(output))
    if not marks:
        return [], [
            {
                "reason": "parse",
                "question": "",
                "answer": output.strip()[:2000],
                "detail": "no Q:/A: pairs in the output",
            }
        ]
    parts = []
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(output)
        text = _NUMBER.sub("", " ".join(output[m.end() : end].split()))  # "Q: 1. What ..." -> "What ..."
        parts.append(("q" if m.group(1).lower().startswith("q") else "a", text))
    pairs, rejects, k = [], [], 0
    while k < len(parts):
        kind, text = parts[k]
        if kind == "q" and k + 1 < len(parts) and parts[k + 1][0] == "a":
            pairs.append((text, parts[k + 1][1]))
            k += 2
            continue
        q, a = (text, "") if kind == "q" else ("", text)
        rejects.append(
            {
                "reason": "parse",
                "question": q,
                "answer": a,
                "detail": "question without an answer" if kind == "q" else "answer without a question",
            }
        )
        k += 1
    return pairs, rejects


def content_words(text: str) -> list[str]:
    return [w for w in normalised_words(text) if len(w) >= 3 and w not in STOPWORDS]


def grounding(answer: str, source_words: set[str]) -> float:
    """The fraction of the answer's content words that occur in the source (0 if it has none)."""
    words = content_words(answer)
    return sum(w in source_words for w in words) / len(words) if words else 0.0


def filter_pairs(
    pairs: list[tuple[str, str]],
    source: str,
    cfg: QAConfig,
    *,
    benchmark: Any = None,
    truncated: bool = False,
) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """(kept pairs, rejections with reasons) after the stage's quality filters (module doc)."""
    src_words = set(normalised_words(source))
    kept, rejects, seen = [], [], set()
    for i, (q, a) in enumerate(pairs):
        nq, na = len(q.split()), len(a.split())
        g = grounding(a, src_words)
        key = " ".join(normalised_words(q))
        reason, detail = None, ""
        if truncated and i == len(pairs) - 1:
            reason, detail = "truncated", "the output hit the token limit inside this pair"
        elif not cfg.min_question_words <= nq <= cfg.max_question_words:
            reason, detail = "question_length", f"{nq} words"
        elif not cfg.min_answer_words <= na <= cfg.max_answer_words:
            reason, detail = "answer_length", f"{na} words"
        elif _NOT_STANDALONE.search(q):
            reason, detail = "not_standalone", _NOT_STANDALONE.search(q).group(0)
        elif g < cfg.min_grounding:
            reason, detail = "ungrounded", f"{g:.2f} of the answer's content words in the source"
        elif key in seen:
            reason = "duplicate"
        elif benchmark is not None:
            n_match, qs = benchmark.matches(benchmark.doc_ngrams(word_hashes(normalised_words(f"{q}\n{a}"))))
            if n_match >= cfg.decontam_min_matches:
                reason, detail = (
                    "contaminated",
                    f"{n_match} {cfg.decontam_ngram}-grams from questions {qs[:10]}",
                )
        if reason:
            rejects.append({"reason": reason, "question": q, "answer": a, "detail": detail})
        else:
            seen.add(key)
            kept.append((q, a))
    return kept, rejects


# -------------------------------------------------------------------------------------- stage


@dataclass
class _Job:
    id: str
    title: str
    text: str
    truncated_source: bool
    conversation: list[dict[str, str]] = field(default_factory=list)


def qa_path(out_dir: str | os.PathLike[str], paper_id: str) -> Path:
    return paper_path(out_dir, paper_id, ".json")


def _source_text(m: Any, rec: Any, source: str) -> str:
    from astrollama.untrusted import read_json, read_text

    path = m.resolve(rec.outputs.get(source, ""))
    try:  # a regular file inside the data root, size-capped, UTF-8 (astrollama.untrusted)
        if source == "aic":
            text = read_json(path, "text", root=m.root, error=QAError)["text"]
        else:
            text = read_text(path, "text", root=m.root, error=QAError)
    except QAError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise QAError(f"{path}: text: unreadable {source} output ({type(e).__name__})") from None
    if not isinstance(text, str) or not text.strip():
        raise QAError(f"{path}: text: empty or not a string")
    return text


def _plan(pid: str, title: str, text: str, backend: Backend, prompt: QAPrompt, cfg: QAConfig) -> _Job:
    template = backend.prompt_length(prompt.conversation(title=title, text="", n_questions=cfg.n_questions))
    room = backend.max_model_len - template - cfg.max_new_tokens - 16
    if room < 64:
        raise QAError(
            f"max_model_len {backend.max_model_len} leaves {room} tokens for the paper text "
            f"(prompt {template}, --max-new-tokens {cfg.max_new_tokens})"
        )
    ids = backend.encode(text)
    cut = len(ids) > room
    if cut:
        text = backend.decode(ids[:room])
    job = _Job(pid, title, text, cut)
    job.conversation = prompt.conversation(title=title, text=text, n_questions=cfg.n_questions)
    return job


def _result(
    job: _Job, output: str, finish: str, backend: Backend, prompt: QAPrompt, cfg: QAConfig, benchmark: Any
) -> dict[str, Any]:
    pairs, rejects = parse_qa(output)
    kept, more = filter_pairs(pairs, job.text, cfg, benchmark=benchmark, truncated=finish == "length")
    convs = [
        {
            "conversation_id": f"{job.id}#{k}",
            "system": "",
            "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
        }
        for k, (q, a) in enumerate(kept)
    ]
    rejected = rejects + more
    return {
        "id": job.id,
        "model": backend.model_id,
        "prompt_name": prompt.name,
        "prompt_sha256": prompt.sha256,
        "prompt_file": prompt.path.name,
        "source": cfg.source,
        "source_truncated": job.truncated_source,
        "seed": request_seed(cfg.seed, job.id, 0),
        "finish_reason": finish,
        "output": output,
        "conversations": convs,
        "rejected": rejected,
        "counts": {"kept": len(convs), **Counter(r["reason"] for r in rejected)},
        "config": asdict(cfg),
    }


def _ready(m: Any, runner: Any, todo: Sequence[str], source: str) -> list[tuple[str, Any]]:
    """(id, upstream record) of the papers whose ``source`` stage is done; the others are recorded
    as failed (upstream failure) or skipped (waiting)."""
    upstream = m.status(source)
    papers = []
    for pid in todo:
        rec = upstream.get(pid)
        if rec is not None and rec.status == "ok":
            papers.append((pid, rec))
        elif rec is not None and rec.status == "failed":
            runner.fail(pid, f"upstream: {source} failed: {rec.error}")
        else:
            runner.skip(pid, f"waiting for {source}")
    return papers


def _write_batch(
    jobs: list[_Job],
    runner: Any,
    backend: Backend,
    prompt: QAPrompt,
    cfg: QAConfig,
    benchmark: Any,
    out: Path,
    totals: Counter[str],
    bar: Any,
) -> None:
    """One backend call for the batch's jobs; each paper's pairs filtered, written and recorded."""
    gens = (
        backend.generate(
            [j.conversation for j in jobs],
            [cfg.max_new_tokens] * len(jobs),
            [request_seed(cfg.seed, j.id, 0) for j in jobs],
        )
        if jobs
        else []
    )
    for job, gen in zip(jobs, gens, strict=True):
        if isinstance(gen, Exception):
            runner.fail(job.id, f"{type(gen).__name__}: {' '.join(str(gen).split())}")
        else:
            res = _result(job, gen.text, gen.finish_reason, backend, prompt, cfg, benchmark)
            path = atomic_write_json(qa_path(out, job.id), res)
            killpoint.hit("qa.between")
            rejected = {k: v for k, v in res["counts"].items() if k != "kept"}
            totals.update({"kept": res["counts"]["kept"], **rejected})
            runner.ok(
                job.id,
                outputs={"qa": path},
                qa_model=backend.model_id,
                prompt_sha256=prompt.sha256,
                qa_kept=res["counts"]["kept"],
                qa_rejected=rejected,
            )
            killpoint.hit("qa.paper")
        bar.update(1)


def run_qa(
    root: str | os.PathLike[str],
    backend: Backend,
    *,
    config: QAConfig | None = None,
    prompt: QAPrompt | None = None,
    mcq_path: str | os.PathLike[str] | None = None,
    shard_index: int | None = None,
    num_shards: int | None = None,
    retry_failed: bool = False,
    force: bool = False,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> Any:
    """Write Q&A conversations for this shard's pending papers into ``<root>/qa``; returns the
    shard stats with ``rejected`` (reason -> count over this run) attached."""
    from tqdm import tqdm

    from astrollama.data.decontam import Benchmark
    from astrollama.data.manifest import Manifest
    from astrollama.data.runner import StageRunner

    cfg = config or QAConfig()
    cfg.check()
    prompt = prompt or QAPrompt.load()
    benchmark = Benchmark.from_file(mcq_path, cfg.decontam_ngram) if mcq_path else None
    m = Manifest(root)
    out = m.root / STAGE
    runner = StageRunner(
        m,
        STAGE,
        shard_index=shard_index,
        num_shards=num_shards,
        retry_failed=retry_failed,
        force=force,
        progress=False,
        outputs=[m.root / STAGE],
    )
    if limit is not None:
        ids = sorted(m.ids() if ids is None else ids)[:limit]
    todo = runner.select(ids)
    papers = _ready(m, runner, todo, cfg.source)
    log.info(
        "qa: %d papers to do (model %s, prompt %s sha256 %s, source %s)",
        len(papers),
        backend.model_id,
        prompt.name,
        prompt.sha256[:12],
        cfg.source,
    )
    totals: Counter[str] = Counter()
    bar = tqdm(total=len(papers), desc="qa", unit="paper", disable=not progress)
    for g in range(0, len(papers), cfg.batch_papers):
        jobs = []
        for pid, rec in papers[g : g + cfg.batch_papers]:
            with runner.isolate(pid):
                row = m.get(pid) or {}
                jobs.append(
                    _plan(
                        pid,
                        str(row.get("title") or ""),
                        _source_text(m, rec, cfg.source),
                        backend,
                        prompt,
                        cfg,
                    )
                )
                continue
            bar.update(1)  # failed while planning (recorded by isolate)
        _write_batch(jobs, runner, backend, prompt, cfg, benchmark, out, totals, bar)
    bar.close()
    stats = runner.finish()
    stats.rejected = dict(sorted(totals.items()))
    log.info(
        "qa: kept %d pairs; rejected: %s",
        totals.get("kept", 0),
        {k: v for k, v in sorted(totals.items()) if k != "kept"},
    )
    return stats


def qa_conversations(root: str | os.PathLike[str]) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """(paper id, conversation) of every kept pair of every ``ok`` paper, in id order, and the
    counts (papers, conversations, rejections by reason): the ``qa`` input of ``sft-convert``."""
    from astrollama.data.manifest import Manifest
    from astrollama.untrusted import read_json

    m = Manifest(root)
    if not m.papers_path.is_file():
        raise QAError(f"{m.papers_path}: not found: qa=PATH must be a data root with a manifest")
    pairs: list[tuple[str, dict[str, Any]]] = []
    rejected: Counter[str] = Counter()
    papers = 0
    for pid, rec in sorted(m.status(STAGE).items()):
        if rec.status != "ok":
            continue
        path = m.resolve(rec.outputs.get("qa", ""))
        try:  # a regular file inside the data root, size-capped, UTF-8 (astrollama.untrusted)
            obj = read_json(path, "text", root=m.root, error=QAError)
            convs = obj["conversations"]
            if not isinstance(convs, list):
                raise TypeError("not a list")
        except QAError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise QAError(f"{path}: conversations: unreadable qa output ({type(e).__name__})") from None
        for k, c in enumerate(convs):
            check_conversation(c, f"{path}: conversations[{k}]")
            pairs.append((pid, c))
        papers += 1
        rejected.update(
            {r: n for r, n in (obj.get("counts") or {}).items() if r != "kept" and isinstance(n, int)}
        )
    return pairs, {
        "papers": papers,
        "conversations": len(pairs),
        "qa_rejected": dict(sorted(rejected.items())),
    }


# ----------------------------------------------------------------------------------------- CLI


def register(sub: Any) -> None:
    """``astrollama data qa``."""
    import argparse

    from astrollama.cli_args import number, seed_arg
    from astrollama.data.runner import add_shard_args

    d = QAConfig()
    p = sub.add_parser(
        "qa",
        help="AIC or summary -> filtered astro question/answer conversations (transformers | vllm)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", required=True, help="data root (manifest/; outputs go to ROOT/qa/)")
    p.add_argument("--source", choices=SOURCES, default=d.source, help="text the questions are written from")
    add_backend_args(
        p, "instruct checkpoint directory (or HF id on a cluster; smollm2-135m: the offline demo model)"
    )
    p.add_argument(
        "--prompt", default=None, help=f"prompt YAML (default {DEFAULT_PROMPT.relative_to(REPO_ROOT)})"
    )
    p.add_argument(
        "--mcq", help="benchmark questions (.parquet/.jsonl/.csv): pairs overlapping them are rejected"
    )
    p.add_argument("--n-questions", type=number(int, min=1), default=d.n_questions)
    p.add_argument("--max-new-tokens", type=number(int, min=1), default=d.max_new_tokens)
    p.add_argument("--min-question-words", type=number(int, min=1), default=d.min_question_words)
    p.add_argument("--max-question-words", type=number(int, min=1), default=d.max_question_words)
    p.add_argument("--min-answer-words", type=number(int, min=1), default=d.min_answer_words)
    p.add_argument("--max-answer-words", type=number(int, min=1), default=d.max_answer_words)
    p.add_argument(
        "--min-grounding",
        type=number(min=0, max=1),
        default=d.min_grounding,
        help="least fraction of the answer's content words found in the source text",
    )
    p.add_argument("--decontam-ngram", type=number(int, min=1), default=d.decontam_ngram)
    p.add_argument("--decontam-min-matches", type=number(int, min=1), default=d.decontam_min_matches)
    p.add_argument(
        "--seed", type=seed_arg(), default=d.seed, help="per-paper seeds derive from it and the id"
    )
    p.add_argument(
        "--batch-papers", type=number(int, min=1), default=d.batch_papers, help="papers per generation round"
    )
    p.add_argument("--limit", type=number(int, min=1), default=None, help="only the first N papers by id")
    add_shard_args(p)
    p.set_defaults(func=_cli)


def _cli(a: Any) -> int:
    cfg = QAConfig(
        source=a.source,
        n_questions=a.n_questions,
        max_new_tokens=a.max_new_tokens,
        min_question_words=a.min_question_words,
        max_question_words=a.max_question_words,
        min_answer_words=a.min_answer_words,
        max_answer_words=a.max_answer_words,
        min_grounding=a.min_grounding,
        decontam_ngram=a.decontam_ngram,
        decontam_min_matches=a.decontam_min_matches,
        seed=a.seed,
        batch_papers=a.batch_papers,
    )
    cfg.check()  # before a model is loaded
    prompt = QAPrompt.load(a.prompt)
    backend = backend_from_args(a)
    stats = run_qa(
        a.root,
        backend,
        config=cfg,
        prompt=prompt,
        mcq_path=a.mcq,
        shard_index=a.shard_index,
        num_shards=a.num_shards,
        retry_failed=a.retry_failed,
        force=a.force,
        limit=a.limit,
    )
    if stats.failed:
        log.warning(
            "qa: %d papers failed; reasons: astrollama data manifest failures --root %s --stage %s",
            stats.failed,
            a.root,
            STAGE,
        )
    return 0
