"""The trace dns gadget run in-process for this plugin's tests (the shared fixtures come from the
repository's conftest.py)."""

from __future__ import annotations

import pytest
from dns_server import start as start_server


@pytest.fixture
def dns_gadget(trace_rows):
    """The gadget, started, and its TraceRows (the rows it has handed over)."""
    rows = trace_rows("dns")
    return rows.gadget, rows


@pytest.fixture
def watched(dns_gadget, netns):
    """The gadget watching a namespace in which the test resolver answers on 127.0.0.1."""
    gadget, rows = dns_gadget
    server = start_server(netns.run, "127.0.0.1")
    gadget.add_netns(netns.inode, netns.path)
    yield gadget, rows, netns.run
    server.kill()
