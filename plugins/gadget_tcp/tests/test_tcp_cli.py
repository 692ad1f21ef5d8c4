"""`ig list-gadgets` and `ig trace tcp` show the gadget, as installed with pip."""

from __future__ import annotations

import socket

from tests.fixtures.igrun import free_port
from tests.fixtures.ig_trace import list_gadgets


def test_list_gadgets_shows_tcp_and_its_columns():
    assert "ig-gadget-tcp" in next(line for line in list_gadgets().splitlines() if "│ tcp " in line)
    columns = list_gadgets("trace", "tcp")
    for name in ("operation", "saddr", "daddr", "sport", "dport", "ip", "retval", "k8s.container"):
        assert f"│ {name} " in columns, name


def test_ig_trace_tcp_prints_rows(live_trace):
    trace = live_trace("tcp", "--host")
    port = free_port()  # nothing listens there: each try is a refused connect

    def connect_once() -> None:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
        except ConnectionRefusedError:
            pass

    row = trace.until(lambda r: r["dport"] == port, connect_once)
    assert (row["operation"], row["daddr"], row["retval"], row["ip"]) == ("connect", "127.0.0.1", -111, 4)
