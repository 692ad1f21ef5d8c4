"""A seeded fuzz corpus of DNS messages over UDP and TCP, replayed through real sockets in a
container's network namespace, watched by two real `ig prometheus` (metrics counted in the kernel,
and the same metrics in user space): every sample of both must be what a strict reference parser
of RFC 1035 framing, written here, says of the corpus (docs/config.md, Using trace dns).

The corpus mixes well-formed queries and responses (matched to a query or forged), compression
pointers that could loop, random bytes behind a readable header, responses cut short, trailing
bytes, reserved label types and over-long names; over TCP the same messages travel in streams cut
at random points (two messages in one segment, a message over several, a split length prefix),
and one stream ends mid-message.

Both builds of the kernel reader replay it (docs/config.md, Using trace dns: "Bounded work per
packet"). The one without bpf_loop takes fewer steps: steps.py, the reader's steps in Python, says
exactly which messages it cannot finish within them, and those are `unparsed`; every other message
is what the reference says. With bpf_loop, none is unparsed.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import steps
from ig_gadget_dns.parse import QTYPES, RCODES

from tests.fixtures.netns import wait_until_watched

SEED, UDP_MESSAGES, TCP_STREAMS, LONG_WALKS = 20260521, 20000, 12, 200
UDP_CLIENT, TCP_CLIENT = 45354, 45300   # fixed ports (TCP: one per stream): queries match by port
REPLAY = Path(__file__).with_name("replay.py")

CONFIG = """
metrics_name: dns
metrics:
  - name: dns_messages
    type: counter
    category: trace
    gadget: dns
    labels: [k8s.container, proto, qr, qtype, rcode, matched, reason]
  - name: dns_malformed
    type: counter
    category: trace
    gadget: dns
    labels: [k8s.container, reason]
    selector: ["reason:!"]
  - name: dns_latency
    type: histogram
    category: trace
    gadget: dns
    field: latency
    labels: [k8s.container, proto]
    selector: ["qr:R", "matched:yes"]
    bucket: {type: exp2, min: 0, max: 15, multiplier: 100000, unit: ns}
"""


# -- the reference: RFC 1035 framing, read strictly ----------------------------------------------

def read_message(msg: bytes) -> tuple[str, dict]:
    """("", header fields) for a well-formed message, else (reason, {})."""
    if len(msg) < 12:
        return "truncated", {}
    ident, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", msg)
    pos, qtype = 12, None
    for index in range(qd + an + ns + ar):
        question, start, labels = index < qd, pos, 0
        while True:   # a name
            if pos >= len(msg):
                return "truncated", {}
            length = msg[pos]
            pos += 1
            if length & 0xC0 == 0xC0:
                if pos >= len(msg):
                    return "truncated", {}
                if not 12 <= ((length & 0x3F) << 8 | msg[pos]) < start:
                    return "pointer", {}   # only to a prior name (RFC 1035 4.1.4)
                pos += 1
                break
            if length & 0xC0:
                return "label", {}
            labels += 1 + length
            if labels + (1 if length else 0) > 255:
                return "long_name", {}
            if not length:
                break
            pos += length
        fixed = 4 if question else 10
        if pos + fixed > len(msg):
            return "truncated", {}
        if question and qtype is None:
            qtype = struct.unpack_from("!H", msg, pos)[0]
        pos += fixed + (0 if question else struct.unpack_from("!H", msg, pos + 8)[0])
        if pos > len(msg):
            return "truncated", {}
    if pos != len(msg):
        return "trailing", {}
    return "", {"id": ident, "qr": flags >> 15, "rcode": flags & 0x0F, "qtype": qtype}


class Reference:
    """What the samples must be: each message's labels, queries matched to responses as the kernel
    matches them (namespace, id, client and server address and port)."""

    def __init__(self) -> None:
        self.messages: Counter = Counter()
        self.latencies: Counter = Counter()
        self._waiting: set = set()

    def message(self, proto: str, direction: str, client_port: int, msg: bytes) -> None:
        reason, h = read_message(msg)
        labels = {"proto": proto, "qr": "", "qtype": "", "rcode": "", "matched": "", "reason": reason}
        if not reason:
            key = (h["id"], client_port)
            labels["qr"] = "R" if h["qr"] else "Q"
            labels["qtype"] = "" if h["qtype"] is None else QTYPES.get(h["qtype"]) or str(h["qtype"])
            if h["qr"]:
                labels["rcode"] = RCODES.get(h["rcode"]) or str(h["rcode"])
                labels["matched"] = "yes" if key in self._waiting else "no"
                if key in self._waiting:
                    self.latencies[proto] += 1
                self._waiting.discard(key)
            else:
                self._waiting.add(key)
        self.messages[frozenset(labels.items())] += 1

    def stream(self, direction: str, client_port: int, data: bytes) -> None:
        """A TCP stream's bytes: its messages by their length prefixes; one cut by the end is truncated."""
        at = 0
        while at < len(data):
            if at + 2 > len(data):
                return self.row("TCP", "truncated")
            length = struct.unpack_from("!H", data, at)[0]
            if at + 2 + length > len(data):
                return self.row("TCP", "truncated")
            self.message("TCP", direction, client_port, data[at + 2:at + 2 + length])
            at += 2 + length

    def row(self, proto: str, reason: str) -> None:
        """A row that is no message the reference reads: a stream cut short, or what the kernel's
        reader could not follow within its bounds."""
        self.messages[frozenset({"proto": proto, "qr": "", "qtype": "", "rcode": "", "matched": "",
                                 "reason": reason}.items())] += 1


