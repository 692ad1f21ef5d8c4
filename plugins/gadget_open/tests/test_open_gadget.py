"""trace open on the real kernel, the gadget alone (factory -> start(sink) -> rows), host processes."""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import subprocess
import sys
import uuid

import pytest

from igcore.plugins import load_catalog

AT_FDCWD = -100
SYS_OPENAT2 = 437  # the same number on every architecture
SYS_OPEN = {"x86_64": 2}.get(platform.machine())


@pytest.fixture
def trace(trace_rows):
    return trace_rows("open")


def syscall(*args) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(*args)
    return ret if ret >= 0 else -ctypes.get_errno()


def by_path(path: str):
    return lambda r: r["path"] == path


def test_schema_and_registration():
    spec = load_catalog().get("trace", "open")
    assert spec is not None and spec.distribution == "ig-gadget-open"
    assert spec.container_key == "cgroup_id"
    kinds = {c.name: c.kind.value for c in spec.columns}
    for name, kind in [("pid", "int"), ("tid", "int"), ("uid", "int"), ("gid", "int"), ("comm", "str"),
                       ("path", "str"), ("flags", "str"), ("flagsRaw", "int"), ("mode", "str"), ("modeRaw", "int"),
                       ("fd", "int"), ("err", "int"), ("retval", "int"), ("cgroup_id", "uint"), ("mntns", "uint"),
                       ("k8s.container", "str")]:
        assert kinds[name] == kind, name
    assert spec.columns.get("ret").name == "retval"


def test_n_opens_of_a_missing_file_give_exactly_n_rows(trace, tmp_path):
    n = 50
    missing = str(tmp_path / f"missing-{uuid.uuid4().hex}")
    child = subprocess.run([sys.executable, "-c", f"""
import os
for _ in range({n}):
    try:
        os.open({missing!r}, os.O_RDONLY)
    except FileNotFoundError:
        pass
"""], check=True)
    assert child.returncode == 0
    rows = trace.wait(by_path(missing), n)
    assert len(rows) == n
    for r in rows:
        assert (r["retval"], r["fd"], r["err"]) == (-2, -1, 2)
        assert r["flags"] == "O_RDONLY|O_CLOEXEC" and r["flagsRaw"] == os.O_RDONLY | os.O_CLOEXEC
        assert r["syscall"] == "openat" and r["uid"] == 0 and r["cgroup_id"] > 0
    assert len({r["pid"] for r in rows}) == 1
    assert trace.gadget.stats.events_lost == 0 and trace.gadget.stats.decode_errors == 0


def test_fd_flags_and_mode_of_a_created_file(trace, tmp_path):
    path = str(tmp_path / f"created-{uuid.uuid4().hex}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o640)
    os.close(fd)
    with pytest.raises(FileExistsError):
        os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    ok, failed = sorted(trace.wait(by_path(path), 2), key=lambda r: r["timestamp"])
    assert (ok["retval"], ok["fd"], ok["err"]) == (fd, fd, 0)
    assert ok["flags"] == "O_WRONLY|O_CREAT|O_EXCL|O_TRUNC|O_CLOEXEC"
    assert (ok["mode"], ok["modeRaw"]) == ("-rw-r-----", 0o640)
    assert (failed["retval"], failed["err"], failed["modeRaw"]) == (-17, 17, 0o600)
    assert ok["pid"] == os.getpid() and ok["mntns"] == os.stat("/proc/self/ns/mnt").st_ino


def test_relative_path_is_kept_as_passed(trace, tmp_path):
    name = f"rel-{uuid.uuid4().hex}"
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileNotFoundError):
            os.open(name, os.O_RDONLY, dir_fd=dfd)
    finally:
        os.close(dfd)
    rows = trace.wait(by_path(name), 1)
    assert len(rows) == 1 and rows[0]["retval"] == -2


def test_openat2_and_open_are_seen(trace, tmp_path):
    path = str(tmp_path / f"o2-{uuid.uuid4().hex}")
    how = struct.pack("<QQQ", os.O_RDWR | os.O_CREAT, 0o600, 0)
    fd = syscall(SYS_OPENAT2, AT_FDCWD, path.encode(), how, len(how))
    assert fd >= 0
    os.close(fd)
    rows = trace.wait(by_path(path), 1)
    assert [(r["syscall"], r["retval"], r["flags"], r["modeRaw"]) for r in rows] == \
        [("openat2", fd, "O_RDWR|O_CREAT", 0o600)]
    if SYS_OPEN is None:
        pytest.skip(f"{platform.machine()} has no open(2)")
    legacy = str(tmp_path / f"legacy-{uuid.uuid4().hex}")
    assert syscall(SYS_OPEN, legacy.encode(), os.O_RDONLY, 0) == -2
    rows = trace.wait(by_path(legacy), 1)
    assert [(r["syscall"], r["retval"]) for r in rows] == [("open", -2)]


def test_long_path_is_cut_and_counted(trace, tmp_path):
    path = str(tmp_path / ("L" * 300))
    with pytest.raises(OSError):
        os.open(path, os.O_RDONLY)
    rows = trace.wait(lambda r: r["path"] == path[:255], 1)
    assert len(rows) == 1 and rows[0]["retval"] == -36  # ENAMETOOLONG: a name over 255 bytes
    assert trace.gadget.stats.extra["path_cut"] >= 1


def test_stop_is_idempotent_and_maps_are_bounded(trace):
    assert trace.gadget.bpf[b"open_inflight"].max_entries <= 16384
    trace.stop()
    trace.stop()
    assert trace.gadget.bpf is None
