"""trace bind on the real kernel: the gadget alone, every bind of a chosen loopback port is exactly one row."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from igcore.plugins import load_catalog
from tests.fixtures.igrun import free_port

COMM = Path("/proc/self/comm").read_text().strip()


def test_schema_and_registration():
    spec = load_catalog().get("trace", "bind")
    assert spec is not None and spec.distribution == "ig-gadget-bind"
    assert spec.container_key == "cgroup_id"
    kinds = {c.name: c.kind.value for c in spec.columns}
    for name, kind in [("pid", "int"), ("uid", "int"), ("comm", "str"), ("proto", "str"), ("addr", "str"),
                       ("port", "int"), ("if", "str"), ("retval", "int"), ("cgroup_id", "uint"),
                       ("k8s.container", "str")]:
        assert kinds[name] == kind, name
    assert spec.columns.get("ret").name == "retval"


def test_n_binds_of_a_loopback_port_give_n_rows(trace_rows):
    """Six binds of port P: the first holds it (listening), the second fails with EADDRINUSE, four more
    succeed after it is released. A bind of another port afterwards is the sentinel: once it is seen,
    every earlier row has arrived."""
    trace = trace_rows("bind")
    port, sentinel = free_port(), free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    with socket.socket() as clash, pytest.raises(OSError) as failed:
        clash.bind(("127.0.0.1", port))
    assert failed.value.errno == errno.EADDRINUSE
    holder.close()
    for _ in range(4):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", sentinel))
    assert trace.wait(lambda r: r["port"] == sentinel)
    rows = trace.matching(lambda r: r["port"] == port)
    assert [r["retval"] for r in rows] == [0, -errno.EADDRINUSE, 0, 0, 0, 0]
    for r in rows:
        assert (r["pid"], r["comm"], r["proto"], r["addr"], r["if"]) == (os.getpid(), COMM, "TCP", "127.0.0.1", "")
        assert r["uid"] == 0 and r["cgroup_id"] > 0 and r["mntns"] == os.stat("/proc/self/ns/mnt").st_ino
    assert trace.matching(lambda r: r["port"] == sentinel)[0]["proto"] == "UDP"
    assert trace.gadget.stats.events_lost == 0 and trace.gadget.stats.decode_errors == 0


def test_ipv6_udp_bound_to_a_device(trace_rows):
    trace = trace_rows("bind")
    port = free_port()
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        s.bind(("::1", port))
    rows = trace.wait(lambda r: r["port"] == port)
    assert len(rows) == 1
    assert (rows[0]["proto"], rows[0]["addr"], rows[0]["if"], rows[0]["retval"]) == ("UDP", "::1", "lo", 0)


def test_only_internet_sockets(trace_rows):
    """Unix and netlink binds are not rows (Inspektor Gadget's trace bind sees inet/inet6 only): between
    two inet binds of this process, nothing else of it arrives."""
    trace = trace_rows("bind")
    first, last = free_port(), free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", first))
    path = f"/tmp/ig-bind-{os.getpid()}.sock"
    with socket.socket(socket.AF_UNIX) as u:
        u.bind(path)
    os.unlink(path)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW) as n:
        n.bind((0, 0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", last))
    assert trace.wait(lambda r: r["port"] == last)
    mine = [r["port"] for r in trace.matching(lambda r: r["pid"] == os.getpid())]
    assert mine[mine.index(first):] == [first, last]
