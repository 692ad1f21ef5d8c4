"""A real `ig prometheus` process for the benchmarks: start it, scrape it, read its CPU, stop it.

Shared by bench/exec_storm, bench/dns_flood, bench/scrape_kernel and bench/program_cost, which
compare the kernel path (the default wherever a metric allows it) with the user path
(`--no-kernel-aggregation`).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
IG = str(ROOT / ".venv" / "bin" / "ig")


_FETCH = ("import sys, urllib.request; "
          "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        cmd = [*inside, IG, "prometheus", "--config", config,
               "--metrics-listen-address", f"127.0.0.1:{self.port}", *args]
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
        if self.netns:   # the address is the namespace's: fetch from there
            return subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-c", _FETCH,
                                   f"http://127.0.0.1:{self.port}/metrics", str(timeout)],
                                  check=True, capture_output=True, text=True).stdout
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
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
