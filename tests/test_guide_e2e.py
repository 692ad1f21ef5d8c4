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
from pathlib import Path

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


def test_prometheus_gets_exact_container_counts(run_ig, prometheus_server, docker, require_bpf, tmp_path):
    ig = run_ig(f"@{MONITORING / 'ig-config.yaml'}")
    prom = prometheus_server(write_config(tmp_path / "prometheus.yml", ig.address))
    assert prom.wait_for("up", lambda r: any(s["value"][1] == "1" for s in r)), "Prometheus never scraped ig"

    docker.run("--rm", "--network", "none", "ig-test-busybox:latest", "sh", "-c",
               "for i in $(seq 1 100); do cat /dev/null; done", name="mycontainer")
    expr = 'executed_processes_total{k8s_container="mycontainer", comm="cat"}'
    result = prom.wait_for(expr, lambda r: r and float(r[0]["value"][1]) >= 100)
    assert result and float(result[0]["value"][1]) == 100, result
    # Prometheus drops empty labels: a plain docker container has no k8s namespace or pod
    assert "k8s_namespace" not in result[0]["metric"] and "k8s_pod" not in result[0]["metric"]

    # DNS: a resolver on the container's own loopback answering after 15 ms, queried from inside
    pid = docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name="dnsclient",
                     detach=True) and docker.inspect("dnsclient", "{{.State.Pid}}")
    resolver = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, str(DNS_SERVER), "127.0.0.1", "53", "0.015"],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert resolver.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        for i in range(10):
            docker.cli("exec", "dnsclient", "nslookup", f"web{i}.example.test", "127.0.0.1")
        expr = 'sum by(le) (dns_requests_latency_nanoseconds_bucket{k8s_container="dnsclient"})'
        # wait for all 20 responses: the first scrape after the loop may predate the last lookup's
        result = prom.wait_for(expr, lambda r: any(s["metric"]["le"] == "+Inf" and float(s["value"][1]) >= 20 for s in r))
        buckets = {s["metric"]["le"]: float(s["value"][1]) for s in result}
        # nslookup asks A and AAAA: 20 responses, each 15 ms (+ scheduling) late: all in (12.8 ms, 25.6 ms]
        assert buckets["+Inf"] == 20 and buckets["2.56e+07"] == 20 and buckets["1.28e+07"] == 0, buckets
    finally:
        resolver.kill()

    # every expression of the Grafana dashboard is valid PromQL against this Prometheus
    promtool = shutil.which("promtool") or missing("promtool is not installed")
    for e in dashboard_expressions():
        e = re.sub(r"\$__rate_interval", "1m", e)
        out = subprocess.run([promtool, "query", "instant", f"http://{prom.address}", e], capture_output=True, text=True)
        assert out.returncode == 0, f"{e}: {out.stderr}"
