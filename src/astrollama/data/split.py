"""Deterministic train/validation split by paper id (one rule for every corpus variant).

A paper's split depends only on its id (and the salt), never on corpus order or size, so every
variant (abstracts, AIC, summaries) holds out the same papers and a rebuild never moves a paper.
"""

from __future__ import annotations

import hashlib

DEFAULT_SALT = "astrollama-split-v1"


def split_fraction(paper_id: str, salt: str = DEFAULT_SALT) -> float:
    """A number in [0, 1) derived from the id, stable across runs and machines."""
    h = hashlib.sha256(f"{salt}:{paper_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign_split(paper_id: str, validation_fraction: float = 0.2, salt: str = DEFAULT_SALT) -> str:
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    return "validation" if split_fraction(paper_id, salt) < validation_fraction else "train"
