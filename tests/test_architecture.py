"""The import rules of docs/architecture.md ("Rooms and floors"), checked against the real imports of
igcore and of every plugin: each import in a module, at its top or inside a function, is read from
its source."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
# What a gadget must never reach: the config and metrics side of the core.
METRICS_ROOMS = frozenset({"igcore.config", "igcore.metrics", "igcore.collector", "igcore.exposition",
                           "igcore.naming", "igcore.handover", "igcore.engine"})


def modules(package: Path) -> dict[str, Path]:
    """Every module of the package directory, by its dotted name (a package by its own name)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The absolute names of what the module imports; for `from X import Y`, X.Y as well (Y may be
    a module)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            found.add(source)
            found |= {f"{source}.{alias.name}" for alias in node.names}
    return found


def room(module: str) -> str:
    """`igcore` for the package itself, else `igcore.X` of `igcore.X...` (a sub-package is one room)."""
    return ".".join(module.split(".")[:2])


def floors() -> dict[str, int]:
    """The table between the markers of docs/architecture.md: room -> floor."""
    text = DOC.read_text()
    table = text[text.index("<!-- floors: read by"):text.index("<!-- floors: end -->")]
    placed: dict[str, int] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for name in re.findall(r"`([\w.]+)`", cells[1]):
                assert name not in placed, f"{name} is on two floors"
                placed[name] = int(cells[0])
    return placed


CORE = modules(ROOT / "igcore")
PLUGIN_PACKAGES = sorted(p for p in [*ROOT.glob("plugins/*/ig_gadget_*"), *ROOT.glob("tests/plugins/*/ig_gadget_*")]
                         if (p / "__init__.py").exists())


def core_imports(module: str) -> set[str]:
    """The igcore modules `module` names in its imports."""
    return (imports(module, CORE[module]) & CORE.keys()) - {module}


def loaded_with(module: str) -> set[str]:
    """The igcore modules importing `module` runs: what it imports, and the packages above each
    (importing a module runs its packages' __init__ first)."""
    found = set()
    for target in {module, *core_imports(module)}:
        parts = target.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & CORE.keys()
    return found - {module}


def test_every_room_of_igcore_is_on_one_floor():
    assert {room(m) for m in CORE} == set(floors())


def test_no_room_imports_a_room_of_a_higher_floor():
    floor = floors()
    upward = [f"{m} (floor {floor[room(m)]}) imports {t} (floor {floor[room(t)]})"
              for m in CORE for t in sorted(core_imports(m)) if floor[room(t)] > floor[room(m)]]
    assert upward == []


@pytest.mark.parametrize("package", PLUGIN_PACKAGES, ids=lambda p: p.name)
def test_a_plugin_imports_only_the_api(package):
    outside = {f"{path.name}: {target}" for name, path in modules(package).items() for target in imports(name, path)
               if target.split(".")[0] == "igcore" and target != "igcore.api" and not target.startswith("igcore.api.")}
    assert outside == set()


def test_plugins_are_found():
    """The parametrized test above runs on every shipped and test plugin (a wrong glob would make it vacuous)."""
    distributions = [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("tests/plugins/*/pyproject.toml")]
    assert len(PLUGIN_PACKAGES) == len(distributions) > 9


def test_the_plugin_api_never_reaches_the_metrics_code():
    reached, todo = set(), ["igcore.api"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += loaded_with(module)
    assert {m for m in reached if room(m) in METRICS_ROOMS} == set()
    # And as Python loads it: importing the API leaves the metrics side unloaded.
    loaded = subprocess.run([sys.executable, "-c", "import sys, igcore.api; print(*sorted(sys.modules))"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert {m for m in loaded if m.startswith("igcore") and room(m) in METRICS_ROOMS} == set()


def test_the_core_never_imports_a_gadget():
    gadgets = {f"{m}: {t}" for m in CORE for t in imports(m, CORE[m]) if t.split(".")[0].startswith("ig_gadget")}
    assert gadgets == set()
