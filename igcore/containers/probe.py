"""What the kernel says of a container's processes: namespaces, cgroup ids, liveness (/proc, cgroupfs).

The collection calls these outside its lock; a test of its policy passes a probe of its own.
"""

from __future__ import annotations

import os

from .cgroups import id_of, ns_inode, pid_cgroup_path
from .runc import RuncState


class HostProbe:
    def __init__(self, mount: str | None) -> None:
        self.mount = mount   # where cgroup2 is mounted, None if nowhere

    def host_namespaces(self) -> dict[str, int]:
        """ig's own (the host's) namespaces: a container sharing one (--network host) must not claim it."""
        return {"netns": ns_inode(os.getpid(), "net"), "mntns": ns_inode(os.getpid(), "mnt")}

    def namespaces(self, pid: int) -> tuple[int, int]:
        """(mntns, netns) of a process, 0 where it is gone."""
        return ns_inode(pid, "mnt"), ns_inode(pid, "net")

    def alive(self, state: RuncState) -> bool:
        return state.alive()

    def relative(self, cgroup_path: str) -> str | None:
        """A state's absolute cgroup path as the path below the mount, None if outside it."""
        if cgroup_path and self.mount and cgroup_path.startswith(self.mount):
            return cgroup_path[len(self.mount):]
        return None

    def cgroup_id_of_path(self, path: str) -> int:
        """The id of a cgroup path below the mount, 0 if it does not exist."""
        return id_of(self.mount, path) if self.mount else 0

    def cgroup_id_of_pid(self, pid: int) -> int:
        if not self.mount:
            return 0
        path = pid_cgroup_path(pid)
        return id_of(self.mount, path) if path else 0
