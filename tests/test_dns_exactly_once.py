"""Each DNS message is reported exactly once, on the kernel path and on the user path.

ig's counts for a container are compared with what the container's loopback carried, as the kernel
counts it. On a loopback a packet socket sees every packet twice (sent, then received), and ig also
watches its own namespace beside the container's: a message reported by both copies or by both
sockets would count twice here. The guide's dns_requests counter (queries) and dns_requests_latency
histogram (responses) are the metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.fixtures.netns import wait_until_watched

ROOT = Path(__file__).resolve().parents[1]
QUERIES = 300

# Answers every query with its own bytes, QR set, as fast as they come.
RESPONDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(512)
    s.sendto(data[:2] + bytes([data[2] | 0x80]) + data[3:], peer)
"""

# Sends argv[1] queries for flood.test (A), one at a time, each waiting for its response.
CLIENT = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.connect(("127.0.0.1", 53))
question = b"\\x05flood\\x04test\\x00" + struct.pack("!HH", 1, 1)
answered = 0
for i in range(int(sys.argv[1])):
    s.send(struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0) + question)
    answered += s.recv(512)[:2] == struct.pack("!H", i)
print(answered)
"""


def guide_config() -> str:
    def metric(path: str, name: str) -> dict:
        return next(m for m in yaml.safe_load((ROOT / path).read_text())["metrics"] if m["name"] == name)
    return yaml.safe_dump({"metrics_name": "dns", "metrics": [
        metric("examples/dns.yaml", "dns_requests"),
        metric("tools/monitoring/ig-config.yaml", "dns_requests_latency")]})


def loopback_packets(inside: list[str]) -> int:
    """Packets the namespace's loopback carried (each crosses it once: sent and received)."""
    out = subprocess.run([*inside, "ip", "-j", "-s", "link", "show", "lo"], capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout)[0]["stats64"]
    assert stats["rx"]["packets"] == stats["tx"]["packets"], stats
    return stats["rx"]["packets"]


@pytest.mark.parametrize("path_args", [(), ("--no-kernel-aggregation",)], ids=["kernel-path", "user-path"])
def test_each_message_is_counted_once(run_ig, docker, require_bpf, path_args):
    name = f"ig-once-{uuid.uuid4().hex[:8]}"
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    ig = run_ig(guide_config(), *path_args)
    pid = docker.inspect(name, "{{.State.Pid}}")
    inside = ["nsenter", f"--net=/proc/{pid}/ns/net"]
    responder = subprocess.Popen([*inside, sys.executable, "-c", RESPONDER], stdout=subprocess.PIPE, text=True)
    try:
        assert responder.stdout.readline().strip() == "ready"
        wait_until_watched(ig.proc.pid, int(pid))
        before = loopback_packets(inside)
        answered = subprocess.run([*inside, sys.executable, "-c", CLIENT, str(QUERIES)],
                                  capture_output=True, text=True, check=True, timeout=120).stdout
        assert int(answered) == QUERIES
        assert loopback_packets(inside) - before == 2 * QUERIES   # the wire: every query and its response
        assert ig.wait_for("dns_requests_total", QUERIES, k8s_container=name, qtype="A") == QUERIES, ig.text()
        assert ig.wait_for("dns_requests_latency_nanoseconds_count", QUERIES, k8s_container=name) == QUERIES, ig.text()
    finally:
        responder.kill()
        responder.wait()
