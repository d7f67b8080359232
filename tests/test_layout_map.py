"""README.md's "Repository layout" names every room: each module and package of
``src/astrollama/`` (as its path below ``src/astrollama/``, e.g. ``data/ocr/stage.py`` or
``data/ocr/``) and each script of ``slurm/`` (as ``slurm/NAME.sh``), written in backquotes.
A new module or script fails this test until the map says what it is."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "astrollama"


def layout_section(readme: str) -> str:
    """The text from the "## Repository layout" heading to the next level-2 heading."""
    m = re.search(r"^## Repository layout\n(.*?)(?=^## )", readme, re.S | re.M)
    assert m, "README.md has no '## Repository layout' section"
    return m.group(1)


def named(section: str) -> set[str]:
    """Every backquoted word of the section."""
    return set(re.findall(r"`([^`\n]+)`", section))


def rooms() -> list[str]:
    """What the map must name: modules (``__init__.py`` is its package's), packages, slurm scripts."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(PACKAGE)
        if path.name == "__init__.py":
            if rel.parent != Path("."):
                out.append(f"{rel.parent.as_posix()}/")
        else:
            out.append(rel.as_posix())
    out += [f"slurm/{p.name}" for p in sorted((REPO / "slurm").glob("*.sh"))]
    return out


def missing(section: str, wanted: list[str]) -> list[str]:
    have = named(section)
    return [name for name in wanted if name not in have]


def test_the_layout_map_names_every_module_package_and_slurm_script() -> None:
    section = layout_section((REPO / "README.md").read_text(encoding="utf-8"))
    gone = missing(section, rooms())
    assert not gone, "README.md 'Repository layout' does not name: " + ", ".join(gone)


def test_the_check_sees_a_new_module_and_a_name_outside_the_section() -> None:
    readme = (
        "# x\n## Repository layout\n| `cli.py` | `data/` | `data/ocr/stage.py` | `slurm/cpt.sh` |\n"
        "## Next\n`data/new.py`\n"
    )
    section = layout_section(readme)
    wanted = ["cli.py", "data/", "data/ocr/stage.py", "data/new.py", "slurm/cpt.sh", "slurm/new.sh"]
    assert missing(section, wanted) == ["data/new.py", "slurm/new.sh"]
    assert "train/" in rooms() and "data/ocr/stage.py" in rooms() and "slurm/_env.sh" in rooms()
    assert "__init__.py" not in rooms() and "data/ocr/__init__.py" not in rooms()
