"""trace dns: DNS queries and responses seen in the host's and every container's network namespace."""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections import OrderedDict
from importlib import resources

from igcore.api import (
    Column,
    GadgetContext,
    Kind,
    NetnsAware,
    RingBufferTransport,
    Schema,
    TraceGadget,
    compile_program,
    hookimpl,
)

from .netns import packet_socket
from .parse import PKT_TYPES, MalformedPacket, NotDns, message, transport
from .slots import load_with_slot
from .tcp_framing import TcpFraming

SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "not known to a socket filter: 0"),
    Column("tid", Kind.INT, "not known to a socket filter: 0"),
    Column("uid", Kind.INT, "not known to a socket filter: 0"),
    Column("gid", Kind.INT, "not known to a socket filter: 0"),
    Column("comm", Kind.STR, "not known to a socket filter: empty"),
    Column("srcIP", Kind.STR, "source address"),
    Column("dstIP", Kind.STR, "destination address"),
    Column("srcPort", Kind.INT, "source port"),
    Column("dstPort", Kind.INT, "destination port"),
    Column("proto", Kind.STR, "UDP or TCP"),
    Column("id", Kind.INT, "DNS message id"),
    Column("qr", Kind.STR, "Q for a query, R for a response"),
    Column("qtype", Kind.STR, "query type (A, AAAA, ...; a number when unknown)"),
    Column("name", Kind.STR, "queried name, with the trailing dot (example.com.)"),
    Column("rcode", Kind.STR, "response code of responses (NoError, NXDomain, ...); empty on queries"),
    Column("latency", Kind.INT, "ns from the query to this response (same namespace, id and addresses); 0 otherwise"),
    Column("numAnswers", Kind.INT, "answer records"),
    Column("addresses", Kind.STR, "A and AAAA answers, comma-separated"),
    Column("pktType", Kind.STR, "HOST (received) or OUTGOING (sent); HOST on loopback, where a packet is both and reported once"),
    Column("netns", Kind.UINT, "network namespace inode"),
    Column("timestamp", Kind.UINT, "kernel time of the packet (ns, monotonic)"),
])

CAPTURE = 512
RINGBUF_PAGES = 1024   # 4 MiB: about 7,000 captured messages of headroom for a busy resolver
QUERY_TABLE_SIZE = 16384
QUERY_TTL_NS = 10_000_000_000


# The fixed part of an event (struct dns_event in dns.bpf.c): timestamp, slot, _pad, len, caplen,
# pkt_type, ifindex; `caplen` captured bytes follow (the event is sent only that long).
_HEADER = struct.Struct("=QIIIIII")


