"""What the kernel decides in trace dns, on the real kernel with frames sent through a namespace's
loopback: query/response matching and its expiry, TCP framing (continuations, retransmissions),
the question walk (compression pointers, over-long names). Each test runs with both builds of the
reader (with bpf_loop, and the bounded one of kernels 5.8 to 5.16): all it sends is within both
builds' bounds but the message of 1,500 records, which neither can read."""

from __future__ import annotations

import struct
import sys
import subprocess
import time
from pathlib import Path

import frames
import ig_gadget_dns.plugin as plugin
import pytest
import steps
from steps import BPF_LOOP

from tests.fixtures.barrier import drained
from tests.fixtures.trace_rows import TraceRows
from tests.fixtures.waiting import wait_until

CLIENT, SERVER = ("10.0.0.9", 40000), ("10.0.0.53", 53)


def rows_of(rows: TraceRows, ident: int) -> list[dict]:
    return rows.matching(lambda r: r["id"] == ident)


def query(ident: int, client=CLIENT) -> bytes:
    return frames.udp(client, SERVER, frames.dns(ident))


def response(ident: int, client=CLIENT) -> bytes:
    return frames.udp(SERVER, client, frames.dns(ident, response=True))


def started_as(gadget, build) -> None:
    assert gadget.uses_bpf_loop == (build == BPF_LOOP)   # the build was chosen before the gadget started


@pytest.fixture
def traced(reader_build, dns_gadget, netns):
    gadget, rows = dns_gadget
    started_as(gadget, reader_build)
    gadget.add_netns(netns.inode, netns.path)
    return gadget, rows, netns


def test_a_response_matches_only_its_own_query(traced, make_netns):
    gadget, rows, ns = traced
    other = make_netns()
    gadget.add_netns(other.inode, other.path)
    frames.send(ns.run, [query(7)])
    frames.send(other.run, [query(7)])   # the same query in another namespace
    frames.send(ns.run, [response(7, ("10.0.0.9", 40001)), response(7), response(7)])
    wait_until(lambda: len(rows_of(rows, 7)) >= 5)
    drained(gadget.stats)
    mine = [(r["qr"], r["dstPort"], r["latency"] > 0) for r in rows_of(rows, 7) if r["netns"] == ns.inode]
    assert mine == [("Q", 53, False), ("R", 40001, False), ("R", 40000, True), ("R", 40000, False)]
    assert gadget.stats.extra["dns_unmatched_responses"] == 2
    assert gadget.stats.extra["dns_queries_expired"] == 0


def test_a_response_with_no_query_has_no_latency(traced):
    """A real socket on port 53 answering what it never was asked."""
    gadget, rows, ns = traced
    send = ("import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.bind(('127.0.0.1', 53)); s.sendto(bytes.fromhex(sys.argv[1]), ('127.0.0.1', 40000))")
    subprocess.run([*ns.run, sys.executable, "-c", send, frames.dns(0x5151, response=True, rcode=3).hex()], check=True)
    wait_until(lambda: rows_of(rows, 0x5151))
    drained(gadget.stats)
    assert [(r["qr"], r["rcode"], r["latency"], r["srcPort"], r["name"]) for r in rows_of(rows, 0x5151)] == [
        ("R", "NXDomain", 0, 53, "example.test.")]
    assert gadget.stats.extra["dns_unmatched_responses"] == 1


@pytest.fixture
def short_ttl(reader_build, monkeypatch, netns, trace_rows):
    """The gadget with queries expiring after 1 s and a query table of 8 entries."""
    monkeypatch.setattr(plugin, "QUERY_TTL_NS", 1_000_000_000)
    monkeypatch.setattr(plugin, "QUERY_TABLE_SIZE", 8)
    rows = trace_rows("dns")
    started_as(rows.gadget, reader_build)
    rows.gadget.add_netns(netns.inode, netns.path)
    return rows.gadget, rows, netns


def wait_past_ttl(row: dict) -> None:
    """Until the kernel clock is past the row's time plus the TTL."""
    while time.clock_gettime_ns(time.CLOCK_MONOTONIC) <= row["timestamp"] + plugin.QUERY_TTL_NS:
        time.sleep(0.02)


