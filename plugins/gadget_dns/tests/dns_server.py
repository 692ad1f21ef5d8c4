"""A small DNS server for tests: answers every A query with fixed addresses, after an optional delay.

A name starting with `missing` gets NXDOMAIN; one starting with `big` gets BIG_ANSWERS addresses (a
message of about 3.2 kB), which over TCP is written in CHUNK-byte pieces a few ms apart, so it
travels in several segments as a slow or distant server's would.

Usage: python dns_server.py ADDRESS PORT [DELAY_SECONDS]  (UDP and TCP; prints "ready" when bound)
From a test: start(["ip", "netns", "exec", NAME], "127.0.0.1", delay=0.05) runs it there, ready;
dig(["ip", "netns", "exec", NAME], "www.example.") asks it.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time

BIG_ANSWERS = 200
CHUNK = 400


def addresses(qname: bytes) -> list[str]:
    if qname.startswith(b"\x03big"):
        return [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(BIG_ANSWERS)]
    return ["10.0.0.1", "10.0.0.2"]


def answer(query: bytes, delay: float) -> bytes:
    if delay:
        time.sleep(delay)
    ident, flags = struct.unpack_from("!HH", query, 0)
    end = 12
    while query[end]:
        end += query[end] + 1
    question = query[12:end + 5]
    qname = query[12:end + 1]
    nx = qname.startswith(b"\x07missing")
    answers = [] if nx else addresses(qname)
    header = struct.pack("!HHHHHH", ident, 0x8180 | (3 if nx else 0), 1, len(answers), 0, 0)
    records = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(a) for a in answers)
    return header + question + records


def serve_udp(sock: socket.socket, delay: float) -> None:
    while True:
        data, peer = sock.recvfrom(4096)
        threading.Thread(target=lambda d=data, p=peer: sock.sendto(answer(d, delay), p), daemon=True).start()


def serve_tcp(sock: socket.socket, delay: float) -> None:
    while True:
        conn, _ = sock.accept()
        with conn:
            length = struct.unpack("!H", conn.recv(2))[0]
            data = b""
            while len(data) < length:
                data += conn.recv(length - len(data))
            reply = answer(data, delay)
            framed = struct.pack("!H", len(reply)) + reply
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for at in range(0, len(framed), CHUNK):
                conn.sendall(framed[at:at + CHUNK])
                if at + CHUNK < len(framed):
                    time.sleep(0.005)


def start(prefix: list[str], address: str, delay: float = 0.0, port: int = 53) -> subprocess.Popen:
    """This server as a process (run under `prefix`, e.g. nsenter into a namespace), once it listens."""
    proc = subprocess.Popen([*prefix, sys.executable, __file__, address, str(port), str(delay)],
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"the test DNS server did not start on {address}:{port}")
    return proc


def main() -> None:
    address, port = sys.argv[1], int(sys.argv[2])
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((address, port))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, port))
    tcp.listen(16)
    threading.Thread(target=serve_tcp, args=(tcp, delay), daemon=True).start()
    print("ready", flush=True)
    serve_udp(udp, delay)


if __name__ == "__main__":
    main()


def dig(prefix: list[str], name: str, server: str = "127.0.0.1", *opts: str) -> str:
    """The answer `dig +short` prints, run under `prefix` (e.g. ip netns exec NAME)."""
    return subprocess.run([*prefix, "dig", "+short", "+tries=1", "+time=2", *opts, f"@{server}", name],
                          capture_output=True, text=True, check=True).stdout