class Bounded(Reference):
    """What the samples must be with a reader of `bounds`: the reference's, but a message the reader
    cannot finish within them is `unparsed` (its query never waits for a response), and a message
    the reader does finish must get the reference's reason."""

    def __init__(self, bounds: steps.Bounds) -> None:
        super().__init__()
        self.bounds = bounds

    def message(self, proto: str, direction: str, client_port: int, msg: bytes) -> None:
        reason = steps.datagram(msg, self.bounds)
        if reason is None:
            return self.row(proto, "unparsed")
        assert reason == read_message(msg)[0], msg.hex()
        super().message(proto, direction, client_port, msg)

    def segments(self, direction: str, client_port: int, pieces: list[bytes], fin: bool) -> None:
        for reason, msg in steps.stream(pieces, self.bounds, fin):
            if msg is None:
                self.row("TCP", reason)
                continue
            assert reason == read_message(msg)[0], msg.hex()
            Reference.message(self, "TCP", direction, client_port, msg)


# -- the corpus -----------------------------------------------------------------------------------

def encode_name(rng: random.Random) -> bytes:
    labels = [rng.choice([b"www", b"api", b"mail", b"x" * rng.randrange(1, 64)]) for _ in range(rng.randrange(1, 4))]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def header(ident: int, flags: int, qd: int, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def question(rng: random.Random) -> bytes:
    return encode_name(rng) + struct.pack("!HH", rng.choice([1, 28, 15, 16, 33, 65, 999]), 1)


def response(rng: random.Random, ident: int, asked: bytes) -> bytes:
    answers = rng.randrange(0, 4)
    records = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + rng.randbytes(4) for _ in range(answers))
    return header(ident, 0x8180 | rng.choice([0, 0, 0, 2, 3, 5]), 1, answers) + asked + records


def corpus(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """(direction, message): "q" from the client, "r" from the resolver."""
    out, asked = [], []
    for _ in range(count):
        kind = rng.randrange(10)
        ident = rng.randrange(1 << 16)
        if kind <= 2:                                    # a query
            q = question(rng)
            asked.append((ident, q))
            out.append(("q", header(ident, 0x0100, 1) + q))
        elif kind == 3 and asked:                        # the response to one
            ident, q = asked.pop(rng.randrange(len(asked)))
            out.append(("r", response(rng, ident, q)))
        elif kind == 4:                                  # a forged response (no such query)
            out.append(("r", response(rng, ident, question(rng))))
        elif kind == 5:                                  # a pointer to itself or beyond
            name = encode_name(rng)[:-1]
            target = 12 + rng.choice([0, len(name), len(name) + 6])
            out.append((rng.choice("qr"), header(ident, 0x0100, 1) + name + struct.pack("!H", 0xC000 | target)
                        + b"\x00\x01\x00\x01"))
        elif kind == 6:                                  # random bytes behind a readable header
            out.append((rng.choice("qr"), header(ident, rng.randrange(1 << 16), *(rng.randrange(4) for _ in range(4)))
                        + rng.randbytes(rng.randrange(0, 120))))
        elif kind == 7:                                  # a response cut short
            full = response(rng, ident, question(rng))
            out.append(("r", full[:rng.randrange(0, len(full))]))
        elif kind == 8:                                  # trailing bytes, a reserved label, a long name
            q = rng.choice([question(rng) + rng.randbytes(rng.randrange(1, 9)), b"\x45abcde\x00\x00\x01\x00\x01",
                            b"".join(b"\x3f" + b"y" * 63 for _ in range(4)) + b"\x00\x00\x01\x00\x01"])
            out.append(("q", header(ident, 0x0100, 1) + q))
        else:                                            # a response with a well-formed pointer
            q = question(rng)
            out.append(("r", header(ident, 0x8180, 1, 1) + q + b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 2)
                        + b"\xc0\x0c"))
    return out


