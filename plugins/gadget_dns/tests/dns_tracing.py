"""What the in-process tests of trace dns share: a started gadget collecting its rows, dig."""

from __future__ import annotations

import subprocess
import time

import pytest
from dns_server import start as start_server

from igcore.gadgets import GadgetContext
from igcore.plugins import load_catalog


def dig(prefix: list[str], name: str, server: str = "127.0.0.1", *opts: str) -> str:
    return subprocess.run([*prefix, "dig", "+short", "+tries=1", "+time=2", *opts, f"@{server}", name],
                          capture_output=True, text=True, check=True).stdout


class Rows:
    def __init__(self):
        self.rows: list[dict] = []

    def __call__(self, batch):
        self.rows.extend(batch)

    def wait(self, check, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not check(self.rows) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.rows


@pytest.fixture
def dns_gadget(require_bpf):
    """The gadget, started, and the rows it has handed over."""
    gadget = load_catalog().get("trace", "dns").factory(GadgetContext(host=True))
    rows = Rows()
    gadget.start(rows)
    yield gadget, rows
    gadget.stop()


@pytest.fixture
def watched(dns_gadget, netns):
    """The gadget watching a namespace in which the test resolver answers on 127.0.0.1."""
    gadget, rows = dns_gadget
    server = start_server(netns.run, "127.0.0.1")
    gadget.add_netns(netns.inode, netns.path)
    yield gadget, rows, netns.run
    server.kill()
