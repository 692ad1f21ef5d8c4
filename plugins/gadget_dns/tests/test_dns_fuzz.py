"""Arbitrary bytes: the user-space parser returns or raises its own error, nothing else; the kernel
reads random frames without a verifier complaint or a lost message, and the gadget goes on."""

from __future__ import annotations

import random
import struct
import uuid

import frames
from dns_server import dig
from dns_server import start as start_server
from hypothesis import given, settings
from hypothesis import strategies as st

from ig_gadget_dns.parse import MalformedPacket, contents

from tests.fixtures.barrier import drained
from tests.fixtures.waiting import wait_until


def decode(msg: bytes, cut: bool = False) -> None:
    try:
        contents(msg, cut)
    except MalformedPacket:
        pass


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=512))
def test_random_dns_payloads(payload):
    decode(payload)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 10), st.integers(0, 10), st.binary(max_size=200))
def test_header_counts_that_lie(flags, qd, an, body):
    decode(struct.pack("!HHHHHH", 7, flags, qd, an, 0, 0) + body)


def test_compression_loop_is_an_error_not_a_hang():
    loop = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c"
    try:
        contents(loop)
    except MalformedPacket:
        return
    raise AssertionError("a name pointing at itself must be rejected")


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 3), st.integers(0, 300), st.binary(max_size=300))
def test_messages_said_to_be_cut_still_only_raise_our_errors(flags, qd, an, body):
    try:
        contents(struct.pack("!HHHHHH", 7, flags, qd, an, 0, 0) + body, cut=True)
    except MalformedPacket:
        pass


def mutations(rng: random.Random, count: int) -> list[bytes]:
    """Frames for the kernel: random bytes, and real-looking UDP/TCP DNS frames with random damage."""
    out = []
    for i in range(count):
        message = frames.dns(i, response=rng.random() < 0.5) + rng.randbytes(rng.randrange(0, 40))
        kind = rng.randrange(4)
        if kind == 0:
            frame = bytes(12) + rng.choice([b"\x08\x00", b"\x86\xdd"]) + rng.randbytes(rng.randrange(0, 300))
        elif kind == 1:
            frame = frames.udp(("10.0.0.9", 40000 + i), ("10.0.0.53", 53), message)
        else:
            framed = struct.pack("!H", rng.randrange(0, 70)) + message
            frame = frames.tcp(("10.0.0.9", 40000 + i % 7), ("10.0.0.53", 53), rng.getrandbits(32), framed)
        damaged = bytearray(frame)
        for _ in range(rng.randrange(0, 6)):   # bytes anywhere past the Ethernet header
            damaged[rng.randrange(14, len(damaged))] = rng.randrange(256)
        out.append(bytes(damaged[:rng.randrange(14, len(damaged) + 1)] if rng.random() < 0.2 else damaged))
    return out


def test_the_kernel_reads_random_frames_and_the_gadget_goes_on(dns_gadget, netns):
    """3,000 damaged frames: each is a row or not, never a lost event or a failed decode; a real
    query afterwards is still seen."""
    gadget, rows = dns_gadget
    gadget.add_netns(netns.inode, netns.path)
    server = start_server(netns.run, "127.0.0.1")
    try:
        frames.send(netns.run, mutations(random.Random(1312), 3000))
        tag = uuid.uuid4().hex[:8]
        assert "10.0.0.1" in dig(netns.run, f"after.{tag}.test")
        wait_until(lambda: any(tag in r["name"] and r["qr"] == "R" for r in rows.rows))
        drained(gadget.stats)
    finally:
        server.kill()
    extra = gadget.stats.extra
    assert gadget.stats.events_lost == 0 and extra["dns_malformed"] > 100
    assert gadget.stats.events_received == len(rows.rows) > 100
    unread = [r for r in rows.rows if not r["name"]]
    assert gadget.stats.decode_errors <= len(unread)   # every decode error is a row, with no name
    assert all(r["proto"] in ("UDP", "TCP") and r["qr"] in ("Q", "R", "") for r in rows.rows)
    assert all((r["qr"] == "") == (r["reason"] != "") for r in rows.rows)   # malformed: never Q or R
