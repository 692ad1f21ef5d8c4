"""The sockets of one network namespace from the kernel's sock_diag netlink interface (what `ss`
reads): one dump per table, binary records, in a fraction of the time /proc/<pid>/net/tcp takes
(the kernel formats a line per socket there, and walks its tables again for each 4 kB read).

The rows are /proc's (procnet.py), column for column: the same sockets (every state, request
sockets as SYN_RECV and TIME_WAIT ones with inode 0), the same names for states and addresses.
A netlink socket answers for the namespace it was opened in: a short thread enters the namespace
to open it (`GadgetContext.run_in_thread`), and the caller's thread never changes namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
from typing import Callable

from .procnet import Addresses, status_of

CLONE_NEWNET = 0x40000000
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
ALL_STATES = 0xFFFFFFFF

# struct nlmsghdr; struct inet_diag_req_v2 (family, protocol, ext, pad, states, a zero sockid of 48
# bytes); struct inet_diag_msg up to idiag_inode (ports and addresses in network order).
_HEADER = struct.Struct("=IHHII")
_REQUEST = struct.Struct("=BBBBI48x")
_MESSAGE = struct.Struct("=BB2x2s2s16s16s4x8x4x4x4x4xI")
_RECEIVE = 1 << 20

# (family, protocol, the protocol column): the tables /proc/<pid>/net/{tcp,tcp6,udp,udp6} show.
TABLES = ((socket.AF_INET, socket.IPPROTO_TCP, "TCP"), (socket.AF_INET6, socket.IPPROTO_TCP, "TCP"),
          (socket.AF_INET, socket.IPPROTO_UDP, "UDP"), (socket.AF_INET6, socket.IPPROTO_UDP, "UDP"))

_libc = ctypes.CDLL(None, use_errno=True)


class DiagUnavailable(Exception):
    """The kernel did not answer a dump (no sock_diag for the table, or not allowed): read /proc."""


def diag_socket(netns_path: str | None, run_in_thread: Callable) -> socket.socket:
    """A sock_diag netlink socket of the namespace at `netns_path` (None: ig's own). OSError when
    the namespace is gone or cannot be entered."""

    def opened() -> socket.socket:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)

    if netns_path is None:
        return opened()

    def inside() -> socket.socket:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(target)
        return opened()

    return run_in_thread(inside, name="ig-socket-setns")


def read_namespace(sock: socket.socket, netns: int, addresses: Addresses) -> list[dict]:
    """Every TCP and UDP socket, IPv4 and IPv6, of the namespace `sock` was opened in."""
    rows: list[dict] = []
    for family, protocol, name in TABLES:
        rows.extend(_dump(sock, family, protocol, name, netns, addresses))
    return rows


def _dump(sock: socket.socket, family: int, protocol: int, name: str, netns: int, addresses: Addresses) -> list[dict]:
    request = _REQUEST.pack(family, protocol, 0, 0, ALL_STATES)
    sock.send(_HEADER.pack(_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
              + request)
    width = 4 if family == socket.AF_INET else 16
    statuses = {state: status_of(name, state) for state in range(256)}   # idiag_state is a u8
    text, unpack, port = addresses.of_bytes, _MESSAGE.unpack_from, int.from_bytes
    rows: list[dict] = []
    while True:
        data = sock.recv(_RECEIVE)
        if not data:
            raise DiagUnavailable("the dump ended without its last message")
        at = 0
        while at + _HEADER.size <= len(data):
            length, kind = _HEADER.unpack_from(data, at)[:2]
            if kind == NLMSG_DONE:
                return rows
            if kind == NLMSG_ERROR:
                err = -struct.unpack_from("=i", data, at + _HEADER.size)[0]
                raise DiagUnavailable(f"sock_diag refused the {name} dump: {os.strerror(err)}")
            if length < _HEADER.size + _MESSAGE.size:
                raise DiagUnavailable(f"a sock_diag message of {length} bytes is too short")
            _, state, sport, dport, src, dst, inode = unpack(data, at + _HEADER.size)
            rows.append({"protocol": name, "status": statuses[state],
                         "src.addr": text(src[:width]), "src.port": port(sport, "big"),
                         "dst.addr": text(dst[:width]), "dst.port": port(dport, "big"),
                         "inode": inode, "netns": netns})
            at += (length + 3) & ~3
