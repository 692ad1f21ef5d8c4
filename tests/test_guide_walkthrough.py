"""docs/guide.md run as written: its own commands, on this machine, compared with the outputs it shows.

The commands are read from the guide (tests/fixtures/guide.py says how), not copied here, so the
guide cannot drift from what ig prints; every PromQL row of its tables must return what the row
promises. tests/test_guide_e2e.py checks the same numbers more strictly with a test resolver.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sysconfig
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.guide import Command, Query, matches, steps, value_matches
from tests.fixtures.netns import wait_until_watched
from tests.fixtures.requirements import need_binary

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
PROMETHEUS = "http://127.0.0.1:9090"
WAIT = 60
# The guide runs plain `ig`, as `make install` puts it on PATH; the test runs this venv's, wherever
# /usr/local/bin points.
VENV_BIN = sysconfig.get_path("scripts")


def test_the_guide_parses_into_commands_and_checkable_queries():
    found = steps(GUIDE.read_text())
    commands = [s for s in found if isinstance(s, Command)]
    queries = [s for s in found if isinstance(s, Query)]
    assert any(c.program == "ig" and "background" in c.options for c in commands)
    # Plain `ig`, as a reader who ran `make install` types it (docs/guide.md, its first section).
    assert all(c.line.split()[0] == "ig" for c in commands if c.program == "ig")
    assert any("docker run" in c.line for c in commands)
    assert len(queries) >= 6 and all(q.expr for q in queries)
    # The first Prometheus query comes after a wait for Prometheus' first scrape.
    asks = [c.line for c in commands if "127.0.0.1:9090/api/v1/query" in c.line]
    assert asks[0].startswith("until ") and "up{job=" in asks[0]


DNSMASQ_PID_FILE = "/run/dnsmasq-ig-guide.pid"


def cleanup_of_dnsmasq() -> str:
    found = [c.line for c in steps(GUIDE.read_text()) if isinstance(c, Command) and DNSMASQ_PID_FILE in c.line
             and "kill" in c.line]
    assert len(found) == 1, found
    return found[0]


def test_the_cleanup_kills_no_process_but_dnsmasq_and_removes_the_pid_file(tmp_path):
    """A pid file left from an earlier run may name any process by now: the guide's clean-up spares it."""
    pid_file = tmp_path / "dnsmasq.pid"
    other = subprocess.Popen(["sleep", "60"])
    try:
        pid_file.write_text(f"{other.pid}\n")
        done = subprocess.run(["bash", "-c", cleanup_of_dnsmasq().replace(DNSMASQ_PID_FILE, str(pid_file))],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert other.poll() is None, "the clean-up killed a process that is not dnsmasq"
        assert not pid_file.exists()
    finally:
        other.kill()
        other.wait()


class GuideRun:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.background: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.containers: set[str] = set()
        self.env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100",
                    "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", os.defpath)])}
        self.exits: dict[str, list[int]] = {}

    def run(self, step) -> None:
        if isinstance(step, Query):
            self.query(step)
            return
        for program in step.options.get("stopped", "").split():
            self.stop(program)
        if "background" in step.options:
            self.start(step)
        else:
            self.foreground(step)

    # -- commands ------------------------------------------------------------------------------
    def _wait_watched(self, step: Command) -> None:
        container = step.options.get("watched")
        if container:
            pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container], capture_output=True,
                                 text=True, check=True).stdout.strip()
            wait_until_watched(self.background["ig"][0].pid, int(pid))

    def start(self, step: Command) -> None:
        self._wait_watched(step)
        if step.program in self.background:
            self.stop(step.program)
        ready_file = step.options.get("ready-file")
        if ready_file and os.path.exists(ready_file):
            os.unlink(ready_file)
        log = self.logs / f"{step.program}-{len(list(self.logs.iterdir()))}.log"
        proc = subprocess.Popen(["bash", "-c", f"exec {step.line}"], cwd=ROOT, env=self.env,
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.background[step.program] = (proc, log)
        deadline = time.monotonic() + WAIT
        while not self._ready(step, log):
            assert proc.poll() is None, f"`{step.line}` exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"`{step.line}` not ready in {WAIT}s:\n{log.read_text()}"
            time.sleep(0.1)
        if step.expected and "varies" not in step.options:
            out = log.read_text().splitlines()
            assert matches(out, step.expected, self._masks(step)), self._diff(step, out)

    def _ready(self, step: Command, log: Path) -> bool:
        if "ready" in step.options:
            try:
                with urllib.request.urlopen(step.options["ready"], timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False
        if "ready-file" in step.options:
            return os.path.exists(step.options["ready-file"])
        out = log.read_text()
        return all(line in out for line in step.expected if line != "...")

    def foreground(self, step: Command) -> None:
        self._wait_watched(step)
        self.containers.update(re.findall(r"--name[= ](\S+)", step.line))
        deadline = time.monotonic() + (WAIT if "retry" in step.options else 0)
        while True:
            done = subprocess.run(["bash", "-c", step.line], cwd=ROOT, env=self.env, capture_output=True, text=True,
                                  timeout=300)
            out = (done.stdout + done.stderr).splitlines()
            ok = done.returncode == 0 and ("varies" in step.options or matches(out, step.expected, self._masks(step)))
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        assert done.returncode == 0, f"`{step.line}` exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        assert ok, self._diff(step, out)

    @staticmethod
    def _masks(step: Command) -> list[str]:
        return [step.options["mask"]] if "mask" in step.options else []

    @staticmethod
    def _diff(step: Command, out: list[str]) -> str:
        return f"`{step.line}`\n--- the guide shows\n" + "\n".join(step.expected) + "\n--- it printed\n" + "\n".join(out)

    # -- PromQL ----------------------------------------------------------------------------------
    def query(self, step: Query) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            url = f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': step.expr})}"
            with urllib.request.urlopen(url, timeout=10) as resp:
                result = json.load(resp)["data"]["result"]
            if self._promised(step, result) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert self._promised(step, result), f"{step.question}: `{step.expr}` gave {result}, the guide promises {step.expected}"

    @staticmethod
    def _promised(step: Query, result: list[dict]) -> bool:
        if step.expected is None:
            return result == []
        got = {frozenset((k, v) for k, v in r["metric"].items() if k != "__name__"): float(r["value"][1]) for r in result}
        return len(got) == len(step.expected) and all(
            frozenset(labels.items()) in got and value_matches(got[frozenset(labels.items())], value)
            for labels, value in step.expected)

    # -- the end ---------------------------------------------------------------------------------
    def stop(self, program: str) -> None:
        proc, log = self.background.pop(program)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)   # Ctrl + C, as the guide says
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert "Traceback" not in log.read_text(), log.read_text()
        self.exits.setdefault(program, []).append(proc.returncode)

    def close(self) -> None:
        for name in self.containers:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        for program in list(self.background):
            self.stop(program)


@pytest.mark.prometheus
def test_the_guide_as_written(docker, require_bpf, tmp_path):
    for binary in ("prometheus", "dnsmasq", "curl"):
        need_binary(binary)
    run = GuideRun(tmp_path)
    try:
        for step in steps(GUIDE.read_text()):
            run.run(step)
        assert run.exits["ig"] == [0, 0], "ig, stopped twice with Ctrl + C as the guide says"
        assert run.exits["prometheus"] == [0]
        # The clean-up leaves nothing behind: dnsmasq ended, its pid file and Prometheus' data gone.
        run.background["nsenter"][0].wait(timeout=WAIT)   # nsenter execs dnsmasq
        assert not os.path.exists(DNSMASQ_PID_FILE)
        assert not list(Path("/tmp").glob("ig-guide-prometheus.*"))
    finally:
        run.close()
