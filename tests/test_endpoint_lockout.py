"""No client can lock the metrics endpoint out (docs/security.md, "Limits").

Clients that pipeline thousands of requests and never read the answers, a flood of wrong
passwords, a malformed `Accept`, and twenty scrapes at once, against a real ig process or the
real MetricsServer on loopback.
"""

from __future__ import annotations

import base64
import http.client
import selectors
import socket
import threading
import time
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily

from igcore.http import MEMORY_BOUND_BYTES, MetricsServer
from igcore.webauth import BasicAuth
from tests.fixtures.igrun import free_port

SYNTH = "metrics_name: m\nmetrics:\n  - {name: events, type: counter, category: trace, gadget: synth, labels: [comm]}\n"
PASSWORD = "correct horse"
PROMETHEUS_ACCEPT = {"Accept": "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
                               "text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"}


def rss(pid: int) -> int:
    """The resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def timed_scrape(port: int, path: str = "/metrics", headers: dict | None = None, timeout: float = 2.0) -> tuple[float, int, bytes]:
    """(seconds, status, body) of one scrape on a new connection, or seconds = inf on a time-out."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return time.monotonic() - t0, resp.status, body
    except (OSError, http.client.HTTPException):
        return float("inf"), 0, b""
    finally:
        conn.close()


class PipelineFlood(threading.Thread):
    """`clients` connections that each send `requests` pipelined requests, as fast as the server
    takes them, and never read an answer."""

    def __init__(self, port: int, clients: int, requests: int, path: bytes = b"/nothing") -> None:
        super().__init__(daemon=True)
        payload = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path * requests
        self.pending: dict[socket.socket, memoryview] = {}
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setblocking(False)
            self.pending[sock] = memoryview(payload)
        self.socks = list(self.pending)
        self._halt = threading.Event()

    def run(self) -> None:
        with selectors.DefaultSelector() as sel:
            for sock in self.pending:
                sel.register(sock, selectors.EVENT_WRITE)
            while not self._halt.is_set() and sel.get_map():
                for key, _ in sel.select(0.2):
                    sock = key.fileobj
                    try:
                        sent = sock.send(self.pending[sock])
                    except BlockingIOError:
                        continue
                    except OSError:
                        sel.unregister(sock)
                        continue
                    self.pending[sock] = self.pending[sock][sent:]
                    if not self.pending[sock]:
                        sel.unregister(sock)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        for sock in self.socks:
            sock.close()


def test_clients_that_pipeline_and_never_read_lock_no_scrape_out(run_ig, synth):
    """520 connections (the cap is 512) each pipeline 3000 requests and never read: fresh scrapes
    are answered within 2 s throughout, and ig's memory stays within the documented bound."""
    ig = run_ig(SYNTH, "--host")
    pid = ig.proc.pid
    for _ in range(5):  # warm up: the first scrapes allocate what every later one reuses
        ig.text()
    baseline = rss(pid)
    flood = PipelineFlood(ig.port, clients=520, requests=3000)
    flood.start()
    worst, peak = 0.0, baseline
    try:
        attack_ends = time.monotonic() + 15
        while time.monotonic() < attack_ends:
            seconds, status, body = timed_scrape(ig.port, timeout=5)
            assert status == 200 and b"ig_info" in body, f"a fresh scrape failed under the flood (status {status})"
            worst, peak = max(worst, seconds), max(peak, rss(pid))
            time.sleep(0.2)
    finally:
        flood.stop()
    assert worst < 2.0, f"a fresh scrape took {worst:.2f} s while 520 clients held their connections"
    assert peak - baseline < MEMORY_BOUND_BYTES, f"ig's RSS grew by {(peak - baseline) >> 20} MiB under the flood"
    deadline = time.monotonic() + 30
    while ig.value("ig_http_connections") > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rss(pid) - baseline < MEMORY_BOUND_BYTES, f"ig still holds {(rss(pid) - baseline) >> 20} MiB after the flood"
    closed = sum(v for (name, _), v in ig.samples().items() if name == "ig_http_connections_closed_total")
    assert closed >= 500, f"ig closed {closed} of the 520 connections"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class WrongPasswords(threading.Thread):
    """One keep-alive connection asking again and again, each time with a password never tried."""

    def __init__(self, port: int, n: int) -> None:
        super().__init__(daemon=True)
        self.port, self.n, self._halt = port, n, threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for i in range(10**9):
            if self._halt.is_set():
                break
            try:
                conn.request("GET", "/metrics", headers=basic("prom", f"wrong {self.n} {i}"))
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def stop(self) -> None:
        self._halt.set()


