"""A real `ig prometheus` process for the benchmarks: start it, scrape it, read its CPU, stop it.

Shared by bench/exec_storm, bench/dns_flood and bench/scrape_kernel, which compare the kernel path
(the default wherever a metric allows it) with the user path (`--no-kernel-aggregation`).
"""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
IG = str(ROOT / ".venv" / "bin" / "ig")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect_in_netns(netns: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to 127.0.0.1:port of the named network namespace (`ip netns`): a short-lived
    thread enters it and connects; the socket stays there, the caller's thread never moves."""
    result: dict = {}

    def work() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:   # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            result["sock"] = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=work, name="bench-netns-connect")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


def load() -> str:
    """The machine's 1-, 5- and 15-minute load averages, to quote beside every figure."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class IgProcess:
    """`ig prometheus --config CONFIG *args` on a free port; `user_path` adds --no-kernel-aggregation.
    With `netns` (an `ip netns` name) ig runs in that namespace, which is then its own (the host's,
    as far as it knows), and is scraped there."""

    def __init__(self, config: str, *args: str, user_path: bool = False, netns: str | None = None,
                 timeout: float = 120) -> None:
        self.netns = netns
        self.port = 2223 if netns else free_port()
        self.log = Path(tempfile.mkstemp(prefix="ig-bench-", suffix=".log")[1])
        inside = ["ip", "netns", "exec", netns] if netns else []   # exec's ig: the pid stays ig's
        cmd = [*inside, IG, "prometheus", "--config", config, "--metrics-listen-address", f"127.0.0.1:{self.port}", *args]
        if user_path:
            cmd.append("--no-kernel-aggregation")
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "NO_COLOR": "1"})
        deadline = time.monotonic() + timeout
        while "Publishing metrics" not in self.log.read_text():
            if self.proc.poll() is not None:
                raise SystemExit(f"ig exited at start:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"ig did not start within {timeout:.0f} s:\n{self.log.read_text()}")
            time.sleep(0.1)

    def scrape(self, timeout: float = 60) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        if self.netns:
            conn.sock = connect_in_netns(self.netns, self.port, timeout)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode()
        finally:
            conn.close()
        if resp.status != 200:
            raise SystemExit(f"scrape answered HTTP {resp.status}: {body[:200]}")
        return body

    def samples(self, text: str | None = None) -> list:
        """Every sample of a scrape (prometheus_client's parser): name, labels, value."""
        text = self.scrape() if text is None else text
        return [s for family in text_string_to_metric_families(text) for s in family.samples]

    def total(self, name: str, samples: list | None = None, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels`."""
        samples = self.samples() if samples is None else samples
        return sum(s.value for s in samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def paths(self, samples: list | None = None) -> dict[str, str]:
        """metric -> "kernel" or "user", from ig_metric_aggregation (empty on an ig without it)."""
        samples = self.samples() if samples is None else samples
        return {s.labels["metric"]: s.labels["path"] for s in samples
                if s.name == "ig_metric_aggregation" and s.value == 1}

    def cpu(self) -> float:
        return process_cpu(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> "IgProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
