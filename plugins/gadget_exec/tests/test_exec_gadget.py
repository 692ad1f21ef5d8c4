"""trace exec on the real kernel: the gadget alone (factory -> start(sink) -> rows), then through `ig prometheus`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from igcore.plugins import load_catalog

NOBODY = 65534


@pytest.fixture
def trace(trace_rows):
    return trace_rows("exec")


@pytest.fixture
def binary():
    """A copy of /bin/true with a unique name (its comm), in a directory every user can enter."""
    folder = Path(tempfile.mkdtemp(prefix="ig-exec-"))
    folder.chmod(0o755)
    name = "igx" + uuid.uuid4().hex[:10]  # 13 characters: a comm holds 15
    path = folder / name
    shutil.copy("/bin/true", path)
    path.chmod(0o755)
    yield path
    shutil.rmtree(folder)


def by_comm(name: str):
    return lambda r: r["comm"] == name


def test_schema_and_registration():
    spec = load_catalog().get("trace", "exec")
    assert spec is not None and spec.distribution == "ig-gadget-exec"
    assert spec.container_key == "cgroup_id"
    kinds = {c.name: c.kind.value for c in spec.columns}
    for name, kind in [("pid", "int"), ("ppid", "int"), ("uid", "int"), ("gid", "int"), ("comm", "str"),
                       ("args", "str"), ("retval", "int"), ("timestamp", "int"), ("cgroup_id", "uint"),
                       ("mntns", "uint"), ("k8s.namespace", "str")]:
        assert kinds[name] == kind, name
    assert spec.columns.get("ret").name == "retval"


def test_n_executions_give_exactly_n_events(trace, binary):
    n = 40
    procs = [subprocess.Popen([str(binary), "run", str(i)]) for i in range(n)]
    # Wait on these children only: other fixtures (dockerd, Prometheus) may be children too.
    for p in procs:
        p.wait(timeout=30)
    pids = {p.pid for p in procs}
    trace.wait(by_comm(binary.name), n)
    trace.stop()
    rows = trace.matching(by_comm(binary.name))
    assert len(rows) == n
    assert {r["pid"] for r in rows} == pids
    assert sorted(r["args"] for r in rows) == sorted(f"{binary} run {i}" for i in range(n))
    me = os.getpid()
    for r in rows:
        assert r["retval"] == 0 and r["ppid"] == me and r["uid"] == 0 and r["gid"] == 0
        assert r["cgroup_id"] > 0
        assert abs(r["timestamp"] - time.time_ns()) < 60e9
    assert trace.gadget.stats.events_lost == 0 and trace.gadget.stats.decode_errors == 0
    assert trace.gadget.stats.events_received >= n


def test_failed_exec_reports_negative_errno_and_callers_comm(trace, binary):
    missing = binary.parent / f"missing-{binary.name}"
    with pytest.raises(FileNotFoundError):
        subprocess.run([str(missing), "x"])
    rows = trace.wait(lambda r: r["args"] == f"{missing} x", 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["retval"] == -2
    # A failed exec leaves the caller's command: the forked child of this test process.
    assert row["comm"] == Path("/proc/self/comm").read_text().strip()
    assert row["ppid"] == os.getpid()


def test_args_and_ppid_of_a_parent_child_pair(trace, binary):
    long_arg = "L" * 300
    script = f'{binary} "a b" c "" {long_arg}; exec {binary} ' + " ".join(str(i) for i in range(25))
    sh = subprocess.Popen(["/bin/sh", "-c", script])
    sh.wait()
    rows = trace.wait(by_comm(binary.name), 2)
    assert len(rows) == 2
    first, second = sorted(rows, key=lambda r: r["timestamp"])
    # sh forks for the first command; `exec` runs the second in place of sh.
    assert first["ppid"] == sh.pid and first["pid"] != sh.pid
    assert first["args"] == f"{binary} a b c  " + "L" * 127
    assert second["pid"] == sh.pid and second["ppid"] == os.getpid()
    assert second["args"] == f"{binary} " + " ".join(str(i) for i in range(19)) + " ..."
    shell = trace.wait(lambda r: r["pid"] == sh.pid and r["comm"] == "sh", 1)
    assert shell and shell[0]["args"].startswith("/bin/sh -c ") and shell[0]["ppid"] == os.getpid()


def test_uid_and_gid_of_a_non_root_user(trace, binary):
    subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(binary), "as-nobody"],
                   check=True)
    subprocess.run([str(binary), "as-root"], check=True)
    rows = trace.wait(by_comm(binary.name), 2)
    uids = {r["args"].split()[-1]: (r["uid"], r["gid"]) for r in rows}
    assert uids == {"as-nobody": (NOBODY, NOBODY), "as-root": (0, 0)}


def test_exec_from_a_non_leader_thread(trace, binary):
    """The kernel gives the exec'ing thread the leader's id: the event keeps its arguments and the pid."""
    sleeper = binary.with_name(binary.name[:-1] + "s")
    shutil.copy("/bin/sleep", sleeper)
    code = textwrap.dedent(f"""
        import os, threading, time
        threading.Thread(target=lambda: os.execv({str(sleeper)!r}, [{str(sleeper)!r}, "0.5"])).start()
        time.sleep(5)
    """)
    child = subprocess.Popen([sys.executable, "-c", code])
    child.wait()
    rows = trace.wait(by_comm(sleeper.name), 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["pid"] == child.pid and row["retval"] == 0
    assert row["args"] == f"{sleeper} 0.5"
    assert row["ppid"] == os.getpid()  # read from /proc: the process was still alive
    assert row["mntns"] == os.stat("/proc/self/ns/mnt").st_ino
    assert trace.gadget.stats.extra["args_missing"] == 0


def proc_ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError("no PPid line")


def test_ppid_of_a_process_older_than_the_gadget(trace_rows, binary):
    """No fork was seen for it: the gadget reads its parent in /proc."""
    sleeper = binary.with_name(binary.name[:-1] + "o")
    shutil.copy("/bin/sleep", sleeper)
    old = subprocess.Popen(["/bin/sh", "-c", f"read line; exec {sleeper} 1"], stdin=subprocess.PIPE)
    t = trace_rows("exec")
    try:
        old.stdin.write(b"go\n")
        old.stdin.close()
        rows = t.wait(by_comm(sleeper.name), 1)
    finally:
        t.stop()
        old.wait()
    assert len(rows) == 1 and rows[0]["pid"] == old.pid and rows[0]["ppid"] == os.getpid()
    assert t.gadget.stats.extra["ppid_from_proc"] >= 1


def test_ppid_after_the_parent_exited(trace, binary):
    """A child whose parent exited has been reparented: its ppid is the new parent, not the dead one."""
    sleeper = binary.with_name(binary.name[:-1] + "r")
    shutil.copy("/bin/sleep", sleeper)
    sh = subprocess.Popen(["/bin/sh", "-c", f"(sleep 0.3; exec {sleeper} 1) & exit 0"])
    sh.wait()
    rows = trace.wait(by_comm(sleeper.name), 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["ppid"] != sh.pid
    assert row["ppid"] == proc_ppid(row["pid"])  # still alive (sleeps 1 s): the kernel's view


def test_stop_is_idempotent_and_maps_are_bounded(trace):
    bpf = trace.gadget.bpf
    assert bpf[b"exec_inflight"].max_entries <= 4096
    assert bpf[b"exec_parents"].max_entries <= 65536
    trace.stop()
    trace.stop()
    assert trace.gadget.bpf is None
