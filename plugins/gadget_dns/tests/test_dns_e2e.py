"""trace dns through a real `ig prometheus`: counters, the latency histogram, containers."""

from __future__ import annotations

import random
import subprocess
import time
import uuid

import pytest
from dns_server import start as server
from prometheus_client.utils import floatToGoString


def config(address: str) -> str:
    # The documented histogram (DESIGN section 3), isolated to this test's resolver by address.
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
        for i in range(n):
            subprocess.run(["dig", "+short", "+tries=1", f"@{address}", f"q{i}.example.test"], check=True, capture_output=True)
        assert ig.wait_for("dns_queries_total", n) == n
        assert ig.wait_for("dns_responses_total", n, rcode="NoError") == n
        samples = ig.samples()
        buckets = {dict(ls)["le"]: v for (name, ls), v in samples.items() if name == "dns_requests_latency_nanoseconds_bucket"}
        # 15 ms (plus scheduling) lies in (12.8 ms, 25.6 ms]: every observation in that one bucket
        below, bucket = floatToGoString(1.28e7), floatToGoString(2.56e7)
        assert buckets[below] == 0 and buckets[bucket] == n and buckets["+Inf"] == n, buckets
        total = ig.value("dns_requests_latency_nanoseconds_sum")
        assert n * delay * 1e9 <= total < n * (delay + 0.005) * 1e9
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


@pytest.mark.parametrize("container_first", [True, False], ids=["container-before-ig", "container-after-ig"])
def test_queries_in_a_container_are_labelled_with_it(run_ig, docker, require_bpf, container_first):
    name = f"ig-dns-{uuid.uuid4().hex[:6]}"
    ig = None if container_first else run_ig(CONTAINER_CONFIG)
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    ig = ig or run_ig(CONTAINER_CONFIG)
    pid = docker.inspect(name, "{{.State.Pid}}")
    resolver = server(["nsenter", f"--net=/proc/{pid}/ns/net"], "127.0.0.1")
    try:
        time.sleep(0.5)  # the registry announces the container's namespace to the gadget
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
    ig = run_ig(CONTAINER_CONFIG)
    pid = docker.inspect(sandbox, "{{.State.Pid}}")
    resolver = server(["nsenter", f"--net=/proc/{pid}/ns/net"], "127.0.0.1")

    def lookups(n: int) -> None:
        for _ in range(n):
            assert "10.0.0.1" in docker.cli("exec", web, "nslookup", "web.example.test", "127.0.0.1").stdout

    try:
        time.sleep(0.5)  # the registry announces the pod's namespace to the gadget
        lookups(2)
        assert ig.wait_for("dns_requests_total", 2, k8s_container="web", qtype="A") == 2, ig.text()
        assert ig.value("dns_requests_total", k8s_namespace="shop", k8s_pod="web-1", k8s_container="web", qtype="A") == 2
        docker.run("-d", "--network", f"container:{sandbox}", *labels("proxy", "container"), "ig-test-busybox:latest",
                   "sleep", "1000", name=proxy, detach=True)
        time.sleep(0.5)
        lookups(3)
        assert ig.wait_for("dns_requests_total", 3, k8s_container="", qtype="A") == 3, ig.text()
        assert ig.value("dns_requests_total", k8s_namespace="shop", k8s_pod="web-1", k8s_container="", qtype="A") == 3
        assert ig.value("dns_requests_total", k8s_container="web", qtype="A") == 2
        assert ig.value("dns_requests_total", k8s_container="POD", qtype="A") is None
    finally:
        resolver.kill()