class DnsGadget(TraceGadget, NetnsAware):
    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self.stats.extra.update(dns_queries_expired=0, dns_queries_evicted=0, dns_unmatched_responses=0)
        self._sockets: dict[int, tuple] = {}      # netns -> (socket, program fd)
        self._users: dict[int, int] = {}          # netns -> containers using it (a pod's share one)
        self._own_netns = 0                       # ig's own (the host's): watched until stop
        self._netns_of_slot: dict[int, int] = {}  # slot stamped by the program -> netns
        self._queries: OrderedDict = OrderedDict()  # (netns, id, client, server) -> kernel ns
        self._tcp = TcpFraming()
        self._lock = threading.Lock()
        self._bpf = self._transport = None

    # -- namespaces ------------------------------------------------------------------------
    def add_netns(self, netns: int, path: str) -> None:
        with self._lock:
            if self._bpf is None:
                return
            self._users[netns] = self._users.get(netns, 0) + 1
            if netns in self._sockets:
                return
            slot = len(self._netns_of_slot) + 1
            fd = load_with_slot(self._bpf, b"ig_dns_filter", slot)
            try:
                sock = packet_socket(path, fd)
            except OSError:
                os.close(fd)
                self._users.pop(netns, None)
                return  # the namespace's process is already gone
            self._sockets[netns] = (sock, fd)
            self._netns_of_slot[slot] = netns

    def remove_netns(self, netns: int) -> None:
        with self._lock:
            users = self._users.get(netns, 0) - 1
            if users > 0 or netns == self._own_netns:
                self._users[netns] = max(users, 0)
                return   # still used by another container of the pod, or the host's own
            self._users.pop(netns, None)
            entry = self._sockets.pop(netns, None)
        if entry:
            entry[0].close()   # its slot stays mapped: late events of that namespace still resolve
            os.close(entry[1])

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, sink) -> None:
        text = resources.files(__package__).joinpath("dns.bpf.c").read_text()
        self._bpf = compile_program(text, [f"-DIG_RINGBUF_PAGES={RINGBUF_PAGES}"], name="dns")
        self._transport = RingBufferTransport(self._bpf, self._decode, self.stats)
        self._transport.start(sink, name="ig-dns")
        # ig runs in the host namespace: watch its own, whatever containers come and go
        self._own_netns = os.stat("/proc/self/ns/net").st_ino
        self.add_netns(self._own_netns, "/proc/self/ns/net")

    def stop(self) -> None:
        if self._transport is None:
            return
        with self._lock:
            sockets, self._sockets = list(self._sockets.values()), {}
        for sock, fd in sockets:
            sock.close()
            os.close(fd)
        self._transport.stop()
        self._bpf.cleanup()
        self._transport = None

    # -- decoding --------------------------------------------------------------------------
    def _decode(self, data, size):
        raw = ctypes.string_at(data, size)   # one copy: the header, then `caplen` captured bytes
        try:
            timestamp, slot, _pad, _len, caplen, pkt_type, _ifindex = _HEADER.unpack_from(raw)
            seg = transport(raw[_HEADER.size:_HEADER.size + min(caplen, CAPTURE)])
            if seg.proto == "TCP" and not self._tcp.starts_message(
                    (slot, seg.src, seg.dst, seg.sport, seg.dport), seg.seq, seg.length):
                return None   # the middle of a long message, or a retransmission
            if seg.length < 0:
                raise MalformedPacket("a TCP segment too short for a message")
            # a message longer than the frame holds: cut by the capture or continued in later segments
            row = message(seg.payload, cut=len(seg.payload) < seg.length)
        except NotDns:
            return None   # a TCP segment without payload (handshake, ACK, FIN)
        except (MalformedPacket, struct.error):
            self.stats.decode_errors += 1
            return None
        row.update(pid=0, tid=0, uid=0, gid=0, comm="", srcIP=seg.src, dstIP=seg.dst, srcPort=seg.sport,
                   dstPort=seg.dport, proto=seg.proto, latency=0, pktType=PKT_TYPES.get(pkt_type) or str(pkt_type),
                   netns=self._netns_of_slot.get(slot, 0), timestamp=timestamp)
        self._match(row, timestamp)
        return row

    def _match(self, row: dict, now: int) -> None:
        """Remember queries; give a response the time since its query."""
        queries, extra = self._queries, self.stats.extra
        while queries:
            key, when = next(iter(queries.items()))
            if now - when <= QUERY_TTL_NS:
                break
            queries.popitem(last=False)
            extra["dns_queries_expired"] += 1
        if row["qr"] == "Q":
            key = (row["netns"], row["id"], row["srcIP"], row["srcPort"], row["dstIP"], row["dstPort"])
            queries[key] = now
            queries.move_to_end(key)
            if len(queries) > QUERY_TABLE_SIZE:
                queries.popitem(last=False)
                extra["dns_queries_evicted"] += 1
        else:
            key = (row["netns"], row["id"], row["dstIP"], row["dstPort"], row["srcIP"], row["srcPort"])
            sent = queries.pop(key, None)
            if sent is None:
                extra["dns_unmatched_responses"] += 1
            else:
                row["latency"] = now - sent


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="trace", name="dns", description="DNS queries and responses, with latency",
             columns=SCHEMA, factory=DnsGadget, container_key="netns")
