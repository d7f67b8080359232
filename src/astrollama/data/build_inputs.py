"""A corpus variant's input documents for the BUILD stage: :class:`Doc` (a paper's text, read when
needed) and the documents of each variant from the data root's manifest (``abstracts`` from the
metadata, ``aic`` and ``summary`` from their stages' outputs, each file read as untrusted)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astrollama.data.decontam import BuildError
from astrollama.untrusted import read_json, read_text

VARIANTS = ("abstracts", "aic", "summary")


@dataclass
class Doc:
    """One paper's text for a variant; ``flags`` carries upstream marks (e.g. ``length_flag``).

    ``text`` may be ``None`` with a ``load`` callable that returns it: the build then reads the
    text when it needs it and does not keep it, so its memory does not grow with the corpus.
    """

    id: str
    text: str | None
    flags: dict[str, Any] = field(default_factory=dict)
    load: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    def read(self) -> str:
        if self.text is not None:
            return self.text
        if self.load is None:
            raise BuildError(f"document {self.id}: no text and no loader")
        return self.load()


def abstract_docs(rows: Iterable[dict[str, Any]]) -> list[Doc]:
    """``abstracts`` variant (AstroLLaMA-1): one document per paper, the abstract text."""
    return [Doc(str(r["id"]), " ".join(str(r["abstract"]).split())) for r in rows if r.get("abstract")]


def _aic_text(path: Path, pid: str, root: Path, where: str = "aic") -> str:
    """The ``text`` of an AIC record: a regular file inside the data root, size-capped, UTF-8
    (astrollama.untrusted)."""
    try:
        text = read_json(path, "text", root=root, error=BuildError)["text"]
        if not isinstance(text, str):
            raise TypeError("not a string")
        return text
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(
            f"{path}: field 'text' of {pid}: unreadable {where} output "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None


def _summary_text(path: Path, pid: str, root: Path) -> str:
    """A summary's text: a regular file inside the data root, size-capped, UTF-8."""
    try:
        return read_text(path, "text", root=root, error=BuildError)
    except ValueError as exc:
        raise BuildError(
            f"{path}: field 'text' of {pid}: unreadable summary output "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None


def manifest_docs(m: Any, variant: str) -> list[Doc]:
    """The variant's input documents from the manifest at ``m`` (only ``ok`` upstream records).

    The AIC and summary texts are not read here: each :class:`Doc` reads its file when the
    build needs it (an unreadable file is a one-line error naming it then)."""
    if variant == "abstracts":  # the abstracts alone, not every metadata field, and each row let go
        rows = m.merged_fields(("abstract",))
        docs = []
        while rows:
            docs += abstract_docs([rows.popitem()[1]])
        return sorted(docs, key=lambda d: d.id)
    stage = {"aic": "aic", "summary": "summary"}.get(variant)
    if stage is None:
        raise BuildError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    # per paper only its id, output path (relative: checked here, before any work, that it stays
    # inside the data root, and resolved again when read) and flags: the list costs ~0.6 KB per
    # paper (docs/reproduce.md, "Corpus build at scale")
    docs = []
    if variant == "aic":
        for pid, (rel, _) in m.ok_outputs(stage, stage).items():
            m.resolve(rel)
            docs.append(Doc(pid, None, load=functools.partial(_manifest_text, m, rel, pid, _aic_text)))
    else:
        keys = ("length_flag", "summary_tokens")
        for pid, (rel, values) in m.ok_outputs(stage, stage, keys).items():
            m.resolve(rel)
            load = functools.partial(_manifest_text, m, rel, pid, _summary_text)
            docs.append(Doc(pid, None, dict(zip(keys, values, strict=True)), load=load))
    return docs


def _manifest_text(m: Any, rel: str, pid: str, read: Callable[[Path, str, Path], str]) -> str:
    """The text of one manifest output: its path resolved inside the data root (a tampered record is
    one line naming it), then ``read``."""
    return read(m.resolve(rel), pid, m.root)
