"""A resolver that answers only once every query has arrived: COUNT queries in flight at once, from
one client socket (ids 0 to COUNT - 1), on 127.0.0.1 port 53 of the namespace it runs in.

Usage: python held_queries.py COUNT  (prints the queries sent and the responses received)
"""

from __future__ import annotations

import socket
import sys

from frames import dns

BUFFER = 64 << 20   # both sockets hold every message in flight (root: past net.core.rmem_max)
SO_RCVBUFFORCE = 33   # Linux's, which the socket module does not name


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
    sock.settimeout(10)
    return sock


def main() -> None:
    count = int(sys.argv[1])
    resolver, client = udp_socket(), udp_socket()
    resolver.bind(("127.0.0.1", 53))
    client.connect(("127.0.0.1", 53))
    for ident in range(count):
        client.send(dns(ident))
    held = [resolver.recvfrom(512) for _ in range(count)]   # every query waits here, unanswered
    for query, peer in held:
        resolver.sendto(query[:2] + dns(0, response=True)[2:], peer)
    received = sum(1 for _ in range(count) if client.recv(512))
    print(count, received)


if __name__ == "__main__":
    main()
