"""snapshot socket on real sockets, in network namespaces the tests create and in containers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

from igcore.gadgets import GadgetContext
from igcore.plugins import load_catalog
from ig_gadget_socket.plugin import read_namespace
from ig_gadget_socket.procnet import Addresses

# Opens a listener, K connections whose client side closes while the server never reads or closes
# (so the server side sits in CLOSE_WAIT), a UDP socket connected and one not, then waits.
SOCKETS = r"""
import socket, sys, time
k = int(sys.argv[1])
family, host = (socket.AF_INET6, "::1") if sys.argv[2] == "6" else (socket.AF_INET, "127.0.0.1")
srv = socket.socket(family); srv.bind((host, 0)); srv.listen(64)
port = srv.getsockname()[1]
kept = []
for _ in range(k):
    c = socket.socket(family); c.connect((host, port))
    s, _ = srv.accept(); kept.append(s); c.close()
u1 = socket.socket(family, socket.SOCK_DGRAM); u1.bind((host, 0))
u2 = socket.socket(family, socket.SOCK_DGRAM); u2.connect((host, 9))
print(port, flush=True)
time.sleep(600)
"""


def snapshot():
    return load_catalog().get("snapshot", "socket").factory(GadgetContext(host=True)).snapshot()


def start_sockets(prefix: list[str], k: int, family: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([*prefix, sys.executable, "-c", SOCKETS, str(k), family], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, port


@pytest.mark.parametrize("family", ["4", "6"])
def test_close_wait_listen_and_udp_in_a_namespace(netns, family):
    proc, port = start_sockets(netns.run, 5, family)
    try:
        ns = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        rows = [r for r in snapshot() if r["netns"] == ns]
        loopback = "::1" if family == "6" else "127.0.0.1"
        assert len([r for r in rows if r["status"] == "CLOSE_WAIT"]) == 5
        listen = [r for r in rows if r["status"] == "LISTEN"]
        assert len(listen) == 1 and listen[0]["src.addr"] == loopback and listen[0]["src.port"] == port
        udp = sorted(r["status"] for r in rows if r["protocol"] == "UDP")
        assert udp == ["ACTIVE", "INACTIVE"]
        assert all(r["inode"] > 0 for r in rows if r["status"] == "CLOSE_WAIT")
    finally:
        proc.kill()
        proc.wait()


# Both ends of TIME_WAIT and SYN_RECV aside, every state a test can hold still: a listener with a
# connection waiting to be accepted, an established pair, a half-closed pair, and the sockets above.
MANY_STATES = SOCKETS.replace("print(port", """
w = socket.socket(family); w.connect((host, port))
a = socket.socket(family); a.connect((host, port)); b, _ = srv.accept()
f = socket.socket(family); f.connect((host, port)); g, _ = srv.accept(); f.shutdown(socket.SHUT_WR)
u3 = socket.socket(family, socket.SOCK_DGRAM); u3.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
print(port""")


@pytest.mark.parametrize("family", ["4", "6"])
def test_sock_diag_gives_the_proc_tables_rows(netns, family):
    """The gadget reads sock_diag (docs/config.md, What snapshot socket reads): row for row what the
    namespace's /proc/<pid>/net tables say."""
    proc = subprocess.Popen([*netns.run, sys.executable, "-c", MANY_STATES, "3", family], stdout=subprocess.PIPE,
                            text=True)
    try:
        proc.stdout.readline()
        ns = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        gadget = load_catalog().get("snapshot", "socket").factory(GadgetContext(host=True))
        by_diag = [r for r in gadget.snapshot() if r["netns"] == ns]
        assert gadget.reader == "sock_diag"
        by_proc = read_namespace(ns, proc.pid, Addresses())
        key = lambda row: tuple(sorted(row.items()))
        assert sorted(map(key, by_diag)) == sorted(map(key, by_proc))
        assert {r["status"] for r in by_diag} >= {"LISTEN", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT2", "ACTIVE",
                                                   "INACTIVE"}
    finally:
        proc.kill()
        proc.wait()


# A dual-stack listener (IPv6 socket on ::) that an IPv4 client reaches: the accepted socket is in tcp6
# with IPv4-mapped addresses, shown as IPv4.
DUAL_STACK = r"""
import socket, time
srv = socket.socket(socket.AF_INET6); srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind(("::", 0)); srv.listen(4)
c = socket.create_connection(("127.0.0.1", srv.getsockname()[1])); s, _ = srv.accept()
print(srv.getsockname()[1], c.getsockname()[1], flush=True)
time.sleep(600)
"""


def test_ipv4_mapped_addresses_are_shown_as_ipv4(netns):
    proc = subprocess.Popen([*netns.run, sys.executable, "-c", DUAL_STACK],
                            stdout=subprocess.PIPE, text=True)
    try:
        port, client_port = map(int, proc.stdout.readline().split())
        ns = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        rows = {(r["status"], r["src.port"]): r for r in snapshot() if r["netns"] == ns}
        assert rows["LISTEN", port]["src.addr"] == "::"
        accepted = rows["ESTABLISHED", port]
        assert accepted["src.addr"] == accepted["dst.addr"] == "127.0.0.1"
        assert accepted["dst.port"] == client_port
    finally:
        proc.kill()
        proc.wait()


def test_each_namespace_is_read_once(netns):
    proc, _ = start_sockets(netns.run, 2, "4")
    extra = subprocess.Popen([*netns.run, "sleep", "60"])
    try:
        ns = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        rows = [r for r in snapshot() if r["netns"] == ns]
        # listener + 2 CLOSE_WAIT, each once; the closed clients linger without an inode, in FIN_WAIT1
        # until the server's delayed ACK of their FIN, then in FIN_WAIT2
        inodes = [r["inode"] for r in rows if r["protocol"] == "TCP" and r["inode"]]
        assert len(inodes) == len(set(inodes)) == 3
        assert len([r for r in rows if r["status"] in ("FIN_WAIT1", "FIN_WAIT2")]) == 2
    finally:
        for p in (proc, extra):
            p.kill()
            p.wait()


def test_a_namespace_is_read_through_another_process_when_the_first_exited(netns, monkeypatch):
    from ig_gadget_socket import plugin

    proc, port = start_sockets(netns.run, 1, "4")
    exited = subprocess.Popen([*netns.run, "sleep", "60"])
    try:
        ns = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        os.stat(f"/proc/{exited.pid}/ns/net")
        exited.kill()
        os.waitid(os.P_PID, exited.pid, os.WEXITED | os.WNOWAIT)   # a zombie now: no net directory
        # the zombie is listed first, as if it had exited between the listing and the read
        monkeypatch.setattr(plugin, "namespaces", lambda: {ns: [exited.pid, proc.pid]})
        rows = snapshot()
        assert {(r["status"], r["src.port"]) for r in rows if r["protocol"] == "TCP" and r["inode"]} == {
            ("LISTEN", port), ("CLOSE_WAIT", port)}
    finally:
        for p in (proc, exited):
            p.kill()
            p.wait()


# A fresh network namespace of its own, loopback up, then exec: the pid stays the program's.
OWN_NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def test_namespaces_vanishing_during_the_snapshot_are_skipped(require_bpf, monkeypatch):
    """Namespaces that vanish between the listing and the read (one whose process is reaped, one
    whose process is a zombie) are skipped; one that appears meanwhile is not read; the others are."""
    from ig_gadget_socket import plugin

    procs = [start_sockets(OWN_NETNS, 0, "4") for _ in range(4)]
    (reaped, _), (zombie, _), (kept, kept_port), (kept2, kept2_port) = procs
    ns = {p.pid: os.stat(f"/proc/{p.pid}/ns/net").st_ino for p, _ in procs}
    listener = socket.create_server(("127.0.0.1", 0))
    appeared: list[subprocess.Popen] = []
    real_namespaces = plugin.namespaces

    def namespaces_then_churn():
        listed = real_namespaces()
        assert {ns[p.pid] for p, _ in procs} <= listed.keys()   # all four existed when listed
        reaped.kill()
        reaped.wait()                                             # gone from /proc
        zombie.kill()
        os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # a zombie: no namespaces
        appeared.append(start_sockets(OWN_NETNS, 0, "4")[0])   # new after the listing
        return listed

    monkeypatch.setattr(plugin, "namespaces", namespaces_then_churn)
    try:
        rows = snapshot()
        seen = {r["netns"] for r in rows}
        assert ns[kept.pid] in seen and ns[kept2.pid] in seen
        assert ns[reaped.pid] not in seen and ns[zombie.pid] not in seen
        assert os.stat(f"/proc/{appeared[0].pid}/ns/net").st_ino not in seen
        listening = {(r["netns"], r["src.port"]) for r in rows if r["status"] == "LISTEN"}
        assert {(ns[kept.pid], kept_port), (ns[kept2.pid], kept2_port)} <= listening
        assert any(r["src.port"] == listener.getsockname()[1] for r in rows if r["status"] == "LISTEN")
    finally:
        listener.close()
        for p in [p for p, _ in procs] + appeared:
            p.kill()
            p.wait()


GAUGES = """
metrics_name: sockets
metrics:
  - name: close_wait_sockets
    type: gauge
    category: snapshot
    gadget: socket
    labels: [k8s.container]
    selector: ["status:CLOSE_WAIT"]
  - name: listening_sockets
    type: gauge
    category: snapshot
    gadget: socket
    labels: [k8s.container]
    selector: ["status:LISTEN"]
"""


def test_container_close_wait_gauge(run_ig, docker):
    name = "ig-sockets-" + uuid.uuid4().hex[:6]
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    pid = docker.inspect(name, "{{.State.Pid}}")
    # sockets in the container's own network namespace (its loopback), made by a helper process
    proc, _ = start_sockets(["nsenter", f"--net=/proc/{pid}/ns/net"], 3, "4")
    try:
        ig = run_ig(GAUGES, "--snapshot-min-interval", "0")
        assert ig.wait_for("close_wait_sockets", 3, k8s_container=name) == 3
        assert ig.value("listening_sockets", k8s_container=name) == 1
    finally:
        proc.kill()
        proc.wait()
