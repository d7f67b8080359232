"""Fixtures for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_prep(tmp_path_factory) -> tuple[Path, dict, list[str]]:
    """The demo data chain (`astrollama data run data_prep/demo.yaml`, one paper summarised, 24
    tokens: ``tests.data.test_demo_chain.run_chain``), run ONCE per session for the tests that check
    it and compare against it: (workdir, result, log lines). A test that reruns it in that workdir
    must leave it unchanged (as a rerun should)."""
    from tests.data.test_demo_chain import run_chain

    lines: list[str] = []
    root = tmp_path_factory.mktemp("demo-prep") / "demo"
    return root, run_chain(root, lines), lines
