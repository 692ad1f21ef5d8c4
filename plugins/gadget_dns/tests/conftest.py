"""The trace dns gadget run in-process for this plugin's tests (the shared fixtures come from the
repository's conftest.py)."""

from __future__ import annotations

import pytest
from dns_server import start as start_server
from ig_gadget_dns.bpf_loop import FORCE_ENV
from steps import BOUNDED, BPF_LOOP


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


@pytest.fixture(params=["bpf_loop", "bounded"])
def reader_build(request, monkeypatch):
    """Both builds of the kernel reader on this kernel (docs/config.md, Using trace dns: the one
    without bpf_loop is what Linux 5.8 to 5.16 run, forced here by IG_DNS_NO_BPF_LOOP=1, which the
    gadget and every ig started by the test read at start): the build's step bounds."""
    if request.param == "bounded":
        monkeypatch.setenv(FORCE_ENV, "1")
        return BOUNDED
    monkeypatch.delenv(FORCE_ENV, raising=False)
    return BPF_LOOP
