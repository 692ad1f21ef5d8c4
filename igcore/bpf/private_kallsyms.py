"""The compiler thread's own /proc/kallsyms, and the walls that keep it from the rest of ig.

Two facts about bcc 0.26, found while making start-up faster (bench/startup):
- Every compilation reads all of /proc/kallsyms (120,000 symbols here) into a hash map and frees
  it, only to learn whether the kernel has `bpf_probe_read_kernel` (it has since 5.5; ig needs
  5.8): two thirds of a small program's compile time (perf). The compiler thread sees a
  /proc/kallsyms holding just the symbols bcc asks about, bind-mounted in a mount namespace
  private to the thread (unshare(CLONE_NEWNS) applies to the calling thread alone); the rest of
  ig sees the host's.
- bcc changes the working directory to the kernel headers while it compiles; unsharing also gives
  the thread its own working directory, so ig's other threads never see theirs change.

bcc keeps the kernel's symbols it looked up for the whole process (`BPF._sym_caches`, filled on
first use by whichever thread asks). A lookup made while a program loads on the compiler thread
(bcc's own: loading a `kprobe__sys_*` function looks up `sys_bpf` to learn the kernel's syscall
prefix) would keep the short file for every later lookup, so `symbol_caches_forgotten` drops every
cache a compile made. docs/security.md says this for operators.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_SLAVE = 0x1000, 0x4000, 1 << 19
# The kernel symbols bcc's front end looks up while it compiles (b_frontend_action.cc).
SYMBOLS_ASKED = ("bpf_probe_read_kernel", "bpf_probe_read_user")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def enter() -> None:
    """The calling thread only: a mount namespace whose /proc/kallsyms lists SYMBOLS_ASKED, and
    its own cwd. Raises OSError where it cannot (no CAP_SYS_ADMIN): bcc then reads the host's."""
    libc = ctypes.CDLL(None, use_errno=True)
    wanted = _kallsyms_lines(SYMBOLS_ASKED)
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # slave first: the bind mount below must never propagate to the host's namespace
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    with tempfile.NamedTemporaryFile("w", prefix="ig-kallsyms-") as short:
        short.writelines(wanted)
        short.flush()
        _check(libc.mount(short.name.encode(), b"/proc/kallsyms", None, MS_BIND, None), "bind /proc/kallsyms")


@contextmanager
def symbol_caches_forgotten() -> Iterator[None]:
    """Around work on the private namespace's thread: bcc's symbol caches it made are dropped
    after it, so the next lookup, on any thread, reads the host's /proc/kallsyms."""
    before = dict(_symbol_caches())
    try:
        yield
    finally:
        caches = _symbol_caches()
        for pid, cache in list(caches.items()):
            if before.get(pid) is not cache:
                del caches[pid]


def _symbol_caches() -> dict:
    bcc = sys.modules.get("bcc")   # not imported: no cache exists yet
    return bcc.BPF._sym_caches if bcc is not None else {}


def _kallsyms_lines(names: tuple[str, ...]) -> list[str]:
    """The lines of /proc/kallsyms that define `names`, found by grep. The kernel hands the file
    out 4 KiB per read: read in Python, each of its 1,300 reads waited for the GIL, which the
    main thread holds while ig loads (a quarter of a second at start-up). grep reads it without."""
    pattern = " (" + "|".join(names) + ")$"   # the kernel's own symbol: a module's ends in "\t[module]"
    try:
        found = subprocess.run(["grep", "-E", pattern, "/proc/kallsyms"], capture_output=True, text=True,
                               timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        found = None
    if found is not None and found.returncode in (0, 1):
        return found.stdout.splitlines(keepends=True)
    with open("/proc/kallsyms") as f:   # no grep: slower, same lines
        return [line for line in f if line.split(None, 3)[2].rstrip() in names]
