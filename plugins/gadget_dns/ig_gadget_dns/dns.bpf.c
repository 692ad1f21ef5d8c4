/* DNS over UDP and TCP port 53, IPv4 and IPv6, from packet sockets (one per network namespace).
 * A socket filter: only the packet's own bytes, the __sk_buff context and helpers are read. The
 * filter returns 0 so nothing is queued on the socket: events travel through the ring buffer.
 *
 * The kernel is the single source of truth for which packets are DNS messages, their header and
 * their latency: metrics aggregated here (IG_KERNEL_METRICS_UPDATE, run by IG_EMIT) and rows decoded
 * in user space read the same `struct dns_fields f`. A packet on port 53 that is no message (a TCP
 * segment without payload, the middle of a long message, a retransmission) or that cannot be read
 * (counted as C_MALFORMED) is not emitted at all.
 *
 * Every offset is checked against the packet's length before load_byte/load_half/load_word reads
 * it, so those never abort the program half-way through its map updates. */
#include "ig_emit.h"

#define DNS_CAPTURE 512
#define ETH_HLEN_ 14
#define PACKET_OUTGOING_ 4
#define LOOPBACK_IFINDEX 1
/* Replaced in the loaded instructions by the namespace's slot: one program per watched network
 * namespace, all sharing the maps (a socket filter cannot otherwise tell which socket runs it). */
#define IG_NETNS_SLOT 0x1EC0FFEE
#ifndef NETNS_SLOTS
#define NETNS_SLOTS 4096
#endif
#ifndef QUERY_TABLE_SIZE
#define QUERY_TABLE_SIZE 16384
#endif
#ifndef QUERY_TTL_NS
#define QUERY_TTL_NS 10000000000ULL
#endif
#define TCP_FLOWS 4096
#define MAX_LABELS 128
#define MAX_NAME 255          /* a name's wire length, its final zero included (RFC 1035) */
#define QTYPE_NONE 65536      /* qtype of a message without a question: the row's "" */
#define RCODE_QUERY 255       /* rcode of a query: the row's "" */

/* Counters user space reads (plugin.py KERNEL_COUNTERS has the same order). */
enum { C_EXPIRED, C_UNMATCHED, C_INSERTED, C_REMOVED, C_MALFORMED, C_CONTINUATIONS, C_RETRANSMISSIONS, C_COUNT };

/* What the kernel knows of a message; the schema's KernelFields read `f.<field>`. */
struct dns_fields {
    u64 latency;   /* ns since the matching query (responses); 0 otherwise */
    u64 netns;     /* network namespace inode */
    u32 qtype;     /* QTYPE_NONE without a question */
    u16 id;
    u16 sport;
    u16 dport;
    u16 ancount;
    u16 qdcount;
    u16 msg_off;   /* where the DNS message starts in the packet (past TCP's length prefix) */
    u16 msg_len;   /* its length by the framing (UDP length, TCP prefix) */
    u8 qr;
    u8 opcode;
    u8 rcode;      /* RCODE_QUERY on queries */
    u8 proto;      /* 17 UDP, 6 TCP */
    u8 pkt_type;
    u8 ipv6;
};

struct dns_event {
    u64 timestamp;
    struct dns_fields f;
    u32 caplen;
    u32 ifindex;
    u8 data[DNS_CAPTURE];
};

/* A TCP flow (the same struct keys the query table, with `id`, client first). */
struct dns_key {
    u64 netns;
    u8 saddr[16];
    u8 daddr[16];
    u16 sport;
    u16 dport;
    u16 id;
    u16 _pad;
};

/* Where the flow's current message began and how many bytes (prefix included) it spans. */
struct tcp_span {
    u32 start;
    u32 span;
};

BPF_PERCPU_ARRAY(dns_scratch, struct dns_event, 1);
BPF_ARRAY(dns_netns, u64, NETNS_SLOTS);   /* slot -> netns inode, written before the socket is attached */
BPF_PERCPU_ARRAY(dns_counts, u64, C_COUNT);
BPF_TABLE("lru_hash", struct dns_key, u64, dns_queries, QUERY_TABLE_SIZE);   /* query -> its time */
BPF_TABLE("lru_hash", struct dns_key, struct tcp_span, dns_tcp_flows, TCP_FLOWS);

