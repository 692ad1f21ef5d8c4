"""A packet socket inside a given network namespace (Python 3.11 has no os.setns: libc's, via ctypes)."""

from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SO_ATTACH_BPF = 50

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def packet_socket(path: str, prog_fd: int) -> socket.socket:
    """A raw packet socket in the namespace at `path`, with the filter attached.

    The namespace is per thread, so a short-lived thread enters it, opens the socket (which stays
    in that namespace for good) and ends; the caller's thread never changes namespace.
    """
    result: dict = {}

    def work() -> None:
        try:
            target = os.open(path, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)
            result["value"] = sock
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=work, name="ig-dns-setns")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
