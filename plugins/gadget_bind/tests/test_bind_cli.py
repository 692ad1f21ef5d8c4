"""`ig list-gadgets` and `ig trace bind` show the gadget, as installed with pip."""

from __future__ import annotations

import socket

from tests.fixtures.igrun import free_port
from tests.fixtures.ig_trace import list_gadgets


def test_list_gadgets_shows_bind_and_its_columns():
    assert "ig-gadget-bind" in next(line for line in list_gadgets().splitlines() if "│ bind " in line)
    columns = list_gadgets("trace", "bind")
    for name in ("proto", "addr", "port", "if", "retval", "k8s.container"):
        assert f"│ {name} " in columns, name


def test_ig_trace_bind_prints_rows(live_trace):
    trace = live_trace("bind", "--host")
    port = free_port()

    def bind_once() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    row = trace.until(lambda r: r["port"] == port, bind_once)
    assert (row["addr"], row["proto"], row["retval"], row["k8s.container"]) == ("127.0.0.1", "TCP", 0, "")
