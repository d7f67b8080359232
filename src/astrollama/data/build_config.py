"""Settings of the BUILD stage (:mod:`astrollama.data.build`): one field per ``astrollama data
build`` flag and ``build:`` config key, range-checked where made."""

from __future__ import annotations

from dataclasses import dataclass

from astrollama.data.decontam import BuildError
from astrollama.lmflow_data import DEFAULT_SHARD_BYTES


@dataclass
class BuildConfig:
    validation_fraction: float = 0.2
    min_words: int = 20
    shingle_words: int = 5
    num_perm: int = 128
    lsh_bands: int = 16  # 16 bands x 8 rows: candidate pairs from Jaccard ~0.7 up
    near_dup_jaccard: float = 0.8
    decontam_ngram: int = 13
    decontam_min_matches: int = 1
    decontam_action: str = "drop"  # "drop" | "report"
    summary_length_policy: str = "drop"  # "drop" | "keep" summaries flagged outside their target
    repeated_line_min_chars: int = 20
    repeated_line_max: int = 2  # a line seen more often than this is kept once (running headers)
    max_shard_bytes: int = DEFAULT_SHARD_BYTES
    max_shard_docs: int | None = None

    def __post_init__(self) -> None:
        """Range checks; messages name the ``astrollama data build`` option of each field."""
        checks = (
            (
                "--validation-fraction",
                self.validation_fraction,
                0 <= self.validation_fraction < 1,
                "in [0, 1)",
            ),
            ("--near-dup-jaccard", self.near_dup_jaccard, 0 < self.near_dup_jaccard <= 1, "in (0, 1]"),
            ("--min-words", self.min_words, self.min_words >= 0, ">= 0"),
            ("--decontam-ngram", self.decontam_ngram, self.decontam_ngram >= 1, ">= 1"),
            ("--decontam-min-matches", self.decontam_min_matches, self.decontam_min_matches >= 1, ">= 1"),
            ("--shingle-words", self.shingle_words, self.shingle_words >= 1, ">= 1"),
            (
                "--repeated-line-min-chars",
                self.repeated_line_min_chars,
                self.repeated_line_min_chars >= 1,
                ">= 1",
            ),
            ("--repeated-line-max", self.repeated_line_max, self.repeated_line_max >= 1, ">= 1"),
            (
                "--max-shard-docs",
                self.max_shard_docs,
                self.max_shard_docs is None or self.max_shard_docs >= 1,
                ">= 1",
            ),
            ("--max-shard-mb", self.max_shard_bytes / 2**20, self.max_shard_bytes >= 1, "> 0"),
            (
                "--num-perm/--lsh-bands",
                (self.num_perm, self.lsh_bands),
                self.lsh_bands >= 1 and self.num_perm >= 1 and not self.num_perm % self.lsh_bands,
                "num_perm a positive multiple of lsh_bands",
            ),
            (
                "--decontam-action",
                self.decontam_action,
                self.decontam_action in ("drop", "report"),
                "drop or report",
            ),
            (
                "--summary-length-policy",
                self.summary_length_policy,
                self.summary_length_policy in ("drop", "keep"),
                "drop or keep",
            ),
        )
        for option, value, ok, want in checks:
            if not ok:  # NaN fails every comparison, so it lands here too
                raise BuildError(f"{option}: must be {want}, got {value!r}")
