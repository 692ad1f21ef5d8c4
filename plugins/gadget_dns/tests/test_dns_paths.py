"""The same DNS traffic through two real `ig prometheus`: metrics counted in the kernel (the default)
and the same metrics forced to user space. Counts must be identical, latency histograms identical
bucket by bucket: the kernel decides what a message is and its latency, whichever path counts it.
With both builds of the kernel reader: the bounded one (kernels 5.8 to 5.16) cannot read the big
answer over TCP within its steps (docs/config.md, Using trace dns), so it is no response there."""

from __future__ import annotations

import subprocess
import uuid

from dns_server import BIG_ANSWERS
from dns_server import start as server
from steps import BPF_LOOP

from tests.fixtures.netns import wait_until_watched

DELAY = 0.015   # the resolver's: every latency is above the 12.8 ms bound

CONFIG = """
metrics_name: dns
metrics:
  - name: dns_queries
    type: counter
    category: trace
    gadget: dns
    labels: [k8s.container, qtype, proto, pktType]
    selector: ["qr:Q"]
  - name: dns_responses
    type: counter
    category: trace
    gadget: dns
    labels: [k8s.container, rcode, proto, srcPort]
    selector: ["qr:R"]
  - name: dns_answers
    type: counter
    category: trace
    gadget: dns
    field: numAnswers
    labels: [k8s.container]
    selector: ["qr:R", "rcode:!NXDomain"]
  - name: dns_slow_responses
    type: counter
    category: trace
    gadget: dns
    labels: [k8s.container, qtype]
    selector: ["qr:R", "latency:>=10000000", "qtype:!AAAA", "id:>=0"]
  - name: dns_latency
    type: histogram
    category: trace
    gadget: dns
    field: latency
    labels: [k8s.container, proto]
    selector: ["qr:R"]
    bucket: {type: exp2, min: 0, max: 15, multiplier: 100000, unit: ns}
"""
METRICS = ("dns_queries", "dns_responses", "dns_answers", "dns_slow_responses", "dns_latency")


def mine(ig, container: str) -> tuple[dict, dict]:
    """The samples of CONFIG's metrics for `container`, and apart from them the latency sums: each
    ig's program stamps a packet on its own, some microseconds apart from the other's."""
    samples, sums = {}, {}
    for (name, labels), value in ig.samples().items():
        if name.startswith(METRICS) and ("k8s_container", container) in labels:
            (sums if name.endswith("_sum") else samples)[(name, labels)] = value
    return samples, sums


def test_the_kernel_and_the_user_path_count_the_same(reader_build, run_ig, docker, require_bpf):
    name = f"ig-dnspaths-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    kernel, user = run_ig(CONFIG), run_ig(CONFIG, "--no-kernel-aggregation")
    pid = docker.inspect(name, "{{.State.Pid}}")
    inside = ["nsenter", f"--net=/proc/{pid}/ns/net"]
    resolver = server(inside, "127.0.0.1", DELAY)
    try:
        for ig in (kernel, user):
            wait_until_watched(ig.proc.pid, int(pid))
        for ig, path in ((kernel, "kernel"), (user, "user")):
            paths = {(dict(ls)["metric"], dict(ls)["path"]) for (n, ls), v in ig.samples().items()
                     if n == "ig_metric_aggregation" and v == 1}
            assert paths == {(m, path) for m in METRICS}
        for i in range(4):
            docker.cli("exec", name, "nslookup", f"web{i}.example.test", "127.0.0.1")   # A and AAAA
        for opts in (["+tcp"], [], ["+tcp"]):
            subprocess.run([*inside, "dig", "+tries=1", "+time=2", *opts, "@127.0.0.1", f"missing.{uuid.uuid4().hex[:6]}.test"],
                           check=True, capture_output=True)
        subprocess.run([*inside, "dig", "+tries=1", "+time=2", "+tcp", "@127.0.0.1", "big.example.test"],
                       check=True, capture_output=True)
        # 4 lookups of A and AAAA, 3 NXDOMAIN (2 over TCP), a big answer over TCP: 12 responses
        big = reader_build == BPF_LOOP   # else the big answer is unparsed: no response
        for ig in (kernel, user):
            assert ig.wait_for("dns_latency_nanoseconds_count", 9, k8s_container=name, proto="UDP") == 9
            assert ig.wait_for("dns_queries_total", 3, k8s_container=name, qtype="A", proto="TCP") == 3
        got, sums = mine(kernel, name)
        user_got, user_sums = mine(user, name)
        assert got == user_got
        assert sums.keys() == user_sums.keys() and all(abs(sums[k] - user_sums[k]) < 1e6 for k in sums)
        assert got[("dns_answers_total", frozenset({("k8s_container", name)}))] == 4 * 2 * 2 + BIG_ANSWERS * big
        assert sum(v for (n, ls), v in got.items() if n == "dns_responses_total") == 11 + big
        nx = {dict(ls)["proto"]: v for (n, ls), v in got.items() if n == "dns_responses_total" and ("rcode", "NXDomain") in ls}
        assert nx == {"UDP": 1, "TCP": 2}
        below = {float(dict(ls)["le"]): v for (n, ls), v in got.items()
                 if n == "dns_latency_nanoseconds_bucket" and ("proto", "TCP") in ls}
        assert below[1.28e7] == 0 and below[float("inf")] == 2 + big   # none below the resolver's delay
    finally:
        resolver.kill()
