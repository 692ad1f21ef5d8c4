"""The core end to end: a plugin installed like a third-party one feeds a real `ig prometheus`."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.fixtures.requirements import missing

CONFIG = """
metrics_name: synth_test
metrics:
  - name: events
    type: counter
    category: trace
    gadget: synth
    labels: [comm, k8s.container]
  - name: cat_latency_total
    type: counter
    category: trace
    gadget: synth
    field: latency
    selector: ["comm:cat", "uid:>=1000"]
    labels: [uid]
  - name: big_latency
    type: histogram
    category: trace
    gadget: synth
    field: latency
    bucket: {type: exp2, min: 0, max: 4, multiplier: 10, unit: ns}
    selector:
      - comm: cat
    labels: [comm]
  - name: sizes
    type: gauge
    category: snapshot
    gadget: synth
    labels: [comm]
  - name: total_size
    type: gauge
    category: snapshot
    gadget: synth
    field: size
    selector: ["comm:~^s"]
"""


def test_counters_histograms_gauges_through_http(run_ig, synth, tmp_path):
    feed, snapshot = synth
    snapshot.write_text(json.dumps([
        {"pid": 1, "comm": "sh", "size": 5}, {"pid": 2, "comm": "sh", "size": 7}, {"pid": 3, "comm": "cat", "size": 100},
    ]))
    ig = run_ig(CONFIG, "--host")
    feed.send(
        {"comm": "cat", "uid": 1000, "latency": 5},
        {"comm": "cat", "uid": 1000, "latency": 10},
        {"comm": "cat", "uid": 0, "latency": 11},
        {"comm": "cat", "uid": 1001, "latency": 80},
        {"comm": "sh", "uid": 1000, "latency": 7},
    )
    assert ig.wait_for("events_total", 4, comm="cat") == 4
    assert ig.value("events_total", comm="sh", k8s_container="") == 1
    # counter with field and two selectors: 5 + 10 (uid 1000) and 80 (uid 1001); uid 0 excluded
    assert ig.value("cat_latency_total", uid="1000") == 15
    assert ig.value("cat_latency_total", uid="1001") == 80
    # histogram: bounds 10, 20, 40, 80 ns; (previous, bound]
    s = ig.samples()
    buckets = {dict(ls)["le"]: v for (n, ls), v in s.items() if n == "big_latency_nanoseconds_bucket"}
    assert buckets == {"10.0": 2, "20.0": 3, "40.0": 3, "80.0": 4, "+Inf": 4}
    assert ig.value("big_latency_nanoseconds_sum") == 106
    assert ig.value("big_latency_nanoseconds_count") == 4
    # gauges from the snapshot
    assert ig.value("sizes", comm="sh") == 2
    assert ig.value("sizes", comm="cat") == 1
    assert ig.value("total_size") == 12
    # the series follow the snapshot: gone when its rows are gone
    snapshot.write_text(json.dumps([{"pid": 3, "comm": "cat", "size": 1}]))
    deadline = time.monotonic() + 20   # a scrape after the default minimum interval takes a new snapshot
    while ig.value("sizes", comm="sh") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ig.value("sizes", comm="sh") is None
    assert ig.value("sizes", comm="cat") == 1
    # self metrics
    assert ig.value("ig_events_received_total", gadget="synth", category="trace") == 5
    assert ig.value("ig_gadget_running", category="trace", gadget="synth") == 1


def test_metrics_path_404_and_openmetrics(run_ig, synth):
    ig = run_ig(CONFIG, "--host", path="/custom")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"http://{ig.address}/metrics", timeout=10)
    assert exc.value.code == 404
    req = urllib.request.Request(ig.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.read().decode().rstrip().endswith("# EOF")


def _promtool(text: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool") or missing("promtool (Debian's prometheus package) is not installed")
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)


def test_scrape_passes_promtool(run_ig, synth):
    feed, snapshot = synth
    snapshot.write_text(json.dumps([{"comm": "sh", "size": 1}]))
    ig = run_ig(CONFIG.replace("unit: ns", "unit: s"), "--host")
    feed.send({"comm": "cat", "uid": 1000, "latency": 5})
    ig.wait_for("events_total", 1, comm="cat")
    text = ig.text()
    assert "big_latency_seconds_bucket" in text and "ig_events_received_total" in text
    result = _promtool(text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nanosecond_histograms_only_draw_the_base_unit_lint(run_ig, synth):
    """The unit suffixes of docs/config.md, "Names" (`_nanoseconds`, as Inspektor Gadget's dashboards
    expect) are valid exposition; promtool's linter only prefers base units. Nothing else may be flagged."""
    feed, _ = synth
    ig = run_ig(CONFIG, "--host")
    feed.send({"comm": "cat", "uid": 1000, "latency": 5})
    ig.wait_for("events_total", 1, comm="cat")
    result = _promtool(ig.text())
    problems = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode in (0, 3)
    assert problems == ['big_latency_nanoseconds use base unit "seconds" instead of "nanoseconds"']


