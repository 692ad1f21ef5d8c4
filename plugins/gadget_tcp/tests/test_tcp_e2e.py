"""trace tcp end to end: connects inside a container counted by a real `ig prometheus`, read over HTTP."""

from __future__ import annotations

import uuid

IMAGE = "ig-test-busybox:latest"
PORT, REFUSED = 4242, 4243  # ports in the container's own (--network none) namespace


def test_container_connects_counted_with_the_container(run_ig, docker):
    """busybox nc connects N times to a persistent nc server in the same container; connects refused
    while the server starts are counted under their own result. A connect to a closed port comes last:
    once it is counted, the count of successful connects is final."""
    name = f"ig-tcp-{uuid.uuid4().hex[:10]}"
    n = 6
    ig = run_ig(f"""
metrics_name: tcp_e2e
metrics:
  - name: tcp_connects
    type: counter
    category: trace
    gadget: tcp
    selector: ["operation:connect", "dport:{PORT}"]
    labels: [k8s.container, comm, daddr, retval]
  - name: sentinel_connects
    type: counter
    category: trace
    gadget: tcp
    selector: ["dport:{REFUSED}"]
    labels: [k8s.container, retval]
""")
    docker.run("-d", "--network", "none", IMAGE, "sleep", "300", name=name)
    docker.cli("exec", "-d", name, "nc", "-ll", "-p", str(PORT), "-e", "true")
    script = (f"until nc 127.0.0.1 {PORT} </dev/null; do sleep 0.05; done; "
              f"for i in $(seq {n - 1}); do nc 127.0.0.1 {PORT} </dev/null; done; "
              f"nc 127.0.0.1 {REFUSED} </dev/null; true")
    docker.cli("exec", name, "sh", "-c", script)
    assert ig.wait_for("sentinel_connects_total", 1, k8s_container=name, retval="-111") == 1
    assert ig.value("tcp_connects_total", k8s_container=name, comm="nc", daddr="127.0.0.1", retval="0") == n
    assert ig.value("ig_events_lost_total", gadget="tcp") in (None, 0)
