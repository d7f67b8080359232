"""The import map of ``src/astrollama``: every module on its floor, what it imports, and the
violations of the house rules (exit 1 when there is one).

Floors (docs/README "Repository layout"):

* **basement**: the top-level modules of the package (``config``, ``errors``, ``io``, ``paths``,
  ``models``, ``benchmark``, ``cli_args``, ...): they import only the basement;
* **wings**: ``data``, ``train``, ``evaluation``: each imports the basement and itself, never
  another wing;
* **roof**: ``cli``, ``__main__``, ``reproduce``, ``demo``: may import anything; nothing below
  imports it;
* **tools**: ``astrollama.tools``: imported only by the roof, by tools (and by tests).

An import is any ``import``/``from ... import`` in a module (function-level ones too), a constant
``importlib.import_module("astrollama...")``, and a module named in a registry (a string that is
exactly a module's name inside a tuple, list, set or dict, like the command groups of
``astrollama.cli``). No two modules may import each other, directly or round a longer circle.

Usage: ``python scripts/import_map.py [--src SRC] [--quiet]`` (default ``src`` of this checkout).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = "astrollama"
WINGS = ("data", "train", "evaluation")
ROOF = ("cli", "__main__", "commands", "reproduce", "targets", "demo")
TOOLS = ("tools",)

# Imports allowed to break a rule, each with its reason (none today). They are left out of the rules
# and of the circle search, so every other import is still checked.
ALLOWED: frozenset[tuple[str, str]] = frozenset()

FLOORS = ("basement", "wings", "roof", "tools")


def module_files(src: Path) -> dict[str, Path]:
    """``{"astrollama.data.manifest": path, ...}`` for every module of the package under ``src``."""
    out: dict[str, Path] = {}
    for f in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _known(name: str, modules: Iterable[str]) -> str | None:
    """The longest module of ``modules`` that ``name`` is or lies in (None: not ours)."""
    mods = set(modules)
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, tree: ast.AST, is_package: bool, modules: Iterable[str]) -> dict[str, int]:
    """``{imported module: first line}`` for one module's syntax tree (our modules only)."""
    mods = set(modules)
    out: dict[str, int] = {}

    def add(target: str | None, line: int) -> None:
        if target is not None and target != module:
            out.setdefault(target, line)

    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_known(alias.name, mods), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:  # a module (from pkg import mod), else the module of a name
                full = f"{base}.{alias.name}"
                add(full if full in mods else _known(base, mods), node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == (
            "import_module"
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                add(_known(node.args[0].value, mods), node.lineno)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            items = node.values if isinstance(node, ast.Dict) else node.elts
            for item in items:
                if isinstance(item, ast.Constant) and item.value in mods:
                    add(item.value, item.lineno)
    return out


def import_graph(src: Path) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` for every module of the package under ``src``."""
    files = module_files(src)
    return {
        m: imports_of(m, ast.parse(f.read_text(encoding="utf-8"), str(f)), f.name == "__init__.py", files)
        for m, f in files.items()
    }


def floor(module: str) -> str:
    """``basement``, ``wings``, ``roof`` or ``tools``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in TOOLS:
        return "tools"
    if len(parts) > 1 and parts[1] in ROOF:
        return "roof"
    if len(parts) > 1 and parts[1] in WINGS:
        return "wings"
    return "basement"


def wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if floor(module) == "wings" else None


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def violations(graph: Mapping[str, Mapping[str, int]]) -> list[str]:
    """One line per broken rule: ``module:line imports target: why``, then each import circle."""
    out: list[str] = []
    for m in sorted(graph):
        for t, line in sorted(graph[m].items()):
            if (m, t) in ALLOWED:
                continue
            fm, ft = floor(m), floor(t)
            why = None
            if ft == "roof" and fm != "roof":
                why = "nothing below the roof imports the roof"
            elif ft == "tools" and fm not in ("roof", "tools"):
                why = "only the roof and tools import a tool"
            elif fm == "basement" and ft != "basement":
                why = "the basement imports only the basement"
            elif fm == "wings" and ft == "wings" and wing(m) != wing(t):
                why = f"the {wing(m)} wing imports another wing ({wing(t)})"
            if why:
                out.append(f"{m}:{line} imports {t}: {why}")
    for component in cycles({m: {t for t in ts if (m, t) not in ALLOWED} for m, ts in graph.items()}):
        out.append(f"import circle: {' <-> '.join(component)}")
    return out


def render(graph: Mapping[str, Mapping[str, int]]) -> str:
    lines: list[str] = []
    for name in FLOORS:
        members = [m for m in sorted(graph) if floor(m) == name]
        lines.append(f"== {name} ({len(members)} modules)")
        for m in members:
            lines.append(f"  {m} -> {', '.join(sorted(graph[m])) or '(nothing of ours)'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"), help="the src folder")
    p.add_argument("--quiet", action="store_true", help="print only the summary and the violations")
    a = p.parse_args(argv)
    graph = import_graph(Path(a.src))
    if not a.quiet:
        print(render(graph))
    bad = violations(graph)
    counts = ", ".join(f"{name} {sum(floor(m) == name for m in graph)}" for name in FLOORS)
    edges = sum(len(v) for v in graph.values())
    print(f"{len(graph)} modules ({counts}), {edges} imports, {len(bad)} violations")
    for line in bad:
        print(f"  {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
