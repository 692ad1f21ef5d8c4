"""snapshot process on real processes and containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import threading
import time

import pytest

from igcore.gadgets import GadgetContext
from igcore.plugins import load_catalog
from ig_gadget_process.procfs import pids, read_rows
from tests.fixtures.igrun import IG
from tests.fixtures.nobody import as_nobody

THREADED_CHILD = "import threading,time\n[threading.Thread(target=time.sleep,args=(30,),daemon=True).start() for _ in range(3)]\ntime.sleep(30)"


def gadget():
    return load_catalog().get("snapshot", "process").factory(GadgetContext(host=True))


@pytest.fixture(scope="module")
def by_iterator():
    """The gadget's snapshot once its task iterator has loaded."""
    if os.geteuid() != 0:
        pytest.skip("the task iterator needs root")
    g = gadget()
    g.load_iterator()
    assert g.reader == "task iterator"
    yield g.snapshot
    g.close()


@pytest.fixture(params=["/proc", "task iterator"])
def snapshot(request):
    """Each reader of the gadget (docs/config.md, What snapshot process reads)."""
    if request.param == "/proc":
        return lambda: list(read_rows(pids()))
    return request.getfixturevalue("by_iterator")


def test_a_known_process_with_its_threads(snapshot):
    child = subprocess.Popen([sys.executable, "-c", THREADED_CHILD])
    try:
        deadline = time.monotonic() + 10
        row = None
        while time.monotonic() < deadline:
            row = next((r for r in snapshot() if r["pid"] == child.pid), None)
            if row and row["threads"] == 4:
                break
            time.sleep(0.1)
        assert row is not None
        assert row["ppid"] == os.getpid()
        assert row["threads"] == 4                      # main thread + 3
        assert row["comm"].startswith("python")
        assert row["uid"] == 0 and row["cgroup_id"] > 0 and row["mntns"] > 0
    finally:
        child.kill()
        child.wait()


def test_the_iterator_loads_at_the_first_snapshot_which_reads_proc(require_bpf):
    """ig's start does not wait for the iterator's compile, nor does the first snapshot (docs/config.md,
    What snapshot process reads): that snapshot reads /proc and the iterator takes over once loaded."""
    g = gadget()
    try:
        assert g.reader == "/proc"
        assert any(r["pid"] == os.getpid() and r["uid"] == 0 for r in g.snapshot())
        deadline = time.monotonic() + 120
        while g.reader != "task iterator" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert g.reader == "task iterator"
        assert any(r["pid"] == os.getpid() and r["uid"] == 0 for r in g.snapshot())
    finally:
        g.close()


def test_where_the_iterator_cannot_load_it_reads_proc_and_says_why():
    result = subprocess.run([*as_nobody(), IG, "snapshot", "process", "--host", "--output", "json"],
                            capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(r["pid"] == os.getpid() and r["uid"] == 0 for r in rows)
    why = [line for line in result.stderr.splitlines() if "task iterator" in line]
    assert len(why) == 1 and "reads /proc" in why[0] and "needs root" in why[0], result.stderr


# Real ids differ from the effective ones, as in a setuid-root program run by nobody; and a name with
# the two characters /proc/<pid>/status escapes.
SETUID = r"""
import ctypes, os, sys, time
os.setresgid(65534, 0, 0); os.setresuid(65534, 0, 0)
ctypes.CDLL(None).prctl(15, b"ig\\d\nx")   # PR_SET_NAME
print(flush=True)
time.sleep(30)
"""


def test_real_ids_and_an_escaped_name(snapshot):
    child = subprocess.Popen([sys.executable, "-c", SETUID], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        assert os.stat(f"/proc/{child.pid}").st_uid == 0      # /proc/<pid> is owned by the effective uid
        row = next(r for r in snapshot() if r["pid"] == child.pid)
        assert (row["uid"], row["gid"]) == (65534, 65534)
        assert row["comm"] == "ig\\d\nx"
    finally:
        child.kill()
        child.wait()


def test_processes_vanishing_during_the_snapshot_are_skipped(snapshot):
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            subprocess.run(["/bin/true"])

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            rows = snapshot()
            assert any(r["pid"] == 1 for r in rows)
    finally:
        stop.set()
        for t in threads:
            t.join()


GAUGE = """
metrics_name: processes
metrics:
  - name: number_of_processes
    type: gauge
    category: snapshot
    gadget: process
    labels: [k8s.namespace, k8s.pod, k8s.container]
"""


def test_container_processes_gauge_follows_the_container(run_ig, docker, require_bpf):
    name = "ig-procs-" + uuid.uuid4().hex[:6]
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sh", "-c",
               "for i in 1 2 3; do sleep 1000 & done; wait", name=name, detach=True)
    ig = run_ig(GAUGE, "--snapshot-min-interval", "0")
    assert ig.wait_for("number_of_processes", 4, k8s_container=name) == 4   # 3 sleeps + the shell
    assert ig.value("number_of_processes", k8s_container=name, k8s_namespace="", k8s_pod="") == 4
    docker.rm(name)
    deadline = time.monotonic() + 20
    while ig.value("number_of_processes", k8s_container=name) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ig.value("number_of_processes", k8s_container=name) is None
