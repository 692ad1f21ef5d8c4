"""Decoding captured packets: Ethernet, IPv4/IPv6, UDP/TCP, then the DNS message itself.

Everything here reads untrusted bytes: any inconsistency raises MalformedPacket, which the gadget
counts as a decode error; nothing else may escape (the fuzz test holds us to that).
"""

from __future__ import annotations

import socket
import struct

QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
          35: "NAPTR", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
RCODES = {0: "NoError", 1: "FormErr", 2: "ServFail", 3: "NXDomain", 4: "NotImp", 5: "Refused", 6: "YXDomain",
          7: "YXRRSet", 8: "NXRRSet", 9: "NotAuth", 10: "NotZone"}
PKT_TYPES = {0: "HOST", 1: "BROADCAST", 2: "MULTICAST", 3: "OTHERHOST", 4: "OUTGOING"}


class MalformedPacket(ValueError):
    pass


class NotDns(Exception):
    """A packet on port 53 that carries no DNS message (a TCP segment without payload)."""


def _need(data: bytes, end: int) -> None:
    if end > len(data):
        raise MalformedPacket("truncated")


def transport(packet: bytes) -> tuple[str, str, str, int, int, bytes]:
    """(proto, srcIP, dstIP, srcPort, dstPort, dns message) from an Ethernet frame."""
    _need(packet, 14)
    (eth_proto,) = struct.unpack_from("!H", packet, 12)
    if eth_proto == 0x0800:
        _need(packet, 34)
        ihl = (packet[14] & 0x0F) * 4
        if ihl < 20:
            raise MalformedPacket("bad IPv4 header length")
        proto = packet[23]
        src, dst = socket.inet_ntop(socket.AF_INET, packet[26:30]), socket.inet_ntop(socket.AF_INET, packet[30:34])
        l4 = 14 + ihl
    elif eth_proto == 0x86DD:
        _need(packet, 54)
        proto = packet[20]
        src, dst = socket.inet_ntop(socket.AF_INET6, packet[22:38]), socket.inet_ntop(socket.AF_INET6, packet[38:54])
        l4 = 54
    else:
        raise MalformedPacket("not IP")
    _need(packet, l4 + 4)
    sport, dport = struct.unpack_from("!HH", packet, l4)
    if proto == 17:
        return "UDP", src, dst, sport, dport, packet[l4 + 8:]
    if proto == 6:
        _need(packet, l4 + 13)
        offset = (packet[l4 + 12] >> 4) * 4
        if offset < 20:
            raise MalformedPacket("bad TCP header length")
        segment = packet[l4 + offset:]
        if not segment:
            raise NotDns()
        if len(segment) < 2:
            raise MalformedPacket("no DNS message in this TCP segment")
        # DNS over TCP: a 2-byte length, then the message (we read messages that start a segment)
        return "TCP", src, dst, sport, dport, segment[2:]
    raise MalformedPacket("not UDP or TCP")


def _name(msg: bytes, offset: int) -> tuple[str, int]:
    """A domain name at `offset` (following compression pointers), and the offset after it."""
    labels, end, jumps = [], None, 0
    while True:
        _need(msg, offset + 1)
        length = msg[offset]
        if length & 0xC0 == 0xC0:
            _need(msg, offset + 2)
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | msg[offset + 1]
            jumps += 1
            if jumps > 32:
                raise MalformedPacket("compression loop")
            continue
        if length & 0xC0:
            raise MalformedPacket("bad label")
        offset += 1
        if length == 0:
            break
        _need(msg, offset + length)
        labels.append(msg[offset:offset + length].decode("ascii", errors="replace"))
        offset += length
        if len(labels) > 127:
            raise MalformedPacket("name too long")
    return ".".join(labels) + ".", end if end is not None else offset


def message(msg: bytes) -> dict:
    """id, qr, rcode, name, qtype, numAnswers, addresses of a DNS message."""
    _need(msg, 12)
    ident, flags, qdcount, ancount = struct.unpack_from("!HHHH", msg, 0)
    response = bool(flags & 0x8000)
    out = {"id": ident, "qr": "R" if response else "Q",
           "rcode": RCODES.get(flags & 0x0F, str(flags & 0x0F)) if response else "",
           "name": "", "qtype": "", "numAnswers": ancount, "addresses": ""}
    offset = 12
    if qdcount:
        out["name"], offset = _name(msg, offset)
        _need(msg, offset + 4)
        qtype = struct.unpack_from("!H", msg, offset)[0]
        out["qtype"] = QTYPES.get(qtype, str(qtype))
        offset += 4
        for _ in range(qdcount - 1):   # rare: skip further questions
            offset = _name(msg, offset)[1] + 4
    addresses = []
    if out["qr"] == "R":
        for _ in range(ancount):
            offset = _name(msg, offset)[1]
            _need(msg, offset + 10)
            rtype, _cls, _ttl, rdlength = struct.unpack_from("!HHIH", msg, offset)
            offset += 10
            _need(msg, offset + rdlength)
            if rtype == 1 and rdlength == 4:
                addresses.append(socket.inet_ntop(socket.AF_INET, msg[offset:offset + 4]))
            elif rtype == 28 and rdlength == 16:
                addresses.append(socket.inet_ntop(socket.AF_INET6, msg[offset:offset + 16]))
            offset += rdlength
    out["addresses"] = ",".join(addresses)
    return out
