"""The packet parser on arbitrary bytes: it returns a message or raises its own errors, nothing else."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ig_gadget_dns.parse import MalformedPacket, NotDns, message, transport

ETH_IPV4_UDP = bytes(12) + b"\x08\x00" + bytes.fromhex("4500003c000040004011") + bytes(2) + bytes([127, 0, 0, 1] * 2)


def udp(payload: bytes) -> bytes:
    return ETH_IPV4_UDP + struct.pack("!HHHH", 40000, 53, 8 + len(payload), 0) + payload


def decode(packet: bytes) -> None:
    try:
        seg = transport(packet)
        message(seg.payload, cut=len(seg.payload) < seg.length)
    except (MalformedPacket, NotDns):
        pass


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_frames(data):
    decode(data)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=512))
def test_random_dns_payloads_behind_valid_headers(payload):
    decode(udp(payload))


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 10), st.integers(0, 10), st.binary(max_size=200))
def test_header_counts_that_lie(flags, qd, an, body):
    decode(udp(struct.pack("!HHHHHH", 7, flags, qd, an, 0, 0) + body))


def test_compression_loop_is_an_error_not_a_hang():
    loop = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c"
    try:
        message(loop)
    except MalformedPacket:
        return
    raise AssertionError("a name pointing at itself must be rejected")


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 3), st.integers(0, 300), st.binary(max_size=300))
def test_messages_said_to_be_cut_still_only_raise_our_errors(flags, qd, an, body):
    try:
        message(struct.pack("!HHHHHH", 7, flags, qd, an, 0, 0) + body, cut=True)
    except MalformedPacket:
        pass
