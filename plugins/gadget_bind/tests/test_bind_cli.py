"""`ig list-gadgets` and `ig trace bind` show the gadget, as installed with pip."""

from __future__ import annotations

import socket

from tests.fixtures.igrun import free_port
from tests.fixtures.ig_trace import list_gadgets
from tests.fixtures.kernel_paths import kernel_columns, placements


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


def test_list_gadgets_and_check_show_what_the_kernel_knows():
    """docs/config.md, "What trace bind sees": every column but addr (and the row's own timestamp
    and mntns) is known in the kernel, and --check names addr where it keeps a metric in user space."""
    assert kernel_columns("bind") == {"pid", "tid", "uid", "gid", "comm", "proto", "port", "if", "retval", "cgroup_id"}
    where = placements("bind", {
        "failures": 'labels: [k8s.container, proto, port, if], selector: ["ret:<0", "proto:!UDP", "if:lo"]',
        "by_comm": 'labels: [comm, uid, retval], selector: ["port:>=1024"]',
        "by_address": 'labels: [addr, port]',
    })
    assert where == {"failures": "in the kernel (a BPF map of trace bind)",
                     "by_comm": "in the kernel (a BPF map of trace bind)",
                     "by_address": "in user space (trace bind): label addr: column addr is not known in the "
                                   "gadget's eBPF program"}, where
