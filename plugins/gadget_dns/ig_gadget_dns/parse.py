"""Decoding captured packets: Ethernet, IPv4/IPv6, UDP/TCP, then the DNS message itself.

Everything here reads untrusted bytes: any inconsistency raises MalformedPacket, which the gadget
counts as a decode error; nothing else may escape (the fuzz test holds us to that). Reads past the
end are not checked one by one: the IndexError or struct.error they raise becomes MalformedPacket
(this runs once per DNS message, so the common path is kept short).
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
          35: "NAPTR", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
RCODES = {0: "NoError", 1: "FormErr", 2: "ServFail", 3: "NXDomain", 4: "NotImp", 5: "Refused", 6: "YXDomain",
          7: "YXRRSet", 8: "NXRRSet", 9: "NotAuth", 10: "NotZone"}
PKT_TYPES = {0: "HOST", 1: "BROADCAST", 2: "MULTICAST", 3: "OTHERHOST", 4: "OUTGOING"}

_U16 = struct.Struct("!H")   # EtherType, the TCP length prefix, QTYPE
_PORTS = struct.Struct("!HH")
_UDP = struct.Struct("!HHH")
_SEQ = struct.Struct("!I")
_HEADER = struct.Struct("!HHHH")
_RR = struct.Struct("!HHIH")
_INET, _INET6, _ntop = socket.AF_INET, socket.AF_INET6, socket.inet_ntop


class MalformedPacket(ValueError):
    pass


class NotDns(Exception):
    """A packet on port 53 that carries no DNS message (a TCP segment without payload)."""


class Segment(NamedTuple):
    """What a frame carries for DNS. `payload` is the DNS message as far as this frame holds it;
    `length` is the message's length by its framing (UDP's length field, TCP's 2-byte prefix; -1 when
    a TCP segment is too short to hold the prefix), so a payload shorter than `length` was cut: by
    the capture, or by TCP carrying the rest in later segments. `seq`: TCP's sequence number."""
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes
    length: int
    seq: int = 0


def transport(packet: bytes) -> Segment:
    """The Segment of an Ethernet frame."""
    try:
        return _transport(packet)
    except (IndexError, struct.error, ValueError) as exc:   # ValueError: inet_ntop of a short address
        if isinstance(exc, MalformedPacket):
            raise
        raise MalformedPacket("truncated") from None


def _transport(packet: bytes):
    (eth_proto,) = _U16.unpack_from(packet, 12)
    if eth_proto == 0x0800:
        ihl = (packet[14] & 0x0F) * 4
        if ihl < 20:
            raise MalformedPacket("bad IPv4 header length")
        proto = packet[23]
        src, dst = _ntop(_INET, packet[26:30]), _ntop(_INET, packet[30:34])
        l4 = 14 + ihl
    elif eth_proto == 0x86DD:
        proto = packet[20]
        src, dst = _ntop(_INET6, packet[22:38]), _ntop(_INET6, packet[38:54])
        l4 = 54
    else:
        raise MalformedPacket("not IP")
    if proto == 17:
        sport, dport, length = _UDP.unpack_from(packet, l4)
        return Segment("UDP", src, dst, sport, dport, packet[l4 + 8:], length - 8)
    if proto == 6:
        sport, dport = _PORTS.unpack_from(packet, l4)
        (seq,) = _SEQ.unpack_from(packet, l4 + 4)
        offset = (packet[l4 + 12] >> 4) * 4
        if offset < 20:
            raise MalformedPacket("bad TCP header length")
        segment = packet[l4 + offset:]
        if not segment:
            raise NotDns()
        # DNS over TCP: a 2-byte length, then the message; whether this segment starts a message is
        # for the caller to tell (see TcpFraming)
        length = _U16.unpack_from(segment)[0] if len(segment) >= 2 else -1
        return Segment("TCP", src, dst, sport, dport, segment[2:], length, seq)
    raise MalformedPacket("not UDP or TCP")


def _name(msg: bytes, offset: int) -> tuple[str, int]:
    """A domain name at `offset` (following compression pointers), and the offset after it."""
    labels, end, jumps, size = [], -1, 0, len(msg)
    while True:
        length = msg[offset]
        if length >= 0xC0:
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | msg[offset + 1]
            jumps += 1
            if jumps > 32:
                raise MalformedPacket("compression loop")
            continue
        if length > 63:
            raise MalformedPacket("bad label")
        if not length:
            break
        start = offset + 1
        offset = start + length
        if offset > size:
            raise MalformedPacket("truncated label")
        labels.append(msg[start:offset])
        if len(labels) > 127:
            raise MalformedPacket("name too long")
    return b".".join(labels).decode("ascii", "replace") + ".", end if end >= 0 else offset + 1


def message(msg: bytes, cut: bool = False) -> dict:
    """id, qr, rcode, name, qtype, numAnswers, addresses of a DNS message.

    `cut`: the message goes on beyond `msg` (see Segment): its header and question must be there; the
    answers are read as far as they go (`numAnswers` is still the header's count)."""
    try:
        return _message(msg, cut)
    except (IndexError, struct.error):
        raise MalformedPacket("truncated") from None


def _message(msg: bytes, cut: bool) -> dict:
    ident, flags, qdcount, ancount = _HEADER.unpack_from(msg, 0)   # struct.error below 12 bytes
    response = flags & 0x8000
    name = qtype = ""
    offset = 12
    if qdcount:
        name, offset = _name(msg, offset)
        code = _U16.unpack_from(msg, offset)[0]
        qtype = QTYPES.get(code) or str(code)
        offset += 4
        for _ in range(qdcount - 1):   # rare: skip further questions
            offset = _name(msg, offset)[1] + 4
    if not response:
        return {"id": ident, "qr": "Q", "rcode": "", "name": name, "qtype": qtype, "numAnswers": ancount, "addresses": ""}
    addresses = []
    try:
        for _ in range(ancount):
            offset = _name(msg, offset)[1]
            rtype, _cls, _ttl, rdlength = _RR.unpack_from(msg, offset)
            offset += 10
            end = offset + rdlength
            if end > len(msg):
                raise MalformedPacket("truncated record")
            if rtype == 1 and rdlength == 4:
                addresses.append(_ntop(_INET, msg[offset:end]))
            elif rtype == 28 and rdlength == 16:
                addresses.append(_ntop(_INET6, msg[offset:end]))
            offset = end
    except (IndexError, struct.error, MalformedPacket):
        if not cut:   # in a cut message the answers simply stop where the bytes do
            raise
    rcode = flags & 0x0F
    return {"id": ident, "qr": "R", "rcode": RCODES.get(rcode) or str(rcode), "name": name, "qtype": qtype,
            "numAnswers": ancount, "addresses": ",".join(addresses)}
