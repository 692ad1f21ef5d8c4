"""A packet socket inside a given network namespace (Python 3.11 has no os.setns: libc's, via ctypes)."""

from __future__ import annotations

import ctypes
import os
import socket
from typing import Callable

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SO_ATTACH_BPF = 50

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def packet_socket(path: str, prog_fd: int, run_in_thread: Callable) -> socket.socket:
    """A raw packet socket in the namespace at `path`, with the filter attached.

    The namespace is per thread, so a short-lived thread (`GadgetContext.run_in_thread`) enters it,
    opens the socket (which stays in that namespace for good) and ends; the caller's thread never
    changes namespace.
    """

    def work() -> socket.socket:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)
        except OSError:
            sock.close()
            raise
        return sock

    return run_in_thread(work, name="ig-dns-setns")