def test_a_flood_of_wrong_passwords_does_not_delay_good_credentials(run_ig, synth, tmp_path):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prom: {hashed}\n")
    good = basic("prom", PASSWORD)
    ig = run_ig(SYNTH, "--host", "--web-config-file", str(config), headers=good)
    flood = [WrongPasswords(ig.port, n) for n in range(64)]
    for thread in flood:
        thread.start()
    worst = 0.0
    try:
        for _ in range(15):
            time.sleep(0.3)
            seconds, status, body = timed_scrape(ig.port, headers=good, timeout=10)
            assert status == 200 and b"ig_info" in body, status
            worst = max(worst, seconds)
    finally:
        for thread in flood:
            thread.stop()
    assert worst < 2.0, f"a scrape with good credentials took {worst:.2f} s during a flood of wrong passwords"


def test_wrong_passwords_do_not_evict_good_credentials_from_the_cache():
    """More distinct wrong passwords than the cache holds: the good credentials, once checked,
    are still answered without a bcrypt check."""
    users = {"prom": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4))}
    auth = BasicAuth()
    good = basic("prom", PASSWORD)["Authorization"]
    assert auth.allowed(users, good) is True
    for i in range(1500):
        assert auth.allowed(users, basic("prom", f"wrong {i}")["Authorization"]) is False
    assert auth.cached(users, good) is True


def test_clients_that_ask_and_never_read_their_answer_lock_no_scrape_out(server):
    """520 connections (the cap is 512) each ask for a 2 MB scrape and never read it: the writers
    stalled on them are evicted for fresh scrapes, and closed after the write time-out."""
    server.collector.delay, server.collector.padding = 0, 2_000_000
    socks = []
    try:
        for _ in range(520):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(sock)
        deadline = time.monotonic() + 20
        while server.open_connections < server.max_connections and time.monotonic() < deadline:
            time.sleep(0.1)
        worst = 0.0
        for _ in range(5):
            seconds, status, body = timed_scrape(server.port, path="/metrics?name[]=plain_events_total", timeout=10)
            assert status == 200 and b"plain_events_total 1.0" in body, status
            worst = max(worst, seconds)
        assert worst < 2.0, f"a fresh scrape took {worst:.2f} s while 520 clients did not read their answers"
        deadline = time.monotonic() + 30
        while server.closed["write_timeout"] + server.closed["evicted"] < 500 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.closed["write_timeout"] + server.closed["evicted"] >= 500, dict(server.closed)
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def server():
    """The real MetricsServer on a loopback port, serving a registry whose collection is slow
    (so that scrapes arriving together overlap) and counts its calls."""

    class SlowCollector:
        collections, delay, padding = 0, 0.5, 0

        def collect(self):
            SlowCollector.collections += 1
            time.sleep(SlowCollector.delay)
            family = CounterMetricFamily("slow_events", "events", labels=["k"])
            family.add_metric(["a"], 1)
            if SlowCollector.padding:  # a large answer that costs little to render
                family.add_metric(["x" * SlowCollector.padding], 2)
            yield family

    registry = CollectorRegistry()
    Counter("plain_events", "events", registry=registry).inc()
    registry.register(SlowCollector())
    srv = MetricsServer(registry, f"127.0.0.1:{free_port()}", "/metrics")
    srv.start()
    srv.collector = SlowCollector
    yield srv
    srv.close()


@pytest.mark.parametrize("accept", ["application/openmetrics-text;version=abc",
                                    "text/plain;version=x.y"])
def test_a_malformed_accept_gets_the_text_format(server, accept):
    seconds, status, body = timed_scrape(server.port, headers={"Accept": accept}, timeout=10)
    assert status == 200, status
    assert b"# TYPE plain_events_total counter" in body or b"# TYPE plain_events counter" in body


def test_scrapes_that_arrive_together_share_one_render(server):
    before = server.collector.collections
    results = []
    threads = [threading.Thread(target=lambda: results.append(timed_scrape(server.port, headers=PROMETHEUS_ACCEPT, timeout=30)))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for _, status, _ in results] == [200] * 20
    assert all(b'slow_events_total{k="a"} 1.0' in body for _, _, body in results)  # OpenMetrics
    renders = server.collector.collections - before
    assert renders <= 3, f"20 scrapes at once took {renders} renders"
