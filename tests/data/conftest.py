"""Fixtures for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_prep(tmp_path_factory) -> tuple[Path, dict, list[str]]:
    """The demo data chain (``astrollama.demo.data.prepare``, one paper summarised, 24 tokens), run
    ONCE per session for the tests that check it and compare against it: (workdir, result, log lines).
    A test that reruns it in that workdir must leave it unchanged (as a rerun should)."""
    from astrollama.demo.data import prepare

    lines: list[str] = []
    root = tmp_path_factory.mktemp("demo-prep") / "demo"
    return root, prepare(root, log=lines.append, summary_papers=1, summary_tokens=24), lines