def test_queries_expire_after_the_ttl(short_ttl):
    gadget, rows, ns = short_ttl
    frames.send(ns.run, [query(1), query(3)])
    wait_until(lambda: rows_of(rows, 3))
    wait_past_ttl(rows_of(rows, 3)[0])
    frames.send(ns.run, [query(2), response(1), response(2)])
    wait_until(lambda: len(rows_of(rows, 2)) == 2 and len(rows_of(rows, 1)) == 2)
    late, in_time = rows_of(rows, 1)[1], rows_of(rows, 2)[1]
    assert late["latency"] == 0 and 0 < in_time["latency"] < plugin.QUERY_TTL_NS
    # query 1 expired when its response came; query 3, never answered, when the counters are read
    assert gadget.stats.extra["dns_queries_expired"] == 2
    assert gadget.stats.extra["dns_unmatched_responses"] == 1
    assert gadget.stats.extra["dns_queries_evicted"] == 0


def test_the_table_is_bounded_and_the_newest_query_still_matches(short_ttl):
    gadget, rows, ns = short_ttl
    sent = 40
    frames.send(ns.run, [query(100 + i) for i in range(sent)])
    wait_until(lambda: rows_of(rows, 100 + sent - 1))
    frames.send(ns.run, [response(100 + sent - 1)])
    wait_until(lambda: len(rows_of(rows, 100 + sent - 1)) == 2)
    assert rows_of(rows, 100 + sent - 1)[1]["latency"] > 0
    # at most 8 are kept: the others were evicted by the LRU, the answered one removed
    assert sent - 1 - 8 <= gadget.stats.extra["dns_queries_evicted"] <= sent - 1
    assert gadget.stats.extra["dns_queries_expired"] == 0


def test_every_query_in_flight_is_matched_up_to_the_table_size(traced):
    """A resolver that holds more queries than the table held before it was sized for a busy one
    (16,384): every query is still remembered, so every response has its latency (docs/config.md,
    Using trace dns: the query table's bound)."""
    gadget, rows, ns = traced
    count = 20_000
    helper = str(Path(frames.__file__).with_name("held_queries.py"))
    out = subprocess.run([*ns.run, sys.executable, helper, str(count)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(count), str(count)]   # all answered
    lost = gadget.stats.events_lost

    def responses() -> list[dict]:
        return rows.matching(lambda r: r["netns"] == ns.inode and r["qr"] == "R")

    # every response read by the kernel: delivered as a row, or counted lost in the ring buffer
    wait_until(lambda: len(responses()) + gadget.stats.events_lost - lost >= count, timeout=60)
    assert gadget.stats.extra["dns_unmatched_responses"] == 0
    assert gadget.stats.extra["dns_queries_evicted"] == 0
    assert all(r["matched"] == "yes" and r["latency"] > 0 for r in responses())


def test_tcp_framing_whatever_the_segmentation(traced):
    """A TCP stream is read from its SYN on by its length prefixes: a message split over segments, a
    prefix alone or split, two messages in one segment are each one row; a repeated segment is not;
    a stream cut mid-message, a gap and a flow whose SYN was not seen are rows with their reason."""
    gadget, rows, ns = traced
    # a response with one answer (47 bytes framed), split in its answer
    first = (struct.pack("!HHHHHH", 0x6001, 0x8180, 1, 1, 0, 0) + b"\x07example\x04test\x00\x00\x01\x00\x01"
             + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, 1]))
    framed = lambda msg: struct.pack("!H", len(msg)) + msg
    stream = [framed(first), struct.pack("!H", len(frames.dns(0x6002))), frames.dns(0x6002),      # a prefix alone, then its message
              framed(frames.dns(0x6003)) + framed(frames.dns(0x6004)),         # two in one segment
              framed(frames.dns(0x6005))[:1], framed(frames.dns(0x6005))[1:],  # a prefix split
              framed(frames.dns(0x6006))[:20]]                                 # cut by the FIN
    cuts = [framed(first)[:36], framed(first)[36:], *stream[1:]]
    isn = 0xFFFFFFF0   # the sequence numbers wrap within the stream
    segments, seq = [frames.tcp(CLIENT, SERVER, isn, b"", frames.SYN)], isn + 1
    for i, payload in enumerate(cuts):
        segments.append(frames.tcp(CLIENT, SERVER, seq % (1 << 32), payload,
                                   frames.FIN | frames.PSH_ACK if i == len(cuts) - 1 else frames.PSH_ACK))
        if i == 0:
            segments.append(frames.tcp(CLIENT, SERVER, seq % (1 << 32), payload))   # retransmitted
        seq += len(payload)
    other = ("10.0.0.9", 40001)   # a flow whose SYN was not seen, and one with a gap
    segments += [frames.tcp(other, SERVER, 5, framed(frames.dns(0x6007))),
                 frames.tcp(other, SERVER, 100, b"", frames.SYN),
                 frames.tcp(other, SERVER, 150, framed(frames.dns(0x6008)))]
    frames.send(ns.run, segments)
    rows.wait(lambda r: r["netns"] == ns.inode and r["proto"] == "TCP", count=8)
    drained(gadget.stats)
    got = [(r["qr"], r["id"], r["reason"], r["name"], r["addresses"]) for r in rows.rows if r["proto"] == "TCP"]
    assert got == [("R", 0x6001, "", "example.test.", "10.0.0.1"),   # its bytes gathered over both segments
                   ("Q", 0x6002, "", "example.test.", ""), ("Q", 0x6003, "", "example.test.", ""),
                   ("Q", 0x6004, "", "example.test.", ""), ("Q", 0x6005, "", "example.test.", ""),
                   ("", 0, "truncated", "", ""), ("", 0, "unparsed", "", ""), ("", 0, "unparsed", "", "")]
    extra = gadget.stats.extra
    assert (extra["dns_tcp_continuations"], extra["dns_tcp_retransmissions"], extra["dns_malformed"]) == (3, 1, 3)


