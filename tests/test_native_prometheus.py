"""Native histograms read by a real Prometheus (docs/config.md, "Native histograms"): Debian's
Prometheus 2.42 with --enable-feature=native-histograms scrapes ig's protobuf exposition and its
histogram functions give the exact count and sum and a median within the schema's bucket width; a
Prometheus without the flag scrapes the same ig and gets the classic buckets."""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import sys
import uuid

import pytest
from pathlib import Path

from tests.fixtures.histograms import timed
from tests.fixtures.prometheus import write_config
from tests.fixtures.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "gadget_dns" / "tests"))
from dns_server import start as dns_server

NATIVE = "--enable-feature=native-histograms"
SCHEMA = 3
BASE = 2 ** (2 ** -SCHEMA)   # a bucket's upper bound over its lower one


def _scrapers(prometheus_server, ig, tmp_path):
    """(a Prometheus with native histograms on, one without), both scraping `ig` every second."""
    native = prometheus_server(write_config(tmp_path / "native.yml", ig.address), NATIVE)
    classic = prometheus_server(write_config(tmp_path / "classic.yml", ig.address))
    return native, classic


def _value(prometheus, expr: str, expected=None) -> float:
    """The one value of `expr`, once it is there (and equals `expected`, when given)."""
    def ready(result):
        return len(result) == 1 and (expected is None or float(result[0]["value"][1]) == expected)
    result = prometheus.wait_for(expr, ready, timeout=60)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def _check_histogram(native, classic, ig, name: str, count: int, low: float, high: float) -> None:
    """Both scrapers agree with ig: the native one through the histogram functions (exact count
    and sum, a median within a bucket of [low, high], the range of the observed median), the
    classic one through `_bucket`."""
    total = ig.value(f"{name}_sum")
    assert _value(native, f"histogram_count({name})", count) == count
    assert _value(native, f"histogram_sum({name})", total) == total
    median = _value(native, f"histogram_quantile(0.5, {name})")
    assert low / BASE <= median <= high * BASE, (median, low, high)
    # Without the flag Prometheus asked for text: the classic buckets, ig's own bounds.
    assert _value(classic, f"{name}_count", count) == count
    assert _value(classic, f"{name}_sum", total) == total
    classic_median = _value(classic, f"histogram_quantile(0.5, sum by (le) ({name}_bucket))")
    assert low / BASE <= classic_median <= high * BASE, (classic_median, low, high)
    assert native.query(f"{name}_bucket") == []   # the native one stores one series, no buckets


DNS_CONFIG = """
metrics_name: nh
metrics:
  - name: dns_latency
    type: histogram
    category: trace
    gadget: dns
    field: latency
    selector: ["qr:R", "srcIP:{address}"]
    bucket: {{type: native, schema: %d, multiplier: 0.000000001, unit: s}}
""" % SCHEMA


def test_dns_latency_as_a_native_histogram(run_ig, prometheus_server, require_bpf, tmp_path):
    address = f"127.53.{random.randrange(1, 250)}.{random.randrange(1, 250)}"
    delay, n = 0.02, 9
    resolver = dns_server([], address, delay)
    try:
        ig = run_ig(DNS_CONFIG.format(address=address), "--host")
        native, classic = _scrapers(prometheus_server, ig, tmp_path)
        took = [timed(lambda: subprocess.run(["dig", "+short", "+tries=1", f"@{address}", f"q{i}.example.test"],
                                             check=True, capture_output=True)) for i in range(n)]
        assert ig.wait_for("dns_latency_seconds_count", n) == n
        # Each latency is at least the resolver's delay and at most its dig's whole run.
        _check_histogram(native, classic, ig, "dns_latency_seconds", n, delay, statistics.median(sorted(took)) / 1e9)
    finally:
        resolver.kill()


EXEC_CONFIG = """
metrics_name: nh
metrics:
  - name: exec_pids
    type: histogram
    category: trace
    gadget: exec
    field: pid
    selector: ["comm:{comm}"]
    bucket: {{type: native, schema: %d}}
""" % SCHEMA


@pytest.mark.parametrize("path", [(), ("--no-kernel-aggregation",)], ids=["kernel", "user"])
def test_exec_pids_as_a_native_histogram(run_ig, prometheus_server, require_bpf, tmp_path, path):
    comm = f"nh{uuid.uuid4().hex[:10]}"
    program = tmp_path / comm
    shutil.copy("/bin/true", program)
    ig = run_ig(EXEC_CONFIG.format(comm=comm), "--host", *path)
    assert ig.value("ig_metric_aggregation", metric="exec_pids", path=path and "user" or "kernel") == 1
    native, classic = _scrapers(prometheus_server, ig, tmp_path)
    pids = []
    for _ in range(11):
        proc = subprocess.Popen([str(program)])
        pids.append(proc.pid)   # the child's pid is the one that calls execve
        proc.wait()
    wait_until(lambda: ig.value("exec_pids_count") == len(pids), "every exec counted")
    assert ig.value("exec_pids_sum") == sum(pids)
    median = statistics.median(pids)
    _check_histogram(native, classic, ig, "exec_pids", len(pids), median, median)
