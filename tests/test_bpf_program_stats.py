"""What ig's BPF programs cost, as metrics (docs/config.md, What ig costs): a real `ig prometheus`
exports the kernel's run count and run time of every program it loaded, and keeps the kernel's BPF
statistics on only while it runs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from igcore.bpf.stats import SYSCTL, program_info
from tests.fixtures.waiting import wait_until

EXEC_COUNTER = """
metrics_name: cost
metrics:
  - {name: execs, type: counter, category: trace, gadget: exec, labels: [comm]}
"""

PROBE = b"TRACEPOINT_PROBE(syscalls, sys_enter_getppid) { return 0; }"


def program_samples(ig, name: str, **labels: str) -> float:
    """The sum of `name` over every program whose labels include `labels`."""
    return sum(v for (n, ls), v in ig.samples().items() if n == name and set(labels.items()) <= ls)


def programs(ig) -> dict[tuple[str, str], set[str]]:
    """(category, gadget) -> the programs ig_bpf_program_runs_total reports."""
    found: dict[tuple[str, str], set[str]] = {}
    for (n, ls), _ in ig.samples().items():
        if n == "ig_bpf_program_runs_total":
            labels = dict(ls)
            found.setdefault((labels["category"], labels["gadget"]), set()).add(labels["program"])
    return found


@pytest.fixture
def binary(tmp_path) -> Path:
    """/bin/true under a name of its own: its execs are this test's."""
    return Path(shutil.copy("/bin/true", tmp_path / ("igc" + uuid.uuid4().hex[:10])))


def test_runs_of_trace_exec_rise_with_execs(require_bpf, run_ig, binary):
    ig = run_ig(EXEC_COUNTER, "--host")
    loaded = wait_until(lambda: programs(ig).get(("trace", "exec")), "the exec gadget's programs in ig_bpf_program_*")
    assert all(p.startswith("tracepoint__") for p in loaded), loaded   # the BPF function names
    # the core's own programs (the cgroup watch) are reported under a category that says so
    assert ("core", "cgroup_watch") in programs(ig)
    runs = program_samples(ig, "ig_bpf_program_runs_total", category="trace", gadget="exec")
    seconds = program_samples(ig, "ig_bpf_program_run_seconds_total", category="trace", gadget="exec")
    execs = 25
    for _ in range(execs):
        subprocess.run([str(binary)], check=True)
    ig.wait_for("execs_total", execs, comm=binary.name)
    after = program_samples(ig, "ig_bpf_program_runs_total", category="trace", gadget="exec")
    assert after - runs >= execs
    assert program_samples(ig, "ig_bpf_program_run_seconds_total", category="trace", gadget="exec") > seconds


def test_programs_a_gadget_loads_itself_are_its_own(require_bpf, run_ig):
    """trace dns loads its socket filter itself, once per network namespace, after its compile."""
    ig = run_ig("""
metrics_name: cost
metrics:
  - {name: dns_messages, type: counter, category: trace, gadget: dns}
""", "--host")
    wait_until(lambda: "ig_dns_filter" in programs(ig).get(("trace", "dns"), ()), "trace dns's socket filter")
    runs = program_samples(ig, "ig_bpf_program_runs_total", gadget="dns", program="ig_dns_filter")
    queries = 20
    query = b"\0\1\1\0\0\1\0\0\0\0\0\0\4cost\4test\0\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(queries):
            s.sendto(query, ("127.0.0.1", 53))
    wait_until(lambda: program_samples(ig, "ig_bpf_program_runs_total", gadget="dns", program="ig_dns_filter")
               >= runs + queries, "the socket filter's runs to rise by the queries sent")


@pytest.fixture
def probe(require_bpf):
    """A program of this test's own, which the kernel counts only while its BPF statistics are on."""
    import bcc

    bpf = bcc.BPF(text=PROBE)
    fd = bpf.funcs[b"tracepoint__syscalls__sys_enter_getppid"].fd
    yield lambda: program_info(fd).run_cnt
    bpf.cleanup()


def counted_while_running(runs, calls: int = 200) -> int:
    before = runs()
    for _ in range(calls):
        os.getppid()
    return runs() - before


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGKILL], ids=["stopped", "killed"])
def test_statistics_on_only_while_ig_runs(probe, run_ig, stop_signal):
    if SYSCTL.read_text().strip() != "0" or counted_while_running(probe):
        pytest.skip("the kernel's BPF statistics are on before ig starts (kernel.bpf_stats_enabled, or another "
                    "process holds BPF_ENABLE_STATS): nothing to see turn off")
    ig = run_ig(EXEC_COUNTER, "--host")
    assert counted_while_running(probe) >= 200
    ig.stop(stop_signal)
    assert counted_while_running(probe) == 0
    assert SYSCTL.read_text().strip() == "0"