def name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels)


def test_the_question_walk(traced):
    """A pointer must point before its name (a prior occurrence: it cannot loop); a name over 255
    bytes or a reserved label type makes the message malformed."""
    gadget, rows, ns = traced
    a_in = b"\x00\x01\x00\x01"
    questions = {
        0x7001: name(b"www") + b"\xc0\x16" + a_in,    # a pointer to the bytes after the question
        0x7002: name(b"abc") + b"\xc0\x0c" + a_in,    # a pointer to itself
        0x7003: name(*[b"x" * 63] * 4) + b"\x00" + a_in,   # 257 bytes
        0x7004: b"\x41abc\x00" + a_in,                # label type 01 (reserved)
        0x7005: name(*[b"x" * 63] * 3, b"y" * 61) + b"\x00" + a_in,   # 255 bytes: the longest
    }
    payloads = {ident: frames.dns(ident, question=q) for ident, q in questions.items()}
    payloads[0x7001] += b"\x07example\x04test\x00"   # where the pointer of 0x7001 points
    frames.send(ns.run, [frames.udp(CLIENT, SERVER, p) for p in payloads.values()])
    wait_until(lambda: rows_of(rows, 0x7005))
    drained(gadget.stats)
    got = [(r["id"], r["reason"], r["qtype"], r["name"]) for r in rows.rows if r["netns"] == ns.inode]
    assert got == [(0, "pointer", "", ""), (0, "pointer", "", ""), (0, "long_name", "", ""), (0, "label", "", ""),
                   (0x7005, "", "A", ".".join(["x" * 63] * 3 + ["y" * 61]) + ".")]
    assert gadget.stats.extra["dns_malformed"] == 4
    assert gadget.stats.decode_errors == 0


def test_a_message_needing_more_steps_than_allowed_is_unparsed_not_guessed(reader_build, traced):
    """The kernel takes a bounded number of steps per packet (docs/config.md, Using trace dns): a
    well-formed response of 1,500 empty records needs more, and is one row with the reason
    unparsed; one of 10 records is read. Responses of 16 and 17 records (94 and 99 steps) sit on
    either side of the bounded build's 96: it reads the first and leaves the second unparsed."""
    gadget, rows, ns = traced
    record = b"\x00" + struct.pack("!HHIH", 1, 1, 60, 0)
    sizes = (1500, 10, 16, 17)
    messages = [struct.pack("!HHHHHH", 0x7100 + n % 256, 0x8180, 0, n, 0, 0) + record * n for n in sizes]
    frames.send(ns.run, [frames.udp(SERVER, CLIENT, msg) for msg in messages])
    mine = lambda rs: [r for r in rs if r["netns"] == ns.inode]
    rows.wait(lambda r: r["netns"] == ns.inode, count=len(sizes))
    drained(gadget.stats)
    read = [n <= 16 or reader_build == BPF_LOOP for n in sizes[1:]]
    assert [steps.datagram(msg, reader_build) == "" for msg in messages] == [False, *read]   # what steps.py says
    assert [(r["reason"], r["qr"], r["numAnswers"]) for r in mine(rows.rows)] == [
        ("unparsed", "", 0), *(("", "R", n) if ok else ("unparsed", "", 0) for n, ok in zip(sizes[1:], read))]
