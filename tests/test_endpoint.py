"""The metrics endpoint holds up: idle and slow clients, a port in use, IPv6, `name[]`, `--help`."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.fixtures.igrun import IG, free_port
from tests.fixtures.requirements import need_binary

SYNTH = ("metrics_name: m\nmetrics:\n  - {name: events, type: counter, category: trace, gadget: synth, labels: [comm]}\n"
         "  - {name: sizes, type: gauge, category: snapshot, gadget: synth, labels: [comm]}\n")


def scrape(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        assert resp.status == 200
        return resp.read().decode()


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes `sock` (EOF or reset) within `timeout` seconds; reads what it sent."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


class Slowloris(threading.Thread):
    """Sends a request head one byte every `every` seconds, never finishing it."""

    def __init__(self, port: int, every: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.every, self.closed, self._stop = every, threading.Event(), threading.Event()

    def run(self) -> None:
        head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100000
        for byte in head:
            if self._stop.wait(self.every):
                return
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                self.closed.set()
                return

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


def test_idle_connections_and_a_slowloris_do_not_stop_scrapes(run_ig, synth):
    """500 idle connections against ig limited to 256 descriptors (the case that hung it before),
    plus a slowloris: scrapes keep answering, the descriptors are never exhausted."""
    feed, _ = synth
    ig = run_ig(SYNTH, "--host", wrapper=("prlimit", "--nofile=256:256", "--"))
    feed.send({"comm": "cat"})
    assert ig.wait_for("events_total", 1, comm="cat") == 1
    limit = ig.value("ig_http_connections_limit")
    assert limit == 128  # half of the 256 descriptors

    slow = Slowloris(ig.port)
    slow.start()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    idle = []
    try:
        for _ in range(500):
            idle.append(socket.create_connection(("127.0.0.1", ig.port), timeout=10))
        for _ in range(5):
            text = scrape(ig.url, timeout=5)
            assert 'events_total{comm="cat"} 1.0' in text
        open_now = ig.value("ig_http_connections")
        assert open_now <= limit
        assert ig.value("ig_http_connections_closed_total", reason="evicted") >= 500 - limit
        # the slowloris was closed too (as the longest idle, or by the read time-out)
        assert closed_by_server(slow.sock, 30) or slow.closed.is_set()
    finally:
        slow.stop()
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert ig.proc.poll() is None
    assert 'events_total{comm="cat"} 1.0' in scrape(ig.url, timeout=5)


def test_read_and_idle_timeouts_close_slow_and_idle_clients(run_ig, synth):
    ig = run_ig(SYNTH, "--host", "--web-read-timeout", "1", "--web-idle-timeout", "2")
    silent = socket.create_connection(("127.0.0.1", ig.port), timeout=5)  # never sends a byte
    slow = Slowloris(ig.port, every=0.2)
    slow.start()
    kept = socket.create_connection(("127.0.0.1", ig.port), timeout=5)  # one request, then idle
    kept.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = kept.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 OK") and b"Connection: keep-alive" in reply
    try:
        assert closed_by_server(silent, 30)
        assert closed_by_server(slow.sock, 30) or slow.closed.is_set()
        assert closed_by_server(kept, 30)
    finally:
        slow.stop()
        silent.close()
        kept.close()
    assert ig.value("ig_http_connections_closed_total", reason="read_timeout") >= 2
    assert ig.value("ig_http_connections_closed_total", reason="idle_timeout") >= 1
    assert ig.value("ig_http_connections") == 1  # this scrape's


def test_port_in_use_fails_at_once_before_ebpf(require_bpf, tmp_path):
    """The port is bound before the eBPF programs compile: the error comes after a few tenths of a
    CPU second, where compiling the exec gadget's program takes a couple of seconds of clang."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        config = "metrics_name: m\nmetrics:\n  - {name: execs, type: counter, category: trace, gadget: exec}\n"
        result = subprocess.run([IG, "prometheus", "--host", "--config", config, "--metrics-listen-address", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}, timeout=60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use", result.stderr
    assert "Running" not in result.stdout
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert cpu < 1.5, f"{cpu:.2f} CPU seconds: the eBPF program was compiled before the port was bound"


def test_ipv6_address_printed_in_brackets(run_ig, synth):
    port = free_port()
    ig = run_ig(SYNTH, "--host", address=f"[::1]:{port}")
    assert f"Publishing metrics... (http://[::1]:{port}/metrics)" in ig.output()
    assert "ig_info" in scrape(f"http://[::1]:{port}/metrics")


def test_name_filter_is_honoured(run_ig, synth):
    feed, snapshot = synth
    snapshot.write_text('[{"comm": "sh"}]')
    ig = run_ig(SYNTH, "--host")
    feed.send({"comm": "cat"}, {"comm": "cat"})
    assert ig.wait_for("events_total", 2, comm="cat") == 2
    only_info = scrape(ig.url + "?name[]=ig_info")
    assert "ig_info{" in only_info and "events_total" not in only_info
    two = scrape(ig.url + "?name[]=events_total&name[]=sizes")
    samples = [line for line in two.splitlines() if line and not line.startswith("#")]
    assert sorted(samples) == ['events_total{comm="cat"} 2.0', 'sizes{comm="sh"} 1.0'], two
    assert scrape(ig.url + "?name[]=events") == scrape(ig.url + "?name[]=events_total")  # family or sample name


@pytest.mark.parametrize("command", ["prometheus", "trace", "snapshot", "list-gadgets"])
def test_help_at_80_columns_shows_every_option_whole(command):
    from typer.main import get_command

    from igcore.cli import app

    click_command = get_command(app).commands[command]
    result = subprocess.run([IG, command, "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "80", "TERM": "xterm"})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and max(len(line) for line in result.stdout.splitlines()) <= 80
    for param in click_command.params:
        for name in param.opts:
            if name.startswith("-"):
                assert f"{name} " in result.stdout or f"{name}," in result.stdout, (name, result.stdout)


def test_curl_keeps_a_connection_alive_and_gets_gzip(run_ig, synth):
    ig = run_ig(SYNTH, "--host")
    out = subprocess.run([need_binary("curl"), "-sS", "--compressed", "-o", "/dev/null", "-o", "/dev/null",
                          "--write-out", "%{num_connects} %{http_code} %{size_download}\n", ig.url, ig.url],
                         capture_output=True, text=True, timeout=30)
    lines = out.stdout.split("\n")
    assert lines[0].split()[:2] == ["1", "200"] and lines[1].split()[:2] == ["0", "200"], out  # the 2nd reused it
    head = subprocess.run([need_binary("curl"), "-sS", "-D", "-", "-o", "/dev/null", "-H", "Accept-Encoding: gzip", ig.url],
                          capture_output=True, text=True, timeout=30).stdout
    assert "Content-Encoding: gzip" in head
