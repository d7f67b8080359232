"""The import map (scripts/import_map.py) of the real tree holds no violation: no wing imports another
wing, the basement imports only the basement, nothing below the roof imports it, only the roof and
tools import a tool, no import circle. The rules themselves are checked on made-up graphs that
break each one, so the check can fail."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "import_map.py"


def _load():
    spec = importlib.util.spec_from_file_location("import_map", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["import_map"] = mod
    spec.loader.exec_module(mod)
    return mod


imap = _load()


def test_the_real_tree_has_no_violation():
    graph = imap.import_graph(REPO / "src")
    assert len(graph) > 50 and {"astrollama.cli", "astrollama.cli_args", "astrollama.data.manifest"} <= set(
        graph
    )
    assert imap.violations(graph) == []


def test_the_script_prints_the_floors_and_exits_0():
    p = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    for name in imap.FLOORS:
        assert f"== {name} (" in p.stdout
    assert "0 violations" in p.stdout.splitlines()[-1]


def test_function_level_relative_and_registry_imports_count():
    mods = {"astrollama.data.x", "astrollama.data.y", "astrollama.train.z", "astrollama.io", "astrollama.cli"}
    src = (
        "import importlib\n"
        "from . import y\n"
        "def f():\n"
        "    from astrollama.train.z import thing\n"
        "    importlib.import_module('astrollama.io')\n"
        "GROUPS = {'x': 'astrollama.cli'}\n"
    )
    found = imap.imports_of("astrollama.data.x", ast.parse(src), False, mods)
    assert found == {"astrollama.data.y": 2, "astrollama.train.z": 4, "astrollama.io": 5, "astrollama.cli": 6}


@pytest.mark.parametrize(
    ("graph", "why"),
    [
        ({"astrollama.data.a": {"astrollama.train.b": 3}, "astrollama.train.b": {}}, "imports another wing"),
        ({"astrollama.io": {"astrollama.data.a": 7}, "astrollama.data.a": {}}, "the basement imports only"),
        ({"astrollama.data.a": {"astrollama.cli": 1}, "astrollama.cli": {}}, "nothing below the roof"),
        ({"astrollama.io": {"astrollama.cli": 1}, "astrollama.cli": {}}, "nothing below the roof"),
        ({"astrollama.train.a": {"astrollama.tools.bench": 2}, "astrollama.tools.bench": {}}, "only the roof and tools"),
        (
            {"astrollama.data.a": {"astrollama.data.b": 1}, "astrollama.data.b": {"astrollama.data.c": 1},
             "astrollama.data.c": {"astrollama.data.a": 1}},
            "import circle: astrollama.data.a <-> astrollama.data.b <-> astrollama.data.c",
        ),
        ({"astrollama.cli": {"astrollama.reproduce": 1}, "astrollama.reproduce": {"astrollama.demo": 1},
          "astrollama.demo": {"astrollama.cli": 1}}, "import circle"),
    ],
)  # fmt: skip
def test_each_rule_catches_its_violation(graph, why):
    bad = imap.violations(graph)
    assert len(bad) == 1 and why in bad[0], bad


def test_what_the_rules_allow():
    graph = {
        "astrollama.cli": {"astrollama.data.cli": 1, "astrollama.tools.bench": 2, "astrollama.io": 3},
        "astrollama.data.cli": {"astrollama.data.manifest": 1, "astrollama.cli_args": 2},
        "astrollama.data.manifest": {"astrollama.io": 1},
        "astrollama.cli_args": {"astrollama.errors": 1},
        "astrollama.io": {"astrollama.errors": 1},
        "astrollama.errors": {},
        "astrollama.tools.bench": {"astrollama.data.manifest": 1, "astrollama.train.x": 1},
        "astrollama.train.x": {"astrollama.io": 1},
    }
    assert imap.violations(graph) == []
    assert [
        imap.floor(m) for m in ("astrollama", "astrollama.demo.sft", "astrollama.tools.x", "astrollama.data")
    ] == [
        "basement",
        "roof",
        "tools",
        "wings",
    ]


def test_the_script_exits_1_on_a_violating_tree(tmp_path):
    pkg = tmp_path / "src" / "astrollama"
    for d in ("data", "train"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("def f():\n    from astrollama.train import b\n")
    (pkg / "train" / "b.py").write_text("")
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--src", str(tmp_path / "src"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1
    assert (
        "astrollama.data.a:2 imports astrollama.train.b: the data wing imports another wing (train)"
        in p.stdout
    )