def long_walks(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """Well-formed messages that take many steps to read: names of many one-byte labels (two steps
    each) and responses of many answers (seven steps each), on both sides of the bounded reader's
    96 steps."""
    out = []
    for _ in range(count):
        ident = rng.randrange(1 << 16)
        if rng.randrange(2):
            name = b"\x01a" * rng.randrange(10, 128) + b"\x00"
            out.append(("q", header(ident, 0x0100, 1) + name + b"\x00\x01\x00\x01"))
        else:
            answers = rng.randrange(4, 40)
            records = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes(4)
            out.append(("r", header(ident, 0x8180, 1, answers) + question(rng) + records * answers))
    return out


def tcp_steps(rng: random.Random, reference: Reference, bounded: Bounded, stream: int) -> list:
    """One connection: the client's messages, then the resolver's, each stream cut at random points
    and at the cases that matter (two messages in a segment, a prefix split, a message split)."""
    port = TCP_CLIENT + stream
    sent: list = [["open", port]]
    drawn = corpus(rng, 60)   # the client's messages go first: the responses among the resolver's match
    for direction in "qr":
        messages = [m for d, m in drawn if d == direction] or [header(1, 0x0100, 0)]
        data = b"".join(struct.pack("!H", len(m)) + m for m in messages)
        cut_short = direction == "q" and stream == 0   # this stream ends mid-message
        if cut_short:
            data += struct.pack("!H", 40) + b"\x00" * 10
        reference.stream(direction, port, data)
        first = 2 + len(messages[0])
        cuts = sorted({*rng.sample(range(1, len(data)), min(8, len(data) - 1)), 1, first + 1, first + 7})
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)]) if data[a:b]]
        bounded.segments(direction, port, pieces, fin=cut_short)
        sent += [["tcp", direction, piece.hex()] for piece in pieces]
        if cut_short:
            sent.append(["shut", "q"])
    return sent


def reasons_of(reference: Reference) -> Counter:
    return Counter(dict(labels)["reason"] for labels, n in reference.messages.items() for _ in range(n))


def test_the_fuzz_corpus_counts_as_the_reference_parser_says_on_both_paths(reader_build, run_ig, docker, require_bpf):
    rng = random.Random(SEED)
    strict, reference = Reference(), Bounded(reader_build)
    sent = []
    for direction, msg in corpus(rng, UDP_MESSAGES) + long_walks(random.Random(SEED + 1), LONG_WALKS):
        strict.message("UDP", direction, UDP_CLIENT, msg)
        reference.message("UDP", direction, UDP_CLIENT, msg)
        sent.append(["udp", direction, msg.hex()])
    for stream in range(TCP_STREAMS):
        sent += tcp_steps(rng, strict, reference, stream)
    reasons = reasons_of(strict)
    assert min(reasons.values()) >= 10 and len(reasons) == 6, reasons   # every case is in the corpus
    assert all(strict.latencies[proto] >= 10 for proto in ("UDP", "TCP")), strict.latencies
    if reader_build == steps.BPF_LOOP:   # within its bounds: every message as the reference reads it
        assert (reference.messages, reference.latencies) == (strict.messages, strict.latencies)
    else:   # some messages are too long for the bounded reader; the rest still agree
        assert 0 < reasons_of(reference)["unparsed"] < sum(reasons.values()) // 2, reasons_of(reference)

    name = f"ig-dnsreplay-{uuid.uuid4().hex[:6]}"
    docker.run("-d", "--network", "none", "ig-test-busybox:latest", "sleep", "1000", name=name, detach=True)
    kernel, user = run_ig(CONFIG), run_ig(CONFIG, "--no-kernel-aggregation")
    pid = docker.inspect(name, "{{.State.Pid}}")
    for ig in (kernel, user):
        wait_until_watched(ig.proc.pid, int(pid))
    replay = subprocess.run(["taskset", "-c", "0", "nsenter", f"--net=/proc/{pid}/ns/net", sys.executable,
                             str(REPLAY), str(UDP_CLIENT)], input=json.dumps(sent), capture_output=True,
                            text=True, timeout=60)
    assert replay.stdout.strip() == "done", replay.stderr

    expected = {("dns_messages_total", labels | {("k8s_container", name)}): float(n)
                for labels, n in reference.messages.items()}
    malformed = Counter()
    for labels, n in reference.messages.items():
        if dict(labels)["reason"]:
            malformed[dict(labels)["reason"]] += n
    expected.update({("dns_malformed_total", frozenset({("k8s_container", name), ("reason", reason)})): float(n)
                     for reason, n in malformed.items()})
    expected.update({("dns_latency_nanoseconds_count", frozenset({("k8s_container", name), ("proto", proto)})): float(n)
                     for proto, n in reference.latencies.items()})

    def mine(ig) -> dict:
        return {(n, ls): v for (n, ls), v in ig.samples().items()
                if n in ("dns_messages_total", "dns_malformed_total", "dns_latency_nanoseconds_count") and ("k8s_container", name) in ls}

    for ig in (kernel, user):
        deadline = time.monotonic() + 30
        while mine(ig) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        ig.settle()
        got = mine(ig)
        assert got == expected, sorted(set(got.items()) ^ set(expected.items()))
