"""trace bind end to end: binds inside a container counted by a real `ig prometheus`, read over HTTP."""

from __future__ import annotations

import socket
import uuid

from tests.fixtures.igrun import free_port

IMAGE = "ig-test-busybox:latest"


def test_container_binds_counted_with_the_container(run_ig, docker):
    """In a --network none container (it has a loopback): one nc holds port P, two more fail with
    EADDRINUSE; a bind of P on the host (another network namespace) is not counted without --host.
    The bind of the sentinel port Q comes last: once it is counted, the count of P is final."""
    port, sentinel = free_port(), free_port()
    name = f"ig-bind-{uuid.uuid4().hex[:10]}"
    ig = run_ig(f"""
metrics_name: bind_e2e
metrics:
  - name: port_binds
    type: counter
    category: trace
    gadget: bind
    selector: ["port:{port}"]
    labels: [k8s.container, proto, addr, retval]
  - name: sentinel_binds
    type: counter
    category: trace
    gadget: bind
    selector: ["port:{sentinel}"]
    labels: [k8s.container]
""")
    docker.run("-d", "--network", "none", IMAGE, "sleep", "300", name=name)
    docker.cli("exec", "-d", name, "nc", "-l", "-p", str(port))
    ok = dict(k8s_container=name, proto="TCP", addr="::")  # busybox nc listens on IPv6 any
    assert ig.wait_for("port_binds_total", 1, retval="0", **ok) == 1
    for _ in range(2):
        assert docker.cli("exec", name, "nc", "-l", "-p", str(port), check=False).returncode != 0
    with socket.socket() as host:
        host.bind(("127.0.0.1", port))
    docker.cli("exec", "-d", name, "nc", "-l", "-p", str(sentinel))
    assert ig.wait_for("sentinel_binds_total", 1, k8s_container=name) == 1
    assert ig.value("port_binds_total", retval="0", **ok) == 1
    assert ig.value("port_binds_total", retval="-98", **ok) == 2
    assert ig.value("port_binds_total", k8s_container="") is None
    assert ig.value("ig_events_lost_total", gadget="bind") in (None, 0)


def test_host_binds_with_host_flag(run_ig):
    port, sentinel = free_port(), free_port()
    ig = run_ig(f"""
metrics_name: bind_host
metrics:
  - name: port_binds
    type: counter
    category: trace
    gadget: bind
    selector: ["port:{port}", "ret:<0"]
    labels: [k8s.container, comm, retval]
  - name: sentinel_binds
    type: counter
    category: trace
    gadget: bind
    selector: ["port:{sentinel}"]
""", "--host")
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    for _ in range(3):
        with socket.socket() as clash:
            try:
                clash.bind(("127.0.0.1", port))
            except OSError:
                pass
    holder.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", sentinel))
    assert ig.wait_for("sentinel_binds_total", 1) == 1
    comm = open("/proc/self/comm").read().strip()
    assert ig.value("port_binds_total", k8s_container="", comm=comm, retval="-98") == 3
