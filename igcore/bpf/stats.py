"""What ig's BPF programs cost: the kernel's run-time statistics of every program ig loaded (how
many times each ran and for how many nanoseconds), kept on while ig serves metrics and read at
scrape time (docs/config.md, "What ig costs").

The kernel counts only while its BPF statistics are on. `RunTimeStats` turns them on the way that
cannot outlive ig: BPF_ENABLE_STATS gives a file descriptor, and the statistics stay on while any
process holds one (the kernel lets go of ig's when ig exits, however it exits). Only a kernel that
refuses the command gets the sysctl kernel.bpf_stats_enabled instead, set back at release().

Everything here talks to bpf(2) through ctypes: bcc's library exports none of these commands.

Most programs are a bcc object's functions, named by bcc. A plugin may also load one of its object's
functions itself (trace dns loads its socket filter once per network namespace): such a program
is found among the descriptors ig holds, and is its object's because it uses the object's maps.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("igcore.bpf")

SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")

# bpf(2)'s number where ig runs (the syscall has no libc wrapper).
_BPF_SYSCALL = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_BPF_PROG_GET_FD_BY_ID = 13
_BPF_OBJ_GET_INFO_BY_FD = 15
_BPF_ENABLE_STATS = 32
_BPF_STATS_RUN_TIME = 0
_NAME_LEN = 16   # BPF_OBJ_NAME_LEN: the kernel keeps the first 15 bytes of a program's name


class _ProgInfo(ctypes.Structure):
    """struct bpf_prog_info (include/uapi/linux/bpf.h) up to run_cnt; the kernel fills what it knows."""

    _fields_ = [
        ("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32), ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64), ("name", ctypes.c_char * _NAME_LEN), ("ifindex", ctypes.c_uint32),
        ("gpl_compatible", ctypes.c_uint32), ("netns_dev", ctypes.c_uint64), ("netns_ino", ctypes.c_uint64),
        ("nr_jited_ksyms", ctypes.c_uint32), ("nr_jited_func_lens", ctypes.c_uint32),
        ("jited_ksyms", ctypes.c_uint64), ("jited_func_lens", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
        ("nr_func_info", ctypes.c_uint32), ("nr_line_info", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
        ("jited_line_info", ctypes.c_uint64), ("nr_jited_line_info", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32), ("jited_line_info_rec_size", ctypes.c_uint32),
        ("nr_prog_tags", ctypes.c_uint32), ("prog_tags", ctypes.c_uint64),
        ("run_time_ns", ctypes.c_uint64), ("run_cnt", ctypes.c_uint64),
    ]


class _MapInfo(ctypes.Structure):
    """The start of struct bpf_map_info: the map's id is all that is read."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32)]


class _InfoByFd(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(command: int, attr: ctypes.Structure | ctypes.c_uint32) -> int:
    """bpf(2); OSError with the kernel's errno."""
    number = _BPF_SYSCALL.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"ig does not know bpf(2)'s number on {os.uname().machine}")
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(command), ctypes.byref(attr),
                           ctypes.c_uint(ctypes.sizeof(attr)))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def program_info(fd: int, map_ids: ctypes.Array | None = None) -> _ProgInfo:
    """The kernel's information on a program; with `map_ids`, the ids of the maps it uses too."""
    info = _ProgInfo()
    if map_ids is not None:
        info.nr_map_ids, info.map_ids = len(map_ids), ctypes.addressof(map_ids)
    _object_info(fd, info)
    return info


def _object_info(fd: int, info: ctypes.Structure) -> None:
    _bpf(_BPF_OBJ_GET_INFO_BY_FD, _InfoByFd(fd, ctypes.sizeof(info), ctypes.addressof(info)))


def _map_ids(bpf) -> frozenset[int]:
    """The kernel ids of the maps of a bcc object."""
    lib = ctypes.CDLL("libbcc.so.0")   # a handle of our own: bcc's keeps its own signatures
    lib.bpf_num_tables.restype, lib.bpf_num_tables.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    lib.bpf_table_fd_id.restype, lib.bpf_table_fd_id.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t]
    ids: set[int] = set()
    for index in range(lib.bpf_num_tables(bpf.module)):
        fd = lib.bpf_table_fd_id(bpf.module, index)
        if fd >= 0:
            info = _MapInfo()
            _object_info(fd, info)
            ids.add(info.id)
    return frozenset(ids)


SCAN_EVERY = 2.0


def _held_program_ids() -> set[int]:
    """The ids of the programs this process holds a descriptor of."""
    ids: set[int] = set()
    for entry in os.scandir("/proc/self/fd"):
        try:
            if os.readlink(entry.path) != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/self/fdinfo/{entry.name}") as fdinfo:
                ids.update(int(line.split()[1]) for line in fdinfo if line.startswith("prog_id:"))
        except (OSError, ValueError, IndexError):
            continue   # closed meanwhile
    return ids


def _program_fd(prog_id: int) -> int:
    return _bpf(_BPF_PROG_GET_FD_BY_ID, ctypes.c_uint32(prog_id))


@dataclass(frozen=True)
class ProgramCost:
    category: str
    gadget: str
    program: str
    runs: int
    run_seconds: float


