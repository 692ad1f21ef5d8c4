"""Every example config is accepted, and the docs quote the example files as they are."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IG = str(Path(sys.executable).with_name("ig"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_check(path):
    result = subprocess.run([IG, "prometheus", "--check", "--config", f"@{path}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_default_config_passes_check():
    result = subprocess.run([IG, "prometheus", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_docs_quote_examples_verbatim():
    quoted = 0
    for doc in (ROOT / "docs").glob("*.md"):
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), flags=re.S):
            first, _, body = block.partition("\n")
            match = re.fullmatch(r"# (examples/[\w.-]+\.yaml)", first.strip())
            if match:
                text = (ROOT / match.group(1)).read_text()
                assert body in text, f"{doc.name} quotes {match.group(1)} differently"
                quoted += 1
    assert quoted >= 1