def test_concurrent_scrapes_share_one_snapshot(run_ig, synth, monkeypatch):
    feed, snapshot = synth
    snapshot.write_text(json.dumps([{"comm": "sh"}]))
    monkeypatch.setenv("IG_SYNTHETIC_SNAPSHOT_DELAY", "0.5")
    ig = run_ig(CONFIG, "--host", "--snapshot-min-interval", "1")
    before = ig.value("ig_snapshots_total", gadget="synth", category="snapshot")  # the readiness scrape took some
    # Let that snapshot go stale, so the next scrapes must take a new one: the condition here is
    # time itself (--snapshot-min-interval 1), measured from when the latest snapshot ended.
    time.sleep(1.2)
    barrier = threading.Barrier(10)

    def scrape(_):
        barrier.wait()
        return ig.text()

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        texts = list(pool.map(scrape, range(10)))
    assert all('sizes{comm="sh"} 1.0' in t for t in texts)
    # the 10 concurrent scrapes shared one snapshot (the 0.5 s it takes makes them overlap)
    assert ig.value("ig_snapshots_total", gadget="synth", category="snapshot") == before + 1


def test_sighup_reload_keeps_unchanged_counts(run_ig, synth, tmp_path):
    feed, _ = synth
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    ig = run_ig(f"@{path}", "--host")
    feed.send({"comm": "cat", "uid": 1000, "latency": 5}, {"comm": "cat", "uid": 1000, "latency": 5})
    assert ig.wait_for("events_total", 2, comm="cat") == 2
    # change one metric (labels of cat_latency_total), keep `events` as is
    path.write_text(CONFIG.replace("labels: [uid]", "labels: [comm]"))
    ig.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while ig.value("ig_config_reloads_total", result="success") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ig.value("ig_config_reloads_total", result="success") == 1
    assert ig.value("events_total", comm="cat") == 2          # kept
    assert ig.value("cat_latency_total", uid="1000") is None   # rebuilt with new labels, empty
    feed.send({"comm": "cat", "uid": 1000, "latency": 3})
    assert ig.wait_for("events_total", 3, comm="cat") == 3
    assert ig.value("cat_latency_total", comm="cat") == 3
    # a broken config on reload keeps the running one
    path.write_text("metrics_name: x\nmetrics: [{name: y}]\n")
    ig.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while ig.value("ig_config_reloads_total", result="failure") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ig.value("ig_config_reloads_total", result="failure") == 1
    assert ig.value("events_total", comm="cat") == 3


def test_sigterm_stops_cleanly(run_ig, synth):
    ig = run_ig(CONFIG, "--host")
    assert ig.stop(signal.SIGTERM) == 0
    assert "Publishing metrics" in ig.output()
    assert "Traceback" not in ig.output()


def test_host_rows_dropped_without_host(run_ig, synth):
    feed, _ = synth
    ig = run_ig(CONFIG)
    feed.send({"comm": "cat", "uid": 1000, "latency": 5})
    deadline = time.monotonic() + 10
    while not ig.value("ig_events_dropped_total", gadget="synth", category="trace", reason="host") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ig.value("ig_events_dropped_total", gadget="synth", category="trace", reason="host") == 1
    assert ig.value("events_total", comm="cat") is None
