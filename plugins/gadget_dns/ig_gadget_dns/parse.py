"""What user space reads of a captured DNS message: the queried name and the answers.

The kernel (dns.bpf.c) decides which bytes are well-formed DNS messages and reads their header,
qtype, addresses and latency; only what rows need beyond that is read here, from the message's
first bytes (a compression pointer the kernel checked points before its name, yet may point into
a record's data). Everything here reads untrusted bytes: any
inconsistency raises MalformedPacket, which the gadget counts as a decode error (the row stays, with
these columns empty: the kernel already counted the message); nothing else may escape (the fuzz
test holds us to that). Reads past the end are not checked one by one: the IndexError or
struct.error they raise becomes MalformedPacket (this runs once per DNS message, so the common path
is kept short).
"""

from __future__ import annotations

import socket
import struct

QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
          35: "NAPTR", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
RCODES = {0: "NoError", 1: "FormErr", 2: "ServFail", 3: "NXDomain", 4: "NotImp", 5: "Refused", 6: "YXDomain",
          7: "YXRRSet", 8: "NXRRSet", 9: "NotAuth", 10: "NotZone"}
PKT_TYPES = {0: "HOST", 1: "BROADCAST", 2: "MULTICAST", 3: "OTHERHOST", 4: "OUTGOING"}

_HEADER = struct.Struct("!HHHH")
_RR = struct.Struct("!HHIH")
_INET, _INET6, _ntop = socket.AF_INET, socket.AF_INET6, socket.inet_ntop


class MalformedPacket(ValueError):
    pass


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


def contents(msg: bytes, cut: bool = False) -> tuple[str, str]:
    """The queried name and the A/AAAA answers (comma-separated) of a DNS message.

    The kernel has read the header and the question's type; this reads what only rows need.
    `cut`: the message goes on beyond `msg` (the kernel keeps its first 512 bytes): the answers
    are read as far as the bytes go.
    """
    try:
        return _contents(msg, cut)
    except (IndexError, struct.error):
        raise MalformedPacket("truncated") from None


def _contents(msg: bytes, cut: bool) -> tuple[str, str]:
    _ident, flags, qdcount, ancount = _HEADER.unpack_from(msg, 0)
    name = ""
    offset = 12
    if qdcount:
        name, offset = _name(msg, offset)
        offset += 4
        for _ in range(qdcount - 1):   # rare: skip further questions
            offset = _name(msg, offset)[1] + 4
    if not flags & 0x8000:
        return name, ""
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
    return name, ",".join(addresses)
