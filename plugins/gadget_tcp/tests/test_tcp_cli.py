"""`ig list-gadgets` and `ig trace tcp` show the gadget, as installed with pip."""

from __future__ import annotations

import socket

from tests.fixtures.igrun import free_port
from tests.fixtures.ig_trace import list_gadgets
from tests.fixtures.kernel_paths import kernel_columns, placements


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


def test_list_gadgets_and_check_show_what_the_kernel_knows():
    """docs/config.md, "What trace tcp sees": every column but the addresses (and the row's own
    timestamp and mntns) is known in the kernel, and --check names the address that keeps a metric
    in user space."""
    assert kernel_columns("tcp") == {"operation", "pid", "tid", "uid", "gid", "comm", "ip", "sport", "dport", "retval",
                                     "cgroup_id"}
    where = placements("tcp", {
        "connects": 'labels: [k8s.container, dport, retval, ip], selector: ["operation:connect", "ip:6"]',
        "closes": 'labels: [comm, uid, sport], selector: ["t:!accept", "dport:<1024"]',
        "by_peer": 'labels: [daddr], selector: ["operation:connect"]',
        "from_here": 'selector: ["saddr:127.0.0.1"]',
    })
    assert where == {"connects": "in the kernel (a BPF map of trace tcp)",
                     "closes": "in the kernel (a BPF map of trace tcp)",
                     "by_peer": "in user space (trace tcp): label daddr: column daddr is not known in the "
                                "gadget's eBPF program",
                     "from_here": "in user space (trace tcp): selector \"saddr:127.0.0.1\": column saddr is not "
                                  "known in the gadget's eBPF program"}, where
