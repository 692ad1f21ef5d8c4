"""trace dns through a real `ig prometheus`: counters, the latency histogram, containers."""

from __future__ import annotations

import random
import subprocess
import uuid

import pytest
from dns_server import start as server

from tests.fixtures.histograms import assert_latency_buckets, timed
from tests.fixtures.netns import wait_until_watched


def config(address: str) -> str:
    # The histogram of docs/config.md's dns example, isolated to this test's resolver by address.
    return f"""
metrics_name: dns
metrics:
  - name: dns_queries
    type: counter
    category: trace
    gadget: dns
    selector: ["qr:Q", "dstIP:{address}"]
  - name: dns_responses
    type: counter
    category: trace
    gadget: dns
    labels: [rcode]
    selector: ["qr:R", "srcIP:{address}"]
  - name: dns_requests_latency
    type: histogram
    category: trace
    gadget: dns
    field: latency
    selector: ["qr:R", "srcIP:{address}"]
    bucket: {{type: exp2, min: 0, max: 10, multiplier: 100000, unit: ns}}
"""


def test_counters_and_latency_histogram_on_the_host(run_ig, require_bpf):
    address = f"127.53.{random.randrange(1, 250)}.{random.randrange(1, 250)}"
    delay, n = 0.015, 12
    resolver = server([], address, delay)
    try:
        ig = run_ig(config(address), "--host")
        took = [timed(lambda: subprocess.run(["dig", "+short", "+tries=1", f"@{address}", f"q{i}.example.test"],
                                             check=True, capture_output=True)) for i in range(n)]
        assert ig.wait_for("dns_queries_total", n) == n
        assert ig.wait_for("dns_responses_total", n, rcode="NoError") == n
        samples = ig.samples()
        buckets = {float(dict(ls)["le"]): v for (name, ls), v in samples.items() if name == "dns_requests_latency_nanoseconds_bucket"}
        # each response at least the resolver's delay after its query, and within its dig's run
        assert_latency_buckets(buckets, delay * 1e9, took, 1)
        total = ig.value("dns_requests_latency_nanoseconds_sum")
        assert n * delay * 1e9 <= total <= sum(took)
    finally:
        resolver.kill()


CONTAINER_CONFIG = """
metrics_name: dns
metrics:
  - name: dns_requests
    type: counter
    category: trace
    gadget: dns
    labels: [k8s.namespace, k8s.pod, k8s.container, qtype]
    selector: ["qr:Q"]
"""


# The pod test also counts execs per container: a container's first exec counted under its name
# proves ig knows that container (and so its share of the pod's namespace).
POD_CONFIG = CONTAINER_CONFIG + """
  - name: container_execs
    type: counter
    category: trace
    gadget: exec
    labels: [k8s.container]
"""


@pytest.mark.parametrize("container_first", [True, False], ids=["container-before-ig", "container-after-ig"])
def test_queries_in_a_container_are_labelled_with_it(run_ig, docker, require_bpf, container_first):
    name = f"ig-dns-{uuid.uuid4().hex[:6]}"
    ig = None if container_first else run_ig(CONTAINER_CONFIG)
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    ig = ig or run_ig(CONTAINER_CONFIG)
    pid = docker.inspect(name, "{{.State.Pid}}")
    resolver = server(["nsenter", f"--net=/proc/{pid}/ns/net"], "127.0.0.1")
    try:
        wait_until_watched(ig.proc.pid, int(pid))
        for _ in range(3):
            out = docker.cli("exec", name, "nslookup", "web.example.test", "127.0.0.1").stdout
            assert "10.0.0.1" in out
        assert ig.wait_for("dns_requests_total", 3, k8s_container=name, qtype="A") == 3, ig.text()
        assert ig.value("dns_requests_total", k8s_container=name, k8s_namespace="", k8s_pod="", qtype="A") == 3
    finally:
        resolver.kill()


def test_queries_in_a_pod_carry_its_container_then_only_the_pod(run_ig, docker, require_bpf):
    """A pod as cri-dockerd lays it out: a sandbox holding the namespace and containers joining it.
    With one container its queries are that container's; once a second shares the namespace a packet
    cannot say whose it is, so it carries the pod alone (as Inspektor Gadget labels it)."""
    sandbox, web, proxy = (f"ig-pod-{uuid.uuid4().hex[:6]}" for _ in range(3))

    def labels(container: str, kind: str) -> list[str]:
        return ["--label", "io.kubernetes.pod.namespace=shop", "--label", "io.kubernetes.pod.name=web-1",
                "--label", f"io.kubernetes.container.name={container}", "--label", f"io.kubernetes.docker.type={kind}"]

    docker.run("-d", "--network", "none", *labels("POD", "podsandbox"), "ig-test-busybox:latest", "sleep", "1000",
               name=sandbox, detach=True)
    docker.run("-d", "--network", f"container:{sandbox}", *labels("web", "container"), "ig-test-busybox:latest",
               "sleep", "1000", name=web, detach=True)
    ig = run_ig(POD_CONFIG)
    pid = docker.inspect(sandbox, "{{.State.Pid}}")
    resolver = server(["nsenter", f"--net=/proc/{pid}/ns/net"], "127.0.0.1")

    def lookups(n: int) -> None:
        for _ in range(n):
            assert "10.0.0.1" in docker.cli("exec", web, "nslookup", "web.example.test", "127.0.0.1").stdout

    try:
        wait_until_watched(ig.proc.pid, int(pid))
        lookups(2)
        assert ig.wait_for("dns_requests_total", 2, k8s_container="web", qtype="A") == 2, ig.text()
        assert ig.value("dns_requests_total", k8s_namespace="shop", k8s_pod="web-1", k8s_container="web", qtype="A") == 2
        docker.run("-d", "--network", f"container:{sandbox}", *labels("proxy", "container"), "ig-test-busybox:latest",
                   "sleep", "1000", name=proxy, detach=True)
        assert ig.wait_for("container_execs_total", 1, k8s_container="proxy") >= 1, ig.text()
        lookups(3)
        assert ig.wait_for("dns_requests_total", 3, k8s_container="", qtype="A") == 3, ig.text()
        assert ig.value("dns_requests_total", k8s_namespace="shop", k8s_pod="web-1", k8s_container="", qtype="A") == 3
        assert ig.value("dns_requests_total", k8s_container="web", qtype="A") == 2
        assert ig.value("dns_requests_total", k8s_container="POD", qtype="A") is None
    finally:
        resolver.kill()
