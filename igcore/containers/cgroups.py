"""cgroup v2 ids (what bpf_get_current_cgroup_id() returns: the inode of the cgroup's directory)."""

from __future__ import annotations

import os
import re
from pathlib import Path

# A path component naming a container, in the runtimes' usual layouts: docker/<id>, docker-<id>.scope,
# cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, kubepods/.../pod<uid>/<id>
_CONTAINER_COMPONENT = re.compile(r"(?:^|-)([0-9a-f]{64})(?:\.scope)?$")


def cgroup2_mount() -> str | None:
    """Where the cgroup2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified in hybrid mode)."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if fields[sep + 1] == "cgroup2":
                    return fields[4]
    except OSError:
        pass
    return None


def container_ids_of_path(path: str) -> list[str]:
    """The container ids a cgroup path names, innermost first (a container may run containers)."""
    out = []
    for part in reversed(path.split("/")):
        match = _CONTAINER_COMPONENT.search(part)
        if match and "conmon-" not in part:   # crio-conmon-<id>.scope holds cri-o's monitor, a host process
            out.append(match.group(1))
    return out


def scan(mount: str) -> dict[int, str]:
    """Every cgroup's id -> its path relative to the mount ("/docker/<id>")."""
    out: dict[int, str] = {}
    for dirpath, _dirnames, _ in os.walk(mount):
        try:
            out[os.stat(dirpath).st_ino] = dirpath[len(mount):] or "/"
        except OSError:
            continue  # removed while walking
    return out


def id_of(mount: str, path: str) -> int:
    """The cgroup id of a path relative to the mount, or 0 if it does not exist."""
    try:
        return os.stat(mount + path).st_ino
    except OSError:
        return 0


def pid_cgroup_path(pid: int) -> str | None:
    """The cgroup v2 path of a process (the `0::` line of /proc/<pid>/cgroup)."""
    try:
        with open(f"/proc/{pid}/cgroup", "rb", buffering=0) as f:   # bytes, unbuffered: once per process
            data = f.read(65536)
    except OSError:
        return None
    if data.startswith(b"0::"):
        start = 3
    else:
        at = data.find(b"\n0::")
        if at < 0:
            return None   # no cgroup v2 line (a cgroup v1-only system)
        start = at + 4
    end = data.find(b"\n", start)
    return data[start:end if end >= 0 else None].decode(errors="surrogateescape")


def ns_inode(pid: int, kind: str) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return 0


def watch_program() -> str:
    """The C of the cgroup watch (igcore.containers.sources.cgroup_tracker)."""
    return (Path(__file__).parent / "cgroup_watch.bpf.c").read_text()


def compile_watch_early(compiler) -> None:
    """Begin compiling the cgroup watch now with `compiler` (igcore.bpf.Compiler.compile_early): it
    needs no config, so it compiles while ig still loads the rest of itself."""
    if cgroup2_mount() is not None:
        compiler.compile_early(watch_program(), name="cgroup watch")
