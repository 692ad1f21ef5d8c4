"""constraints.txt pins exactly the distributions ig needs (with the test and lint extras), each at
the version installed (README, "Checks and pinned dependencies"): a dependency added without its
pin, a pin left for one no longer needed, or a pin moved without a reinstall fails here."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = {"igcore": {"test", "lint"}}   # the extras tools/setup.sh installs


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[_canonical(name)] = version.strip()
    return pins


def _own() -> set[str]:
    """ig and the gadget distributions of this clone: installed from it, never pinned."""
    files = [ROOT / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("tests/plugins/*/pyproject.toml")]
    return {_canonical(tomllib.loads(f.read_text(encoding="utf-8"))["project"]["name"]) for f in files}


def _needed(own: set[str]) -> dict[str, str]:
    """Every distribution the own ones require, transitively, with its installed version."""
    todo = [(name, frozenset(EXTRAS.get(name, ()))) for name in own]
    seen, versions = set(), {}
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = metadata.distribution(name)
        versions[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append((_canonical(req.name), frozenset(req.extras)))
    return {name: version for name, version in versions.items() if name not in own}


def test_constraints_pin_every_needed_distribution_at_its_installed_version():
    assert _needed(_own()) == _pins()
