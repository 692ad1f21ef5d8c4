"""Replays DNS traffic through real sockets on 127.0.0.1 of the namespace it runs in: a resolver's
UDP and TCP sockets bound to port 53 (they receive, they answer nothing on their own) and a client's.

Steps (JSON on stdin, one list): ["udp", "q"|"r", HEX] sends HEX from the client to the resolver
(q) or back (r); ["open", PORT] connects a TCP client from PORT to the resolver; ["tcp", "q"|"r",
HEX] writes HEX on that connection as one segment (the previous one acknowledged first, so segments
are not merged); ["shut", "q"|"r"] closes that side's writing (a FIN). Pin it to one CPU: loopback
packets are then handled in the order they are sent.

Usage: python replay.py UDP_CLIENT_PORT < steps.json
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time

SERVER = ("127.0.0.1", 53)


def unacked(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", info, 24)[0]   # struct tcp_info: tcpi_unacked


def drain(sock: socket.socket) -> None:
    while sock.recv(65536):
        pass


def acknowledged(sock: socket.socket) -> None:
    """Once all that `sock` sent is acknowledged (its segments have been through the loopback)."""
    deadline = time.monotonic() + 10
    while unacked(sock) and time.monotonic() < deadline:
        time.sleep(0.0005)


def main() -> None:
    steps = json.load(sys.stdin)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(SERVER)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", int(sys.argv[1])))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(SERVER)
    listener.listen(4)
    for d in (server, client):
        threading.Thread(target=lambda s=d: [s.recv(65536) for _ in iter(int, 1)], daemon=True).start()
    ends: dict[str, socket.socket] = {}
    kept: list[socket.socket] = []   # earlier connections stay open until the end
    for step in steps:
        kind = step[0]
        if kind == "udp":
            data = bytes.fromhex(step[2])
            if step[1] == "q":
                client.sendto(data, SERVER)
            else:
                server.sendto(data, client.getsockname())
        elif kind == "open":
            ends["q"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ends["q"].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ends["q"].bind(("127.0.0.1", step[1]))
            ends["q"].connect(SERVER)
            ends["r"], _ = listener.accept()
            kept.extend(ends.values())
            for end in ends.values():
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                threading.Thread(target=drain, args=(end,), daemon=True).start()
        elif kind == "tcp":
            acknowledged(ends[step[1]])
            ends[step[1]].sendall(bytes.fromhex(step[2]))
        elif kind == "shut":
            acknowledged(ends[step[1]])
            ends[step[1]].shutdown(socket.SHUT_WR)
    for end in kept:   # the last segments acknowledged: every one has been seen
        acknowledged(end)
    print("done", flush=True)


if __name__ == "__main__":
    main()
