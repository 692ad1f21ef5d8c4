"""The user guide for real: Prometheus scrapes ig while containers run; the numbers arrive in Prometheus.

Follows docs/guide.md: ig with tools/monitoring/ig-config.yaml, Prometheus with the guide's scrape
config (every second), the docker workload, then the PromQL of the guide and of the Grafana dashboard.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.fixtures.histograms import assert_latency_buckets, timed
from tests.fixtures.netns import wait_until_watched
from tests.fixtures.prometheus import write_config
from tests.fixtures.requirements import missing

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "tools" / "monitoring"
DNS_SERVER = ROOT / "plugins" / "gadget_dns" / "tests" / "dns_server.py"


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "ig.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_monitoring_configs_are_valid():
    promtool = shutil.which("promtool") or missing("promtool is not installed")
    result = subprocess.run([promtool, "check", "config", str(MONITORING / "prometheus.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    exprs = dashboard_expressions()
    assert "sum by(le) (dns_requests_latency_nanoseconds_bucket)" in exprs
    assert any("executed_processes_total" in e for e in exprs)
    assert any("number_of_processes" in e for e in exprs)
    assert any("sockets" in e for e in exprs)


def prometheus_sees_final(prom, ig, expr: str) -> list[dict]:
    """`expr` in Prometheus once it has scraped ig after ig counted everything a finished workload
    emitted: the final numbers, never a scrape taken half-way through the workload."""
    ig.settle()
    prom.wait_for_scrape_after(time.time())
    return prom.query(expr)


def test_prometheus_gets_exact_container_counts(run_ig, prometheus_server, docker, require_bpf, tmp_path):
    ig = run_ig(f"@{MONITORING / 'ig-config.yaml'}")
    prom = prometheus_server(write_config(tmp_path / "prometheus.yml", ig.address))
    assert prom.wait_for("up", lambda r: any(s["value"][1] == "1" for s in r)), "Prometheus never scraped ig"

    # the guide's names, made unique so that suites running side by side cannot collide
    workload, client = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("mycontainer", "dnsclient"))
    docker.run("--rm", "--network", "none", "ig-test-busybox:latest", "sh", "-c",
               "for i in $(seq 1 100); do cat /dev/null; done", name=workload)
    result = prometheus_sees_final(prom, ig, f'executed_processes_total{{k8s_container="{workload}", comm="cat"}}')
    assert result and float(result[0]["value"][1]) == 100, result
    # Prometheus drops empty labels: a plain docker container has no k8s namespace or pod
    assert "k8s_namespace" not in result[0]["metric"] and "k8s_pod" not in result[0]["metric"]

    # DNS: a resolver on the container's own loopback answering after 15 ms, queried from inside
    delay_ns = 15_000_000
    pid = docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=client,
                     detach=True) and docker.inspect(client, "{{.State.Pid}}")
    resolver = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, str(DNS_SERVER), "127.0.0.1", "53",
                                 str(delay_ns / 1e9)], stdout=subprocess.PIPE, text=True)
    try:
        assert resolver.stdout.readline().strip() == "ready"
        wait_until_watched(ig.proc.pid, int(pid))
        took = [timed(lambda: docker.cli("exec", client, "nslookup", f"web{i}.example.test", "127.0.0.1"))
                for i in range(10)]
        result = prometheus_sees_final(prom, ig, f'sum by(le) (dns_requests_latency_nanoseconds_bucket{{k8s_container="{client}"}})')
        # nslookup asks A and AAAA: 20 responses, each at least the resolver's delay after its
        # query and no later than its client returned
        assert_latency_buckets({float(s["metric"]["le"]): float(s["value"][1]) for s in result}, delay_ns, took, 2)
    finally:
        resolver.kill()

    # every expression of the Grafana dashboard is valid PromQL against this Prometheus
    promtool = shutil.which("promtool") or missing("promtool is not installed")
    for e in dashboard_expressions():
        e = re.sub(r"\$__rate_interval", "1m", e)
        out = subprocess.run([promtool, "query", "instant", f"http://{prom.address}", e], capture_output=True, text=True)
        assert out.returncode == 0, f"{e}: {out.stderr}"
