"""Metadata fields as manifest values, shared by every metadata source (OAI-PMH, the Kaggle
snapshot, local files, the arxiv API): whitespace, author lists, DOIs, dates, the astro-ph test;
and the harvest's errors."""

from __future__ import annotations

import datetime
import email.utils
import re
from collections.abc import Iterable

from astrollama.errors import InputError

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class HarvestError(RuntimeError):
    """A harvest that cannot go on; the message says why and what to do."""


class HarvestInputError(HarvestError, InputError):
    """Bad harvest input from the user (a date, a snapshot file): one line, exit 2."""


def field_text(s: str | None) -> str | None:
    """Collapse whitespace runs (OAI/API fields are wrapped and indented); None for empty."""
    if s is None:
        return None
    s = " ".join(s.split())
    return s or None


_SUFFIX = re.compile(r"(?:Jr|Sr|Jnr|Snr)\.?|I{2,3}|IV", re.I)
_AUTHOR_SPLIT = re.compile(r"\s*[,;]\s*(?:and\s+)?|\s+and\s+|\s*&\s*")


def split_authors(text: str | None) -> list[str] | None:
    """An arXiv author string as a list of names.

    ``"A. Smith, B. Jones, and G.A. Souliotis"`` -> three names (the ``and`` is not part of one);
    affiliation groups in parentheses (``"A. Smith (1, 2), B. Jones (2) ((1) Univ, (2) Inst)"``)
    are dropped, nested ones too; a suffix stays with its author (``"J. Doe, Jr., A. Roe"`` ->
    ``["J. Doe Jr.", "A. Roe"]``); a trailing ``et al.`` is dropped.
    """
    text = field_text(text)
    if not text:
        return None
    while True:  # innermost parentheses first, so nested affiliation lists go as a whole
        stripped = re.sub(r"\([^()]*\)", " ", text)
        if stripped == text:
            break
        text = stripped
    text = re.sub(r"\bet\s+al\.?", " ", text.replace("(", " ").replace(")", " "))
    names: list[str] = []
    for part in _AUTHOR_SPLIT.split(text):
        part = " ".join(part.split())
        if not part:
            continue
        if names and _SUFFIX.fullmatch(part):
            names[-1] += " " + part
        else:
            names.append(part)
    return names or None


def split_dois(text: str | None) -> list[str] | None:
    """A DOI field as a list: arXiv lets authors give several, separated by spaces, commas or
    semicolons (``"10.1/a 10.2/b"``); a ``doi:`` or ``https://doi.org/`` prefix is dropped."""
    dois = [
        re.sub(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", "", d, flags=re.I)
        for d in re.split(r"[\s,;]+", text or "")
        if d
    ]
    return [d for d in dois if d] or None


def rfc2822_date(s: str) -> str:
    return email.utils.parsedate_to_datetime(s).date().isoformat()


def _check_date(name: str, value: str | None) -> None:
    if value is None:
        return
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        datetime.date.fromisoformat(value)
    except ValueError:
        raise HarvestInputError(f"--{name} must be YYYY-MM-DD (a real date), got {value!r}") from None


def check_dates(from_date: str | None, until_date: str | None) -> None:
    _check_date("from", from_date)
    _check_date("until", until_date)
    if from_date and until_date and from_date > until_date:
        raise HarvestInputError(f"--from/--until: {from_date} is after {until_date}")


def is_astro(categories: Iterable[str], primary_only: bool = False) -> bool:
    """True if any (or, with ``primary_only``, the first) category is ``astro-ph`` or ``astro-ph.*``."""
    cats = list(categories)
    pool = cats[:1] if primary_only else cats
    return any(c == "astro-ph" or c.startswith("astro-ph.") for c in pool)