static __always_inline void dns_count(u32 which)
{
    u64 *c = dns_counts.lookup(&which);
    if (c)
        *c += 1;
}

int ig_dns_filter(struct __sk_buff *skb)
{
    /* On loopback the kernel shows each packet twice (outgoing, then incoming): keep one. */
    if (skb->ifindex == LOOPBACK_IFINDEX && skb->pkt_type == PACKET_OUTGOING_)
        return 0;
    u32 len = skb->len;
    if (len < ETH_HLEN_ + 20)
        return 0;

    struct dns_fields f = {};
    struct dns_key flow = {};
    u32 l4, ip_end;
    u16 eth_proto = load_half(skb, 12);
    if (eth_proto == 0x0800) {
        u32 ihl = (load_byte(skb, ETH_HLEN_) & 0x0f) * 4;
        if (ihl < 20 || (load_half(skb, ETH_HLEN_ + 6) & 0x1fff))
            return 0;   /* a bad header, or a fragment after the first (no ports) */
        f.proto = load_byte(skb, ETH_HLEN_ + 9);
        u32 total = load_half(skb, ETH_HLEN_ + 2);
        ip_end = total ? ETH_HLEN_ + total : len;   /* 0 in a GSO packet: the frame's length */
        u32 saddr = load_word(skb, ETH_HLEN_ + 12), daddr = load_word(skb, ETH_HLEN_ + 16);
        __builtin_memcpy(flow.saddr, &saddr, 4);
        __builtin_memcpy(flow.daddr, &daddr, 4);
        l4 = ETH_HLEN_ + ihl;
    } else if (eth_proto == 0x86DD) {
        if (len < ETH_HLEN_ + 40 + 8)
            return 0;
        f.proto = load_byte(skb, ETH_HLEN_ + 6);
        u32 payload = load_half(skb, ETH_HLEN_ + 4);
        ip_end = payload ? ETH_HLEN_ + 40 + payload : len;
        if (bpf_skb_load_bytes(skb, ETH_HLEN_ + 8, flow.saddr, 16) < 0 ||
            bpf_skb_load_bytes(skb, ETH_HLEN_ + 24, flow.daddr, 16) < 0)
            return 0;
        f.ipv6 = 1;
        l4 = ETH_HLEN_ + 40;
    } else {
        return 0;
    }
    if (ip_end > len)
        ip_end = len;
    if ((f.proto != 17 && f.proto != 6) || l4 + 8 > ip_end)
        return 0;
    f.sport = load_half(skb, l4);
    f.dport = load_half(skb, l4 + 2);
    if (f.sport != 53 && f.dport != 53)
        return 0;

    u32 slot = IG_NETNS_SLOT;
    u64 *netns = dns_netns.lookup(&slot);
    if (!netns)
        return 0;
    f.netns = *netns;
    f.pkt_type = skb->pkt_type;
    flow.netns = f.netns;
    flow.sport = f.sport;
    flow.dport = f.dport;

    u32 msg, msg_end = ip_end;
    if (f.proto == 17) {
        u32 ulen = load_half(skb, l4 + 4);
        if (ulen < 8)
            goto malformed;
        msg = l4 + 8;
        if (l4 + ulen < msg_end)
            msg_end = l4 + ulen;
        f.msg_len = ulen - 8;
    } else {
        if (l4 + 20 > ip_end)
            goto malformed;
        u32 seq = load_word(skb, l4 + 4);
        u32 doff = (load_byte(skb, l4 + 12) >> 4) * 4;
        if (doff < 20)
            goto malformed;
        msg = l4 + doff;
        if (msg >= ip_end)
            return 0;   /* no payload: the handshake, an ACK, a FIN */
        /* Over TCP a message is a 2-byte length and the message, and a long one spans several
         * segments: per flow, where the current message began and how far it goes. A segment inside
         * that span continues it, one at its start repeats it (a retransmission). */
        struct tcp_span *current = dns_tcp_flows.lookup(&flow);
        if (current) {
            u32 offset = seq - current->start;   /* sequence numbers wrap */
            if (offset == 0) {
                dns_count(C_RETRANSMISSIONS);
                return 0;
            }
            if (offset < current->span) {
                dns_count(C_CONTINUATIONS);
                return 0;
            }
        }
        if (msg + 2 > ip_end)
            goto malformed;   /* too short for the length prefix */
        u16 prefix = load_half(skb, msg);
        struct tcp_span span = {.start = seq, .span = 2 + (u32)prefix};
        dns_tcp_flows.update(&flow, &span);
        msg += 2;
        f.msg_len = prefix;
        if (msg + prefix < msg_end)
            msg_end = msg + prefix;   /* a second message in the segment is not read */
    }

    /* The header must be in this packet (for TCP: in the segment with the length prefix). */
    if (msg + 12 > msg_end)
        goto malformed;
    f.msg_off = msg;
    f.id = load_half(skb, msg);
    u16 flags = load_half(skb, msg + 2);
    f.qr = flags >> 15;
    f.opcode = (flags >> 11) & 0x0f;
    f.rcode = f.qr ? (flags & 0x0f) : RCODE_QUERY;
    f.qdcount = load_half(skb, msg + 4);
    f.ancount = load_half(skb, msg + 6);
    f.qtype = QTYPE_NONE;
    if (f.qdcount) {
        /* The first question's name, label by label, to find its qtype. A compression pointer ends
         * the name (it is two bytes long wherever it points: the kernel does not follow it); a name
         * longer than 255 bytes or a reserved label type makes the message malformed. */
        u32 at = msg + 12, name_end = msg + 12 + MAX_NAME;
        int i;
        for (i = 0; i < MAX_LABELS; i++) {
            if (at >= msg_end || at >= name_end)
                goto malformed;
            u8 label = load_byte(skb, at);
            if (label == 0) {
                at += 1;
                break;
            }
            if (label >= 0xC0) {
                at += 2;
                break;
            }
            if (label > 63)
                goto malformed;
            at += 1 + label;
        }
        if (i == MAX_LABELS || at + 4 > msg_end)
            goto malformed;
        f.qtype = load_half(skb, at);
    }

    /* Responses matched to their query: same namespace, id, client and server address and port. */
    u64 now = bpf_ktime_get_ns();
    struct dns_key query = {.netns = f.netns, .id = f.id};
    if (!f.qr) {
        __builtin_memcpy(query.saddr, flow.saddr, 16);
        __builtin_memcpy(query.daddr, flow.daddr, 16);
        query.sport = f.sport;
        query.dport = f.dport;
        if (!dns_queries.lookup(&query))
            dns_count(C_INSERTED);
        dns_queries.update(&query, &now);
    } else {
        __builtin_memcpy(query.saddr, flow.daddr, 16);
        __builtin_memcpy(query.daddr, flow.saddr, 16);
        query.sport = f.dport;
        query.dport = f.sport;
        u64 *sent = dns_queries.lookup(&query);
        if (sent) {
            u64 then = *sent;
            if (dns_queries.delete(&query) == 0)
                dns_count(C_REMOVED);
            if (now - then <= QUERY_TTL_NS) {
                f.latency = now - then;
            } else {
                dns_count(C_EXPIRED);
                dns_count(C_UNMATCHED);
            }
        } else {
            dns_count(C_UNMATCHED);
        }
    }

#if IG_RING
    u32 zero = 0;
    struct dns_event *ev = dns_scratch.lookup(&zero);
    if (!ev)
        return 0;
    ev->timestamp = now;
    ev->f = f;
    ev->ifindex = skb->ifindex;
    u32 caplen = len;
    if (caplen > DNS_CAPTURE)
        caplen = DNS_CAPTURE;
    if (caplen == DNS_CAPTURE) {
        if (bpf_skb_load_bytes(skb, 0, ev->data, DNS_CAPTURE) < 0)
            caplen = 0;
    } else {
        /* a bounded variable length the verifier accepts */
        caplen &= (DNS_CAPTURE - 1);
        if (caplen < 1 || bpf_skb_load_bytes(skb, 0, ev->data, caplen) < 0)
            caplen = 0;
    }
    ev->caplen = caplen;   /* 0 only if the copy failed: the message still counts, unread */
    /* only the captured bytes travel: a typical query is ~80 bytes, not the 512 of the buffer */
    u32 size = sizeof(*ev) - DNS_CAPTURE + caplen;
    if (size > sizeof(*ev))
        return 0;
    IG_EMIT_SIZED(skb, ev, size);
#else
    IG_EMIT(skb, &f);   /* no consumer of rows: the header fields are all the metrics need */
#endif
    return 0;

malformed:
    dns_count(C_MALFORMED);
    return 0;
}
