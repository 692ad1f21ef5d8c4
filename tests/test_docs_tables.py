"""The parts of the docs that restate the code are generated from it (tools/docs-tables.py):
docs/config.md's metric types and column tables, docs/plugins.md's shipped distributions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_docs_equal_the_code():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "docs-tables.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_every_shipped_distribution_is_listed_in_plugins_md():
    plugins_md = (ROOT / "docs" / "plugins.md").read_text()
    for project in ROOT.glob("plugins/*/pyproject.toml"):
        name = next(line.split("=", 1)[1].strip().strip('"') for line in project.read_text().splitlines()
                    if line.startswith("name = "))
        assert f"- `{name}`: " in plugins_md, name
