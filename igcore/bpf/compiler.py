"""The one thread that runs bcc's compiler, in a mount namespace and working directory of its own.

Two facts about bcc 0.26, found while making start-up faster (bench/startup):
- Every compilation reads all of /proc/kallsyms (120,000 symbols here) into a hash map and frees
  it, only to learn whether the kernel has `bpf_probe_read_kernel` (it has since 5.5; ig needs
  5.8): two thirds of a small program's compile time (perf). This thread sees a /proc/kallsyms
  holding just the symbols bcc asks about, bind-mounted in a mount namespace private to the thread
  (unshare(CLONE_NEWNS) applies to the calling thread alone); the rest of ig sees the host's.
- bcc changes the working directory to the kernel headers while it compiles; unsharing also gives
  this thread its own working directory, so ig's other threads never see theirs change.
Where the namespace cannot be made (no CAP_SYS_ADMIN), the thread compiles all the same, slower.
Compilations queue here one at a time, which bcc needs anyway (igcore.bpf.transport).
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import subprocess
import tempfile
import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

from .. import signals

log = logging.getLogger("igcore.bpf")

T = TypeVar("T")
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_SLAVE = 0x1000, 0x4000, 1 << 19
# The kernel symbols bcc's front end looks up while it compiles (b_frontend_action.cc).
SYMBOLS_ASKED = ("bpf_probe_read_kernel", "bpf_probe_read_user")

_jobs: "queue.SimpleQueue[tuple[Callable, Future]]" = queue.SimpleQueue()
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


def on_compiler_thread(job: Callable[[], T]) -> T:
    """Run `job` on the compiler thread and return (or raise) what it did."""
    global _thread
    with _thread_lock:
        if _thread is None:
            _thread = threading.Thread(target=_serve, name="ig-bpf-compiler", daemon=True)
            _thread.start()
    future: Future = Future()
    _jobs.put((job, future))
    return future.result()


def _serve() -> None:
    # Whoever started this thread, it never takes ig's stop and reload signals (igcore.signals):
    # one delivered here would be lost to the main thread, and a signal pending while the
    # verifier runs makes the kernel refuse the program (EAGAIN).
    signal.pthread_sigmask(signal.SIG_BLOCK, signals.HANDLED)
    try:
        _isolate()
    except OSError as exc:
        log.debug("bcc compiles with the host's /proc/kallsyms (slower): %s", exc)
    while True:
        job, future = _jobs.get()
        try:
            future.set_result(job())
        except BaseException as exc:  # handed to the caller
            future.set_exception(exc)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _isolate() -> None:
    """This thread only: a mount namespace whose /proc/kallsyms lists SYMBOLS_ASKED, and its own cwd."""
    libc = ctypes.CDLL(None, use_errno=True)
    wanted = _kallsyms_lines(SYMBOLS_ASKED)
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # slave first: the bind mount below must never propagate to the host's namespace
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    with tempfile.NamedTemporaryFile("w", prefix="ig-kallsyms-") as short:
        short.writelines(wanted)
        short.flush()
        _check(libc.mount(short.name.encode(), b"/proc/kallsyms", None, MS_BIND, None), "bind /proc/kallsyms")


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
