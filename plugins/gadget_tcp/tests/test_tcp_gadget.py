"""trace tcp on the real kernel, in a network namespace the test made: connects, accepts and closes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from igcore.plugins import load_catalog

PORT, REFUSED = 4242, 4243  # the namespace is the test's own: no other listener there

# Runs inside the namespace: N connects to a listener on loopback and N accepts (a buffer for the
# peer's address, as most servers pass), then a connect to a closed port as the sentinel.
PEERS = textwrap.dedent("""
    import json, socket, sys
    n, family, host = int(sys.argv[1]), getattr(socket, sys.argv[2]), sys.argv[3]
    server = socket.socket(family)
    server.bind((host, {port}))
    server.listen(n)
    pairs = []
    for _ in range(n):
        client = socket.create_connection((host, {port}))
        conn, peer = server.accept()
        pairs.append([client.getsockname()[1], conn.fileno()])
        client.close()
        conn.close()
    try:
        socket.create_connection((host, {refused}))
    except ConnectionRefusedError:
        pass
    print(json.dumps(pairs))
""").format(port=PORT, refused=REFUSED)


def test_schema_and_registration():
    spec = load_catalog().get("trace", "tcp")
    assert spec is not None and spec.distribution == "ig-gadget-tcp"
    assert spec.container_key == "cgroup_id"
    kinds = {c.name: c.kind.value for c in spec.columns}
    for name, kind in [("operation", "str"), ("pid", "int"), ("comm", "str"), ("ip", "int"), ("saddr", "str"),
                       ("daddr", "str"), ("sport", "int"), ("dport", "int"), ("retval", "int"),
                       ("k8s.container", "str")]:
        assert kinds[name] == kind, name
    assert spec.columns.get("ret").name == "retval"
    assert spec.columns.get("t").name == "operation"


def run_peers(netns, n: int, family: str, host: str) -> tuple[int, list[list[int]]]:
    proc = subprocess.Popen([*netns.run, sys.executable, "-c", PEERS, str(n), family, host],
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return proc.pid, json.loads(out)


def check_peers(trace, netns, n: int, family: str, host: str, ip: int) -> None:
    pid, pairs = run_peers(netns, n, family, host)
    mine = lambda r: r["pid"] == pid
    assert trace.wait(lambda r: mine(r) and r["dport"] == REFUSED)
    client_ports = [c for c, _ in pairs]
    connects = trace.matching(lambda r: mine(r) and r["operation"] == "connect" and r["dport"] == PORT)
    accepts = trace.matching(lambda r: mine(r) and r["operation"] == "accept")
    assert [(r["saddr"], r["sport"], r["daddr"], r["ip"], r["retval"]) for r in connects] == \
        [(host, c, host, ip, 0) for c in client_ports]
    assert [(r["saddr"], r["sport"], r["daddr"], r["dport"], r["ip"], r["retval"]) for r in accepts] == \
        [(host, PORT, host, c, ip, fd) for c, fd in pairs]
    refused = trace.matching(lambda r: mine(r) and r["dport"] == REFUSED)
    assert [(r["operation"], r["retval"]) for r in refused] == [("connect", -111)]
    # Each connection closed by its two ends, both in this process: the client first (FIN_WAIT1),
    # then the accepted socket (LAST_ACK, after the client's FIN).
    closes = trace.matching(lambda r: mine(r) and r["operation"] == "close")
    assert sorted((r["sport"], r["dport"]) for r in closes) == \
        sorted([(c, PORT) for c in client_ports] + [(PORT, c) for c in client_ports])


def test_n_connects_and_accepts_ipv4(trace_rows, netns):
    trace = trace_rows("tcp")
    check_peers(trace, netns, 8, "AF_INET", "127.0.0.1", 4)
    assert trace.gadget.stats.events_lost == 0 and trace.gadget.stats.decode_errors == 0


def test_n_connects_and_accepts_ipv6(trace_rows, netns):
    trace = trace_rows("tcp")
    check_peers(trace, netns, 5, "AF_INET6", "::1", 6)


def test_non_blocking_connect_reports_in_progress(trace_rows, netns):
    """On loopback the handshake ends inside connect() (the SYN-ACK is handled as the call releases
    the socket), so the row has the port although connect() returned -115 (docs/config.md, trace tcp)."""
    code = textwrap.dedent(f"""
        import socket
        server = socket.socket(); server.bind(("127.0.0.1", {PORT})); server.listen()
        client = socket.socket(); client.setblocking(False)
        print(client.connect_ex(("127.0.0.1", {PORT})), client.getsockname()[1])
    """)
    trace = trace_rows("tcp")
    proc = subprocess.run([*netns.run, sys.executable, "-c", code], capture_output=True, text=True, check=True)
    errno, port = map(int, proc.stdout.split())
    assert errno == 115
    rows = trace.wait(lambda r: r["operation"] == "connect" and r["dport"] == PORT and r["comm"].startswith("python"))
    assert [(r["retval"], r["saddr"], r["sport"]) for r in rows] == [(-115, "127.0.0.1", port)]


def test_non_blocking_connect_to_a_silent_peer_has_no_port(trace_rows, netns):
    """A SYN that nobody answers (out of a veth whose peer end is down): the handshake has not ended
    when connect() returns, and the kernel had no port to show when the SYN was sent."""
    for command in (["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                    ["ip", "addr", "add", "10.213.0.1/24", "dev", "v0"], ["ip", "link", "set", "v0", "up"]):
        subprocess.run([*netns.run, *command], check=True)
    code = textwrap.dedent(f"""
        import socket
        client = socket.socket(); client.setblocking(False)
        print(client.connect_ex(("10.213.0.2", {PORT})), client.getsockname()[1])
    """)
    trace = trace_rows("tcp")
    proc = subprocess.run([*netns.run, sys.executable, "-c", code], capture_output=True, text=True, check=True)
    errno, port = map(int, proc.stdout.split())
    assert errno == 115 and port != 0   # the socket has its port by then: only the row lacks it
    rows = trace.wait(lambda r: r["operation"] == "connect" and r["daddr"] == "10.213.0.2")
    assert [(r["retval"], r["saddr"], r["sport"], r["dport"]) for r in rows] == [(-115, "10.213.0.1", 0, PORT)]
