"""Hand-made frames sent on a namespace's loopback through a packet socket, for what real clients do
not send on demand (a TCP retransmission, a response from nowhere, malformed bytes). The loopback
device hands each frame back as received, so the gadget's filter reads it as any incoming packet;
the IP stack then drops it (no such connection), which the tests do not need.

Usage: python frames.py HEX...  (run inside the namespace: sends each frame on `lo`, in order)
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys

ETH_IPV4 = bytes(12) + b"\x08\x00"


def ipv4(proto: int, src: str, dst: str, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return ETH_IPV4 + header + payload


def udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    return ipv4(17, src[0], dst[0], struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload)


SYN, FIN, PSH_ACK = 0x02, 0x01, 0x18


def tcp(src: tuple[str, int], dst: tuple[str, int], seq: int, payload: bytes, flags: int = PSH_ACK) -> bytes:
    header = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, 1, 5 << 4, flags, 65535, 0, 0)
    return ipv4(6, src[0], dst[0], header + payload)


def dns(ident: int, response: bool = False, question: bytes = b"\x07example\x04test\x00\x00\x01\x00\x01",
        rcode: int = 0) -> bytes:
    """A DNS message with one question (already encoded: name, qtype, qclass) and no answers."""
    flags = (0x8180 | rcode) if response else 0x0100
    return struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + question


def send(prefix: list[str], frames: list[bytes]) -> None:
    """Send `frames` on the loopback of the namespace `prefix` runs in (e.g. ["ip", "netns", "exec", N])."""
    subprocess.run([*prefix, sys.executable, __file__, *(f.hex() for f in frames)], check=True)


def main() -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind(("lo", 0))
    for frame in sys.argv[1:]:
        sock.send(bytes.fromhex(frame))


if __name__ == "__main__":
    main()
