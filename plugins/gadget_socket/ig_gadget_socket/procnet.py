"""Parsing /proc/<pid>/net/{tcp,tcp6,udp,udp6}: the kernel's socket tables of one network namespace."""

from __future__ import annotations

import ipaddress
import socket
import struct

TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
    7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV",
}

TABLES = (("tcp", "TCP", False), ("tcp6", "TCP", True), ("udp", "UDP", False), ("udp6", "UDP", True))


def _address(text: str, v6: bool) -> tuple[str, int]:
    """'0100007F:1F90' -> ('127.0.0.1', 8080); addresses are in the kernel's byte order, per 32-bit word."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    addr = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, packed)
    if v6:
        addr = str(ipaddress.IPv6Address(addr))
    return addr, int(port, 16)


def status_of(protocol: str, state: int) -> str:
    if protocol == "UDP":
        # As Inspektor Gadget shows UDP: connected (state 1) is ACTIVE, anything else INACTIVE.
        return "ACTIVE" if state == 1 else "INACTIVE"
    return TCP_STATES.get(state, str(state))


def parse_table(text: str, protocol: str, v6: bool, netns: int) -> list[dict]:
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        src, sport = _address(fields[1], v6)
        dst, dport = _address(fields[2], v6)
        rows.append({
            "protocol": protocol, "status": status_of(protocol, int(fields[3], 16)),
            "src.addr": src, "src.port": sport, "dst.addr": dst, "dst.port": dport,
            "inode": int(fields[9]), "netns": netns,
        })
    return rows