class LoadedPrograms:
    """Every program loaded through one compiler, by kernel id. Ids, not file descriptors: bcc
    closes a program's descriptor when its gadget stops, and a scrape at that moment must not read
    whatever the number then names. A program the kernel no longer has is dropped at the next read,
    its counts kept (as of that read) so that each counter only rises; a program whose gadget is
    compiled again at a reload ran both before and after, under the same labels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, tuple[str, str, str]] = {}   # kernel id -> (category, gadget, program)
        self._kernel_names: dict[int, bytes] = {}          # kernel id -> the name the kernel keeps
        self._last: dict[int, tuple[int, int]] = {}        # kernel id -> (runs, ns) at the latest read
        self._gone: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._objects: list[tuple[frozenset[int], str, str]] = []   # (map ids, category, gadget) per object
        self._strangers: set[int] = set()   # ids held that belong to no object (looked at once)
        self._scanned_at = -SCAN_EVERY       # when /proc/self/fd was last looked through

    def add(self, bpf, category: str, gadget: str) -> None:
        """The programs of a bcc BPF object (its loaded functions). Never raises: a program ig
        cannot name only goes unreported."""
        try:
            maps = _map_ids(bpf)
        except Exception as exc:   # then only the object's own functions are found
            log.debug("the maps of %s %s are unknown: %s", category, gadget, exc)
        else:
            with self._lock:
                self._objects.append((maps, category, gadget))
        try:
            functions = list(bpf.funcs.items())
            for name, function in functions:
                program = name.decode() if isinstance(name, bytes) else str(name)
                info = program_info(function.fd)
                with self._lock:
                    self._live[info.id] = (category, gadget, program)
                    self._kernel_names[info.id] = info.name
        except Exception as exc:
            log.debug("the BPF programs of %s %s go unreported in ig_bpf_program_*: %s", category, gadget, exc)

    def read(self) -> list[ProgramCost]:
        """The runs and run time of every program ig loaded, summed by (category, gadget, program)."""
        with self._lock:
            self._adopt_loaded_later()
            totals = dict(self._gone)
            for prog_id, labels in list(self._live.items()):
                counts = self._read_one(prog_id, self._kernel_names[prog_id])
                if counts is None:   # unloaded: its counts as of the latest read stay in its labels' totals
                    last = self._last.pop(prog_id, (0, 0))
                    self._gone[labels] = _plus(self._gone.get(labels, (0, 0)), last)
                    totals[labels] = _plus(totals.get(labels, (0, 0)), last)
                    del self._live[prog_id], self._kernel_names[prog_id]
                    continue
                self._last[prog_id] = counts
                totals[labels] = _plus(totals.get(labels, (0, 0)), counts)
        return [ProgramCost(*labels, runs=runs, run_seconds=ns / 1e9) for labels, (runs, ns) in sorted(totals.items())]

    def _adopt_loaded_later(self) -> None:
        """Name the programs ig holds that no object listed when it was compiled, by the maps they use.
        At most every SCAN_EVERY seconds: a look through every descriptor costs more than the rest of
        a scrape, and a program loaded later (trace dns's, per namespace) waits that long at most."""
        now = time.monotonic()
        if now - self._scanned_at < SCAN_EVERY:
            return
        self._scanned_at = now
        for prog_id in _held_program_ids() - self._live.keys() - self._strangers:
            self._strangers.add(prog_id)
            try:
                fd = _program_fd(prog_id)
            except OSError:
                continue
            try:
                maps = (ctypes.c_uint32 * 64)()
                info = program_info(fd, maps)
            finally:
                os.close(fd)
            used = set(maps[:min(info.nr_map_ids, len(maps))])
            for ids, category, gadget in reversed(self._objects):   # the newest object first
                if used & ids:
                    self._strangers.discard(prog_id)
                    self._live[prog_id] = (category, gadget, info.name.decode(errors="replace"))
                    self._kernel_names[prog_id] = info.name
                    break

    @staticmethod
    def _read_one(prog_id: int, kernel_name: bytes) -> tuple[int, int] | None:
        try:
            fd = _program_fd(prog_id)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        try:
            info = program_info(fd)
        finally:
            os.close(fd)
        # Ids are not reused before they wrap around 2^31; the name check makes sure all the same.
        if info.name != kernel_name:
            return None
        return info.run_cnt, info.run_time_ns


def _plus(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] + b[0], a[1] + b[1]


class RunTimeStats:
    """The kernel's BPF run-time statistics, on from enable() to release() (both idempotent;
    neither raises: without the statistics the metrics read 0 and one warning says why)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._restore_sysctl = False

    def enable(self) -> None:
        if self._fd is not None or self._restore_sysctl:
            return
        try:
            self._fd = _bpf(_BPF_ENABLE_STATS, ctypes.c_uint32(_BPF_STATS_RUN_TIME))
            return
        except OSError as exc:
            refused = exc
        try:
            if SYSCTL.read_text().strip() != "0":
                return   # on already, and not ours to turn off
            SYSCTL.write_text("1")
            self._restore_sysctl = True
            log.info("the kernel refused BPF_ENABLE_STATS (%s): kernel.bpf_stats_enabled is 1 until ig stops",
                     refused.strerror)
        except OSError as exc:
            log.warning("ig_bpf_program_run* stay at 0: the kernel's BPF statistics could not be turned on "
                        "(BPF_ENABLE_STATS: %s; %s: %s)", refused.strerror, SYSCTL, exc.strerror)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._restore_sysctl:
            self._restore_sysctl = False
            try:
                SYSCTL.write_text("0")
            except OSError as exc:
                log.warning("kernel.bpf_stats_enabled could not be set back to 0: %s", exc.strerror)
