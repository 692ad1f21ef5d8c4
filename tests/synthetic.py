"""Helpers to drive the test-only `synth` gadgets of tests/plugins/synthetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The smallest config on the synth gadget: a counter of its events.
SYNTH = "metrics_name: m\nmetrics:\n  - {name: events, type: counter, category: trace, gadget: synth}\n"


class Feed:
    """The JSON-lines file the `trace synth` gadget tails."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def send(self, *rows: dict) -> None:
        with self.path.open("a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def synth(tmp_path, monkeypatch):
    """Enable the synth gadgets for ig processes started by this test; returns (feed, snapshot_file)."""
    feed = Feed(tmp_path / "feed.jsonl")
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text("[]")
    monkeypatch.setenv("IG_TEST_GADGETS", "1")
    monkeypatch.setenv("IG_SYNTHETIC_FEED", str(feed.path))
    monkeypatch.setenv("IG_SYNTHETIC_SNAPSHOT", str(snapshot))
    return feed, snapshot
