"""Every process in one read: a BPF task iterator (iter/task) writes a fixed-size record per thread
group into a file, and a snapshot reads that file to its end.

Reading /proc costs three opens per process and the kernel's formatting of /proc/<pid>/status;
the iterator's pass, rows built in Python included, costs a tenth of that or less (bench/snapshot,
docs/config.md). The rows are the /proc reader's (procfs.py): the same sources (real_cred,
real_parent, signal->nr_threads, the default hierarchy's cgroup, the mount namespace), checked
against /proc for ig's own process when the iterator is made.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
from importlib import resources

from igcore.api import cgroup2_mount, compile_program

from .btf import running_kernel
from .procfs import read_rows, read_status

# What the program reads, as IG_OFF_<STRUCT>_<MEMBER> offsets (task_iter.bpf.c).
MEMBERS = {
    "task_struct": ("pid", "tgid", "real_parent", "real_cred", "signal", "flags", "cgroups", "nsproxy", "comm"),
    "cred": ("uid", "gid"),
    "signal_struct": ("nr_threads",),
    "css_set": ("dfl_cgrp",),
    "cgroup": ("kn",),
    "kernfs_node": ("id",),
    "nsproxy": ("mnt_ns",),
    "mnt_namespace": ("ns",),
    "ns_common": ("inum",),
}
RECORD = struct.Struct("<6IQII16s")   # struct process_row
PF_WQ_WORKER, PF_KTHREAD = 0x20, 0x00200000
TASK_COMM_LEN = 16


class IteratorUnavailable(Exception):
    """The task iterator cannot run here, or its rows would not be /proc's; the reason says which."""


@functools.cache
def offset_flags() -> tuple[str, ...]:
    """The program's offsets in the running kernel, found once per ig process (they cannot change)."""
    layout = running_kernel()
    return tuple(f"-DIG_OFF_{name.upper()}_{member.upper()}={layout.offset(name, member)}"
                 for name, members in MEMBERS.items() for member in members)


def _renamed_by_proc(flags: int, comm: bytes) -> bool:
    """/proc shows a kernel thread's full name (a workqueue worker's with its queue, a longer name
    than the 15 bytes of comm): those few rows take their name from /proc."""
    return bool(flags & PF_KTHREAD and (flags & PF_WQ_WORKER or len(comm) == TASK_COMM_LEN - 1))


def layout_flags() -> tuple[str, ...]:
    """offset_flags(), or why the iterator cannot load: checked before its compile, which takes
    longer (without root, the compile would only fail)."""
    if os.geteuid() != 0:
        raise IteratorUnavailable("loading its eBPF program needs root (run ig as root)")
    try:
        return offset_flags()
    except Exception as exc:   # LayoutUnknown, or BTF we cannot parse
        raise IteratorUnavailable(str(exc)) from exc


class TaskIterator:
    """The loaded program and its link; `rows()` runs the iteration once. Close when done."""

    def __init__(self, ctx) -> None:
        flags = layout_flags()
        text = resources.files(__package__).joinpath("task_iter.bpf.c").read_text()
        try:
            self.bpf = compile_program(text, ["-DIG_RINGBUF_PAGES=1", *flags], name="process", ctx=ctx)
        except Exception as exc:   # BpfUnavailable (not root, bcc refused it)
            raise IteratorUnavailable(str(exc)) from exc
        self.link = -1
        try:
            import bcc   # importable: compile_program just used it

            program = self.bpf.load_func(b"bpf_iter__task", bcc.BPF.TRACING)
            self._libbcc = ctypes.CDLL(bcc.lib._name, use_errno=True)   # our own handle: bcc's prototypes stay its own
            self._libbcc.bcc_iter_attach.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
            self._libbcc.bcc_iter_create.argtypes = [ctypes.c_int]
            self.link = self._libbcc.bcc_iter_attach(program.fd, None, 0)
            if self.link < 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            self._check_against_proc()
        except Exception as exc:
            self.close()
            if isinstance(exc, IteratorUnavailable):
                raise
            raise IteratorUnavailable(f"the kernel refused the task iterator: {exc}") from exc

    def read(self) -> bytes:
        """One pass of the iterator: a record per thread group."""
        fd = self._libbcc.bcc_iter_create(self.link)
        if fd < 0:
            raise OSError(ctypes.get_errno(), f"creating the task iterator: {os.strerror(ctypes.get_errno())}")
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks)

    def rows(self, wanted: set[int]) -> list[dict]:
        """The rows of the processes in `wanted` that the iterator shows; each is taken out of it."""
        has_cgroup2 = cgroup2_mount() is not None   # without it the /proc reader has no cgroup id either
        names: dict[bytes, str] = {}   # processes share names: decode each once
        rows = []
        for pid, ppid, uid, gid, threads, flags, cgroup_id, mntns, _, comm in RECORD.iter_unpack(self.read()):
            if pid not in wanted:
                continue
            wanted.discard(pid)
            comm = comm.split(b"\0", 1)[0]
            if flags & PF_KTHREAD and _renamed_by_proc(flags, comm):
                status = read_status(pid)
                if status is None:
                    continue   # exited since: /proc would not list it
                name = status.comm
            else:
                known = names.get(comm)
                name = known if known is not None else names.setdefault(comm, comm.decode(errors="replace"))
            rows.append({"pid": pid, "ppid": ppid, "uid": uid, "gid": gid, "comm": name, "threads": threads,
                         "cgroup_id": cgroup_id if has_cgroup2 else 0, "mntns": mntns})
        return rows

    def rows_of(self, listed: list[int]) -> list[dict]:
        """The rows of the processes /proc listed (`procfs.pids()`, taken before): /proc decides which
        processes a snapshot holds, the iterator what it says of them. A listed process the iterator
        did not show (this machine's never shows pid 1, its sandbox's init) is read from /proc;
        one that started after the listing waits for the next snapshot, as with the /proc reader."""
        wanted = set(listed)
        rows = self.rows(wanted)
        rows.extend(read_rows(sorted(wanted)))
        return rows

    def _check_against_proc(self, tries: int = 3) -> None:
        """ig's own row must be what /proc says of ig: a wrong offset, another pid namespace (the
        iterator sees the kernel's pids) or another user namespace would show here. Threads start
        and end while ig starts, so a mismatch is read again before it counts."""
        me = os.getpid()
        for _ in range(tries):
            expected = next(iter(read_rows([me])))   # the /proc reader is the reference
            got = next(iter(self.rows({me})), None)
            if got == expected:
                return
        raise IteratorUnavailable(f"its row for ig's own process ({got}) is not /proc's ({expected})")

    def close(self) -> None:
        if self.link >= 0:
            os.close(self.link)
            self.link = -1
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
