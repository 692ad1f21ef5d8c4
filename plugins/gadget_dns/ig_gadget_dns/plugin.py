"""trace dns: DNS queries and responses seen in the host's and every container's network namespace.

The kernel (dns.bpf.c) reads every message whole by RFC 1035's framing, decides which are well-formed
(the others are rows with a `reason`), and reads their header, qtype, match and latency into
`struct dns_fields f`, which the columns' KernelFields name; user space reads only the queried name
and the answers from the message's first bytes (docs/config.md, Using trace dns).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from importlib import resources
from typing import Any

from igcore.api import (
    Column,
    GadgetContext,
    KernelField,
    Kind,
    NetnsAware,
    RingBufferTransport,
    Schema,
    TraceGadget,
    compile_program,
    hookimpl,
)

from .bpf_loop import use_bpf_loop
from .kernel_counts import KernelCounters
from .netns import packet_socket
from .parse import PKT_TYPES, QTYPES, RCODES, MalformedPacket, contents
from .slots import CallbackBtf, load_with_slot

QTYPE_NONE = 65536   # dns.bpf.c: a message without a question
RCODE_QUERY = 255    # dns.bpf.c: the rcode of a query or of a malformed message
QR_NONE = 2          # dns.bpf.c: the qr of a malformed message
PROTOS = {17: "UDP", 6: "TCP"}
# dns.bpf.c's R_* in order: why a message is malformed (docs/config.md, Using trace dns)
REASONS = ("", "truncated", "trailing", "label", "pointer", "long_name", "unparsed")
MATCHED = ("", "no", "yes")   # dns.bpf.c's MATCHED_*


def _named(names: dict[int, str], *extra: tuple[str, int]) -> tuple[tuple[str, int], ...]:
    return (*((text, code) for code, text in names.items()), *extra)


SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "not known to a socket filter: 0"),
    Column("tid", Kind.INT, "not known to a socket filter: 0"),
    Column("uid", Kind.INT, "not known to a socket filter: 0"),
    Column("gid", Kind.INT, "not known to a socket filter: 0"),
    Column("comm", Kind.STR, "not known to a socket filter: empty"),
    Column("srcIP", Kind.STR, "source address", width=24),
    Column("dstIP", Kind.STR, "destination address", width=24),
    Column("srcPort", Kind.INT, "source port", kernel=KernelField("f.sport", "u16")),
    Column("dstPort", Kind.INT, "destination port", kernel=KernelField("f.dport", "u16")),
    Column("proto", Kind.STR, "UDP or TCP", kernel=KernelField("f.proto", "u8", _named(PROTOS))),
    Column("id", Kind.INT, "DNS message id; 0 for a malformed message", kernel=KernelField("f.id", "u16")),
    Column("qr", Kind.STR, "Q for a query, R for a response; empty for a malformed message",
           kernel=KernelField("f.qr", "u8", (("Q", 0), ("R", 1), ("", QR_NONE)))),
    Column("qtype", Kind.STR, "query type (A, AAAA, ...; a number when unknown; empty without a question)",
           kernel=KernelField("f.qtype", "u32", _named(QTYPES, ("", QTYPE_NONE)))),
    Column("name", Kind.STR, "queried name, with the trailing dot (example.com.); empty if it cannot be read",
           width=28, exemplar=True),
    Column("rcode", Kind.STR, "response code of responses (NoError, NXDomain, ...); empty on queries",
           kernel=KernelField("f.rcode", "u8", _named(RCODES, ("", RCODE_QUERY)))),
    Column("latency", Kind.INT, "ns from the query to this response (same namespace, id and addresses); 0 otherwise",
           kernel=KernelField("f.latency", "u64")),
    Column("matched", Kind.STR, "on a response, yes if its query came within 10 s (then it has a latency), else no; "
           "empty otherwise",
           kernel=KernelField("f.matched", "u8", tuple((text, i) for i, text in enumerate(MATCHED)))),
    Column("reason", Kind.STR, "why the message is malformed (truncated, trailing, label, pointer, long_name, "
           "unparsed); empty for a query or a response",
           kernel=KernelField("f.reason", "u8", tuple((text, i) for i, text in enumerate(REASONS)))),
    Column("numAnswers", Kind.INT, "answer records (the header's count)", kernel=KernelField("f.ancount", "u16")),
    Column("addresses", Kind.STR, "A and AAAA answers, comma-separated", width=24),
    Column("pktType", Kind.STR,
           "HOST (received) or OUTGOING (sent); HOST on loopback, where a packet is both and reported once",
           kernel=KernelField("f.pkt_type", "u8", _named(PKT_TYPES))),
    Column("netns", Kind.UINT, "network namespace inode", kernel=KernelField("f.netns", "u64"), hidden=True),
    Column("timestamp", Kind.UINT, "kernel time of the packet (ns, monotonic)", hidden=True, monotonic=True),
])

CAPTURE = 512
RINGBUF_PAGES = 1024   # 4 MiB: about 7,000 captured messages of headroom for a busy resolver
QUERY_TABLE_SIZE = 65536   # queries waiting for their response: a busy resolver has tens of thousands (bench/dns_flood)
QUERY_TTL_NS = 10_000_000_000
NETNS_SLOTS = 4096     # namespaces watched at once (a slot is reused once its namespace has gone)
# dns.bpf.c's bounds on the steps of its reader (docs/config.md, Using trace dns): with bpf_loop, per
# packet; without (kernels 5.8 to 5.16), to the end of a packet's first message and of a second one,
# kept small enough for the verifier, which walks through every step
LOOP_STEPS, BOUNDED_STEPS = 4096, (96, 32)


# struct dns_event in dns.bpf.c: timestamp, then struct dns_fields (latency, netns, qtype, id, sport,
# dport, ancount, qdcount, msg_len, qr, opcode, rcode, proto, pkt_type, ipv6, reason, matched), the
# source and destination address, caplen, ifindex; the message's first `caplen` bytes follow (the
# event is sent only that long).
_EVENT = struct.Struct("=QQQIHHHHHHBBBBBBBB16s16sII")
_INET, _INET6 = socket.AF_INET, socket.AF_INET6


class DnsGadget(TraceGadget, NetnsAware):
    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self._counters = self.stats.extra = KernelCounters(QUERY_TTL_NS)
        self._sockets: dict[int, tuple] = {}      # netns -> (socket, program fd, slot)
        self._users: dict[int, int] = {}          # netns -> containers using it (a pod's share one)
        self._own_netns = 0                       # ig's own (the host's): watched until stop
        self._free_slots = list(range(NETNS_SLOTS - 1, 0, -1))   # slot 0 is never stamped
        self._lock = threading.Lock()
        self._bpf: Any = None   # bcc's BPF object, while started
        self._transport: RingBufferTransport | None = None
        self._btf: CallbackBtf | None = None   # the bpf_loop build's callback records; None without
        self.uses_bpf_loop = True   # which build of the reader runs (decided at start)

    # -- namespaces ------------------------------------------------------------------------
    def add_netns(self, netns: int, path: str) -> None:
        with self._lock:
            if self._bpf is None:
                return
            self._users[netns] = self._users.get(netns, 0) + 1
            if netns in self._sockets or not self._free_slots:
                return
            slot = self._free_slots.pop()
            # the program reads the namespace from its slot: set before any packet can run it
            self._bpf[b"dns_netns"][ctypes.c_uint32(slot)] = ctypes.c_uint64(netns)
            fd = load_with_slot(self._bpf, b"ig_dns_filter", slot, b"dns_step" if self._btf else None, self._btf)
            try:
                sock = packet_socket(path, fd, self.ctx.run_in_thread)
            except OSError:
                os.close(fd)
                self._users.pop(netns, None)
                self._free_slots.append(slot)
                return  # the namespace's process is already gone
            self._sockets[netns] = (sock, fd, slot)

    def remove_netns(self, netns: int) -> None:
        with self._lock:
            users = self._users.get(netns, 0) - 1
            if users > 0 or netns == self._own_netns:
                self._users[netns] = max(users, 0)
                return   # still used by another container of the pod, or the host's own
            self._users.pop(netns, None)
            entry = self._sockets.pop(netns, None)
            if entry:
                entry[0].close()   # no packet runs its program any more: the slot is free
                os.close(entry[1])
                self._free_slots.append(entry[2])

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, sink) -> None:
        text = resources.files(__package__).joinpath("dns.bpf.c").read_text()
        cflags = [f"-DIG_RINGBUF_PAGES={RINGBUF_PAGES}", f"-DQUERY_TABLE_SIZE={QUERY_TABLE_SIZE}",
                  f"-DQUERY_TTL_NS={QUERY_TTL_NS}ULL", f"-DNETNS_SLOTS={NETNS_SLOTS}", f"-DDNS_STEPS={LOOP_STEPS}"]
        self.uses_bpf_loop = use_bpf_loop()
        if not self.uses_bpf_loop:
            cflags += ["-DDNS_NO_BPF_LOOP", f"-DDNS_FIRST_STEPS={BOUNDED_STEPS[0]}",
                       f"-DDNS_NEXT_STEPS={BOUNDED_STEPS[1]}"]
        self._bpf = compile_program(text, cflags, name="dns", ctx=self.ctx)
        self._btf = CallbackBtf() if self.uses_bpf_loop else None
        self._counters.attach(self._bpf)
        self._transport = RingBufferTransport(self._bpf, self._decode, self.stats)
        self._transport.start(sink, name="ig-dns", spawn=self.ctx.spawn)
        # ig runs in the host namespace: watch its own, whatever containers come and go
        self._own_netns = os.stat("/proc/self/ns/net").st_ino
        self.add_netns(self._own_netns, "/proc/self/ns/net")

    def stop(self) -> None:
        if self._transport is None:
            return
        with self._lock:
            sockets, self._sockets = list(self._sockets.values()), {}
        for sock, fd, _slot in sockets:
            sock.close()
            os.close(fd)
        self._transport.stop()
        self._counters.detach()
        self._bpf.cleanup()
        self._transport = None

    # -- decoding --------------------------------------------------------------------------
    def _decode(self, data, size):
        raw = ctypes.string_at(data, size)   # one copy: the header, then `caplen` bytes of the message
        (timestamp, latency, netns, qtype, ident, sport, dport, ancount, _qdcount, msg_len, qr, _opcode, rcode,
         proto, pkt_type, ipv6, reason, matched, saddr, daddr, caplen, _ifindex) = _EVENT.unpack_from(raw)
        family, width = (_INET6, 16) if ipv6 else (_INET, 4)
        row = {"pid": 0, "tid": 0, "uid": 0, "gid": 0, "comm": "",
               "srcIP": socket.inet_ntop(family, saddr[:width]), "dstIP": socket.inet_ntop(family, daddr[:width]),
               "srcPort": sport, "dstPort": dport, "proto": PROTOS[proto], "id": ident,
               "qr": "" if qr == QR_NONE else "R" if qr else "Q",
               "qtype": "" if qtype == QTYPE_NONE else QTYPES.get(qtype) or str(qtype),
               "rcode": "" if rcode == RCODE_QUERY else RCODES.get(rcode) or str(rcode),
               "latency": latency, "matched": MATCHED[matched], "reason": REASONS[reason], "numAnswers": ancount,
               "pktType": PKT_TYPES.get(pkt_type) or str(pkt_type), "netns": netns, "timestamp": timestamp,
               "name": "", "addresses": ""}
        if reason:
            return row   # malformed: the kernel kept none of its bytes
        msg = raw[_EVENT.size:_EVENT.size + min(caplen, CAPTURE)]
        # The kernel counted this message: it is a row even when its name cannot be read here.
        try:
            # a message longer than the capture: its answers are read as far as the bytes go
            row["name"], row["addresses"] = contents(msg, cut=len(msg) < msg_len)
        except MalformedPacket:
            self.stats.decode_errors += 1
        return row


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="trace", name="dns", description="DNS queries and responses, with latency",
             columns=SCHEMA, factory=DnsGadget, container_key="netns")
