/* DNS over UDP and TCP port 53, IPv4 and IPv6, from packet sockets (one per network namespace).
 * A socket filter: only the packet's own bytes, the __sk_buff context and helpers are read. The
 * filter returns 0 so nothing is queued on the socket: events travel through the ring buffer.
 *
 * The kernel is the single source of truth for which bytes are DNS messages, their header and
 * their latency: metrics aggregated here (IG_KERNEL_METRICS_UPDATE, run by IG_EMIT) and rows decoded
 * in user space read the same `struct dns_fields f`.
 *
 * Every message is read whole, by RFC 1035's framing (docs/config.md, Using trace dns): the
 * header, then each question (a name, type and class) and each record (a name, type, class, TTL,
 * length and that many bytes), ending exactly where the framing (UDP length, TCP length prefix)
 * says. A message that does not is one row with its `reason` and no `qr`; it is never a query or a
 * response. A name is labels of 1 to 63 bytes ended by a zero byte or by a compression pointer to an
 * offset before the name (RFC 1035 4.1.4: a prior occurrence; so no pointer can loop).
 *
 * The reading is a byte-level state machine (struct dns_parse) run by bpf_loop for at most
 * DNS_STEPS steps per packet: over UDP it starts afresh in each datagram; over TCP it is kept per
 * flow from the SYN on, so a message is read whatever the segmentation (several in one segment, one
 * over many, a length prefix split). What it cannot follow (a flow whose SYN it did not see, a gap
 * in the sequence numbers, more steps than allowed) is a row with the reason `unparsed`.
 *
 * Built with DNS_NO_BPF_LOOP (kernels before 5.17, which have no bpf_loop) the same steps run in
 * bounded loops the verifier walks through: at most DNS_FIRST_STEPS steps to the end of the
 * packet's first message (or of the packet), then DNS_NEXT_STEPS to the end of a second. Anything
 * longer is `unparsed` the same way.
 */
#include "ig_emit.h"

#define DNS_CAPTURE 512
#ifndef DNS_STEPS
#define DNS_STEPS 4096        /* steps per packet: a byte of a value, a label, a skip */
#endif
#ifndef DNS_FIRST_STEPS
#define DNS_FIRST_STEPS 96    /* without bpf_loop: steps to the end of the packet's first message */
#endif
#ifndef DNS_NEXT_STEPS
#define DNS_NEXT_STEPS 32     /* and of a second one (TCP: two in one segment) */
#endif
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
#define QUERY_TABLE_SIZE 65536
#endif
#ifndef QUERY_TTL_NS
#define QUERY_TTL_NS 10000000000ULL
#endif
#define TCP_FLOWS 4096
#define MAX_NAME 255          /* a name's wire length, its final zero included (RFC 1035) */
#define HEADER_LEN 12
#define QTYPE_NONE 65536      /* qtype of a message without a question: the row's "" */
#define RCODE_QUERY 255       /* rcode of a query or a malformed message: the row's "" */
#define QR_NONE 2             /* qr of a malformed message: the row's "" */
#define MATCHED_NONE 0        /* not a response: the row's "" */
#define MATCHED_NO 1
#define MATCHED_YES 2

/* Counters user space reads (kernel_counts.py KERNEL_COUNTERS has the same order). */
enum { C_EXPIRED, C_UNMATCHED, C_INSERTED, C_REMOVED, C_MALFORMED, C_CONTINUATIONS, C_RETRANSMISSIONS, C_COUNT };

/* Why a message is malformed: the `reason` column (plugin.py REASONS has the same order). */
enum { R_NONE, R_TRUNCATED, R_TRAILING, R_LABEL, R_POINTER, R_LONG_NAME, R_UNPARSED };

/* Where the reading of a message stands: P_PREFIX (TCP) and the header's values, then for each
 * question or record P_NAME (and P_POINTER), then its fixed part. */
enum { P_PREFIX, P_ID, P_FLAGS, P_QD, P_AN, P_NS, P_AR, P_RECORD, P_NAME, P_POINTER, P_QTYPE, P_RDLENGTH,
       P_SKIP, P_END };

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
    u16 msg_len;   /* its length by the framing (UDP length, TCP prefix) */
    u8 qr;         /* QR_NONE when malformed */
    u8 opcode;
    u8 rcode;      /* RCODE_QUERY on queries */
    u8 proto;      /* 17 UDP, 6 TCP */
    u8 pkt_type;
    u8 ipv6;
    u8 reason;     /* R_NONE for a well-formed message */
    u8 matched;    /* MATCHED_YES for a response whose query came within QUERY_TTL_NS */
};

struct dns_event {
    u64 timestamp;
    struct dns_fields f;
    u8 saddr[16];
    u8 daddr[16];
    u32 caplen;    /* bytes of the message that follow (its first DNS_CAPTURE at most) */
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

struct dns_parse {
    u32 seq;         /* TCP: the sequence number of the stream's next byte */
    u32 pos;         /* bytes of the message read (TCP's length prefix not included) */
    u32 len;         /* the message's length by its framing */
    u32 skip;        /* bytes to pass before phase `next` */
    u32 acc;         /* the big-endian value being read */
    u32 records;     /* answer, authority and additional records still to read */
    u32 qtype;       /* the first question's */
    u32 caplen;      /* bytes of the message gathered in `data` */
    u16 id;
    u16 flags;
    u16 qdcount;
    u16 ancount;
    u16 questions;   /* questions still to read */
    u16 name_start;  /* where the current name began: a pointer must point before it */
    u16 name_len;    /* its wire length so far */
    u8 phase;
    u8 next;
    u8 need;         /* bytes of `acc` still to read */
    u8 question;     /* the current name is a question's */
    u8 _pad[2];
    u8 data[2 * DNS_CAPTURE];   /* the message's first bytes (twice as large: for the verifier) */
};

/* One packet's walk. */
struct dns_walk {
    struct __sk_buff *skb;
    struct dns_parse *p;
    u32 at;          /* the packet's next byte to read */
    u32 end;         /* and its end */
    u8 tcp;
    u8 out;          /* stopped: the packet has no more bytes */
    u8 done;         /* stopped: the datagram's message is read */
    u8 _pad;
    u32 ifindex;
    struct dns_key flow;
    struct dns_fields base;   /* what the packet says of every message in it */
};

BPF_PERCPU_ARRAY(dns_scratch, struct dns_event, 1);
BPF_PERCPU_ARRAY(dns_udp_parse, struct dns_parse, 1);
BPF_PERCPU_ARRAY(dns_blank, struct dns_parse, 1);   /* never written: a new flow's zeroes */
BPF_ARRAY(dns_netns, u64, NETNS_SLOTS);   /* slot -> netns inode, written before the socket is attached */
BPF_PERCPU_ARRAY(dns_counts, u64, C_COUNT);
BPF_TABLE("lru_hash", struct dns_key, u64, dns_queries, QUERY_TABLE_SIZE);   /* query -> its time */
BPF_TABLE("lru_hash", struct dns_key, struct dns_parse, dns_tcp_flows, TCP_FLOWS);

static __always_inline void dns_count(u32 which)
{
    u64 *c = dns_counts.lookup(&which);
    if (c)
        *c += 1;
}

/* Big-endian reads of the packet (load_byte and friends cannot be mixed with a callback). A
 * read past the end gives 0xFF..: every caller has checked the length before. */
static __always_inline u32 dns_load(struct __sk_buff *skb, u32 size, u32 off)
{
    u8 b[4] = {0xff, 0xff, 0xff, 0xff};
    bpf_skb_load_bytes(skb, off, b, size);
    u32 v = 0;
    for (int i = 0; i < 4; i++)
        if (i < size)
            v = (v << 8) | b[i];
    return v;
}

static __always_inline void dns_value(struct dns_parse *p, u8 phase, u8 need)
{
    p->phase = phase;
    p->need = need;
    p->acc = 0;
}

static __always_inline void dns_skip(struct dns_parse *p, u32 skip, u8 next)
{
    p->skip = skip;
    p->next = next;
    p->phase = skip ? P_SKIP : next;
}

/* A message begins at w->at: its first bytes are kept for the row (user space reads its name and
 * answers there). Called again at each later segment until DNS_CAPTURE bytes are kept. Without
 * rows (IG_RING 0) nothing is kept. */
static __always_inline void dns_gather(struct dns_walk *w, struct dns_parse *p)
{
    u32 have = p->caplen;
    if (!IG_RING || have >= DNS_CAPTURE || w->at >= w->end || p->pos >= p->len || have != p->pos)
        return;
    u32 n = w->end - w->at, left = p->len - p->pos;
    if (n > left)
        n = left;
    if (n > DNS_CAPTURE - have)
        n = DNS_CAPTURE - have;
    if (n == DNS_CAPTURE) {
        if (bpf_skb_load_bytes(w->skb, w->at, p->data, DNS_CAPTURE) == 0)
            p->caplen = DNS_CAPTURE;
        return;
    }
    u64 at = have, size = n;
    /* masks the compiler cannot drop: the verifier sees both below DNS_CAPTURE */
    asm volatile("%0 &= 511" : "+r"(at));
    asm volatile("%0 &= 511" : "+r"(size));
    if (size < 1)
        return;
    if (bpf_skb_load_bytes(w->skb, w->at, p->data + at, size) == 0)
        p->caplen = at + size;
}

/* A well-formed message: queries wait in dns_queries for their response (same namespace, id,
 * client and server address and port); a response takes its query's out and gets its latency. */
static __always_inline void dns_match(struct dns_walk *w, struct dns_fields *f, u64 now)
{
    struct dns_key query = {.netns = f->netns, .id = f->id};
    if (!f->qr) {
        __builtin_memcpy(query.saddr, w->flow.saddr, 16);
        __builtin_memcpy(query.daddr, w->flow.daddr, 16);
        query.sport = f->sport;
        query.dport = f->dport;
        if (!dns_queries.lookup(&query))
            dns_count(C_INSERTED);
        dns_queries.update(&query, &now);
        return;
    }
    __builtin_memcpy(query.saddr, w->flow.daddr, 16);
    __builtin_memcpy(query.daddr, w->flow.saddr, 16);
    query.sport = f->dport;
    query.dport = f->sport;
    f->matched = MATCHED_NO;
    u64 *sent = dns_queries.lookup(&query);
    if (!sent) {
        dns_count(C_UNMATCHED);
        return;
    }
    u64 then = *sent;
    if (dns_queries.delete(&query) == 0)
        dns_count(C_REMOVED);
    if (now - then <= QUERY_TTL_NS) {
        f->latency = now - then;
        f->matched = MATCHED_YES;
    } else {
        dns_count(C_EXPIRED);
        dns_count(C_UNMATCHED);
    }
}

/* The message is read (or found malformed): one row, one count. Over TCP the next message starts
 * where the framing says, past what is left of this one. */
static __always_inline void dns_finish(struct dns_walk *w, struct dns_parse *p, u8 reason)
{
    struct dns_fields f = w->base;
    u64 now = bpf_ktime_get_ns();
    f.reason = reason;
    f.msg_len = p->len;
    f.qtype = QTYPE_NONE;
    f.rcode = RCODE_QUERY;
    f.qr = QR_NONE;
    if (reason == R_NONE) {
        f.id = p->id;
        f.qr = p->flags >> 15;
        f.opcode = (p->flags >> 11) & 0x0f;
        f.rcode = f.qr ? (p->flags & 0x0f) : RCODE_QUERY;
        f.qdcount = p->qdcount;
        f.ancount = p->ancount;
        f.qtype = p->qtype;
        dns_match(w, &f, now);
    } else {
        dns_count(C_MALFORMED);
    }
#if IG_RING
    u32 zero = 0;
    struct dns_event *ev = dns_scratch.lookup(&zero);
    if (ev) {
        ev->timestamp = now;
        ev->f = f;
        __builtin_memcpy(ev->saddr, w->flow.saddr, 16);
        __builtin_memcpy(ev->daddr, w->flow.daddr, 16);
        ev->ifindex = w->ifindex;
        u32 caplen = reason == R_NONE ? p->caplen : 0;   /* user space reads well-formed ones only */
        if (caplen > DNS_CAPTURE)
            caplen = DNS_CAPTURE;
        ev->caplen = caplen;
        __builtin_memcpy(ev->data, p->data, DNS_CAPTURE);
        /* only the kept bytes travel: a typical query is ~40 bytes, not the 512 of the buffer */
        u32 size = sizeof(*ev) - DNS_CAPTURE + caplen;
        if (size <= sizeof(*ev))
            IG_EMIT_SIZED(w->skb, ev, size);
    }
#else
    IG_EMIT(w->skb, &f);   /* no consumer of rows: the header fields are all the metrics need */
#endif
    if (!w->tcp) {
        w->done = 1;
        return;
    }
    dns_value(p, P_PREFIX, 2);
    if (p->pos < p->len)
        dns_skip(p, p->len - p->pos, P_PREFIX);
}

static __always_inline void dns_name_end(struct dns_parse *p)
{
    if (p->question) {
        dns_value(p, P_QTYPE, 2);
    } else {
        dns_value(p, P_RDLENGTH, 2);
        dns_skip(p, 8, P_RDLENGTH);   /* type, class, TTL */
    }
}

/* The value of `p->phase` is read (p->acc). */
static __always_inline int dns_read_value(struct dns_walk *w, struct dns_parse *p)
{
    u32 v = p->acc;
    switch (p->phase) {
    case P_PREFIX:
        p->len = v;
        p->pos = 0;
        p->caplen = 0;
        p->qtype = QTYPE_NONE;
        dns_value(p, P_ID, 2);
        dns_gather(w, p);
        return 0;
    case P_ID:
        p->id = v;
        dns_value(p, P_FLAGS, 2);
        return 0;
    case P_FLAGS:
        p->flags = v;
        dns_value(p, P_QD, 2);
        return 0;
    case P_QD:
        p->qdcount = p->questions = v;
        dns_value(p, P_AN, 2);
        return 0;
    case P_AN:
        p->ancount = v;
        p->records = v;
        dns_value(p, P_NS, 2);
        return 0;
    case P_NS:
        p->records += v;
        dns_value(p, P_AR, 2);
        return 0;
    case P_AR:
        p->records += v;
        p->phase = P_RECORD;
        return 0;
    case P_POINTER:
        if ((v & 0x3fff) < HEADER_LEN || (v & 0x3fff) >= p->name_start)
            return 1 + R_POINTER;   /* not to a prior name: it could loop */
        dns_name_end(p);
        return 0;
    case P_QTYPE:
        if (p->qtype == QTYPE_NONE)
            p->qtype = v;
        dns_skip(p, 2, P_RECORD);   /* class */
        return 0;
    case P_RDLENGTH:
        dns_skip(p, v, P_RECORD);
        return 0;
    }
    return 0;
}

/* One step: a byte, or a run of bytes to pass. 0 goes on, -1 stops (the packet has no more bytes),
 * R_* + 1 ends the message with that reason. */
static __always_inline int dns_advance(struct dns_walk *w, struct dns_parse *p)
{
    u8 phase = p->phase;
    if (phase == P_RECORD) {
        if (p->questions) {
            p->questions--;
            p->question = 1;
        } else if (p->records) {
            p->records--;
            p->question = 0;
        } else {
            p->phase = P_END;
            return 0;
        }
        p->phase = P_NAME;
        p->name_start = p->pos;
        p->name_len = 0;
        return 0;
    }
    if (phase == P_END)
        return 1 + (p->pos == p->len ? R_NONE : R_TRAILING);
    if (phase != P_PREFIX && p->pos >= p->len)
        return 1 + R_TRUNCATED;   /* the framing ends the message before its sections do */
    if (w->at >= w->end)
        return -1;
    if (phase == P_SKIP) {
        u32 n = w->end - w->at, left = p->len - p->pos;
        if (n > left)
            n = left;
        if (n > p->skip)
            n = p->skip;
        w->at += n;
        p->pos += n;
        p->skip -= n;
        if (!p->skip)
            p->phase = p->next;
        return 0;
    }
    u8 b;
    if (bpf_skb_load_bytes(w->skb, w->at, &b, 1) < 0)
        return -1;
    w->at += 1;
    if (phase != P_PREFIX)
        p->pos += 1;
    if (phase == P_NAME) {
        if ((b & 0xC0) == 0xC0) {
            dns_value(p, P_POINTER, 1);
            p->acc = b;
            return 0;
        }
        if (b & 0xC0)
            return 1 + R_LABEL;   /* label types 01 and 10 are reserved */
        p->name_len += 1 + b;
        if (p->name_len > MAX_NAME || (b && p->name_len + 1 > MAX_NAME))
            return 1 + R_LONG_NAME;
        if (b)
            dns_skip(p, b, P_NAME);
        else
            dns_name_end(p);
        return 0;
    }
    p->acc = (p->acc << 8) | b;
    if (--p->need)
        return 0;
    return dns_read_value(w, p);
}

#ifdef DNS_NO_BPF_LOOP
/* At most `steps` steps, to the end of a message or of the packet: 1 when a message ended and the
 * packet has bytes left for another run. A run that ends neither leaves w->out and w->done unset:
 * the caller counts the packet `unparsed`. The verifier checks every step of every run (about 3,700
 * instructions each), so the bounds keep it under half of the 1,000,000 it allows; the row
 * (dns_finish, with the kernel metrics) is checked once per run, not once per step. */
static __always_inline int dns_run(struct dns_walk *w, struct dns_parse *p, u32 steps)
{
    int r = 0;
    for (u32 i = 0; i < steps && !r; i++)
        r = dns_advance(w, p);
    if (!r)
        return 0;
    if (r < 0) {
        w->out = 1;
        return 0;
    }
    dns_finish(w, p, r - 1);
    if (w->done)
        return 0;
    if (w->at >= w->end) {   /* the next step would find no bytes: no run spent on it */
        w->out = 1;
        return 0;
    }
    return 1;
}

/* Two runs: a message (or the rest of one begun in an earlier segment), then over TCP a short one
 * after it in the same segment. */
static __always_inline void dns_walk(struct dns_walk *w)
{
    struct dns_parse *p = w->p;
    if (p && dns_run(w, p, DNS_FIRST_STEPS))
        dns_run(w, p, DNS_NEXT_STEPS);
}
#else
/* bpf_loop's callback, (index, walk). bcc would read a program's second argument as a probe's, so
 * it is declared with one and takes the walk from r2 before any instruction can change it. */
long dns_step(u64 index)
{
    struct dns_walk *w;
    asm volatile("%0 = r2" : "=r"(w));
    struct dns_parse *p = w->p;
    if (!p)
        return 1;
    int r = dns_advance(w, p);
    if (r < 0) {
        w->out = 1;
        return 1;
    }
    if (r > 0) {
        dns_finish(w, p, r - 1);
        return w->done ? 1 : 0;
    }
    return 0;
}

/* At most DNS_STEPS steps, until the packet's bytes are read or its datagram is. The callback is
 * a function of its own that slots.py links after the program (bcc does not). */
static __always_inline void dns_walk(struct dns_walk *w)
{
    bpf_loop(DNS_STEPS, dns_step, w, 0);
}
#endif

/* A TCP segment of a flow on port 53: the flow's reading goes on from where its last segment left
 * it. Returns the reason of a row the segment ends with (the flow is then forgotten), or -1. */
static __always_inline int dns_tcp(struct dns_walk *w, u32 seq, u8 tcp_flags)
{
    u32 zero = 0;
    struct dns_parse *p;
    if (tcp_flags & 0x02) {   /* SYN: the stream starts at seq + 1 */
        struct dns_parse *blank = dns_blank.lookup(&zero);
        if (!blank)
            return -1;
        dns_tcp_flows.update(&w->flow, blank);
        p = dns_tcp_flows.lookup(&w->flow);
        if (!p)
            return -1;
        seq += 1;
        p->seq = seq;
        dns_value(p, P_PREFIX, 2);
    } else {
        p = dns_tcp_flows.lookup(&w->flow);
    }
    u32 n = w->end - w->at;
    if (!p) {
        if (!n)
            return -1;
        p = dns_udp_parse.lookup(&zero);
        if (!p)
            return -1;
        p->len = p->pos = 0;
        w->p = p;
        return R_UNPARSED;   /* where its messages begin is not known */
    }
    w->p = p;
    if (n) {
        s32 ahead = seq - p->seq;   /* sequence numbers wrap */
        if (ahead > 0)
            return R_UNPARSED;   /* bytes missed: where the next message begins is lost */
        if (ahead < 0) {
            if ((u32)-ahead >= n) {
                dns_count(C_RETRANSMISSIONS);
                n = 0;
            } else {
                w->at += -ahead;   /* partly seen already */
                n += ahead;
            }
        }
    }
    if (n) {
        if (p->phase != P_PREFIX || p->need != 2)
            dns_count(C_CONTINUATIONS);
        p->seq += n;
        dns_gather(w, p);
        dns_walk(w);
        if (!w->out)
            return R_UNPARSED;   /* more steps than allowed: the flow is not followed */
    }
    if (tcp_flags & 0x05) {   /* FIN or RST: a message begun is cut short */
        if (p->phase != P_PREFIX || p->need != 2)
            return R_TRUNCATED;
        dns_tcp_flows.delete(&w->flow);
    }
    return -1;
}

int ig_dns_filter(struct __sk_buff *skb)
{
    /* On loopback the kernel shows each packet twice (outgoing, then incoming): keep one. */
    if (skb->ifindex == LOOPBACK_IFINDEX && skb->pkt_type == PACKET_OUTGOING_)
        return 0;
    u32 len = skb->len;
    if (len < ETH_HLEN_ + 20)
        return 0;

    struct dns_walk w = {};
    struct dns_fields *f = &w.base;
    u32 l4, ip_end;
    u16 eth_proto = dns_load(skb, 2, 12);
    if (eth_proto == 0x0800) {
        u32 ihl = (dns_load(skb, 1, ETH_HLEN_) & 0x0f) * 4;
        if (ihl < 20 || (dns_load(skb, 2, ETH_HLEN_ + 6) & 0x1fff))
            return 0;   /* a bad header, or a fragment after the first (no ports) */
        f->proto = dns_load(skb, 1, ETH_HLEN_ + 9);
        u32 total = dns_load(skb, 2, ETH_HLEN_ + 2);
        ip_end = total ? ETH_HLEN_ + total : len;   /* 0 in a GSO packet: the frame's length */
        if (bpf_skb_load_bytes(skb, ETH_HLEN_ + 12, w.flow.saddr, 4) < 0 ||
            bpf_skb_load_bytes(skb, ETH_HLEN_ + 16, w.flow.daddr, 4) < 0)
            return 0;
        l4 = ETH_HLEN_ + ihl;
    } else if (eth_proto == 0x86DD) {
        if (len < ETH_HLEN_ + 40 + 8)
            return 0;
        f->proto = dns_load(skb, 1, ETH_HLEN_ + 6);
        u32 payload = dns_load(skb, 2, ETH_HLEN_ + 4);
        ip_end = payload ? ETH_HLEN_ + 40 + payload : len;
        if (bpf_skb_load_bytes(skb, ETH_HLEN_ + 8, w.flow.saddr, 16) < 0 ||
            bpf_skb_load_bytes(skb, ETH_HLEN_ + 24, w.flow.daddr, 16) < 0)
            return 0;
        f->ipv6 = 1;
        l4 = ETH_HLEN_ + 40;
    } else {
        return 0;
    }
    if (ip_end > len)
        ip_end = len;
    if ((f->proto != 17 && f->proto != 6) || l4 + 8 > ip_end)
        return 0;
    f->sport = dns_load(skb, 2, l4);
    f->dport = dns_load(skb, 2, l4 + 2);
    if (f->sport != 53 && f->dport != 53)
        return 0;

    u32 slot = IG_NETNS_SLOT;
    u64 *netns = dns_netns.lookup(&slot);
    if (!netns)
        return 0;
    f->netns = *netns;
    f->pkt_type = skb->pkt_type;
    w.flow.netns = f->netns;
    w.flow.sport = f->sport;
    w.flow.dport = f->dport;
    w.skb = skb;
    w.ifindex = skb->ifindex;

    if (f->proto == 6) {
        if (l4 + 20 > ip_end)
            return 0;
        u32 seq = dns_load(skb, 4, l4 + 4);
        u32 doff = (dns_load(skb, 1, l4 + 12) >> 4) * 4;
        u8 tcp_flags = dns_load(skb, 1, l4 + 13);
        if (doff < 20 || l4 + doff > ip_end)
            return 0;
        w.at = l4 + doff;
        w.end = ip_end;
        w.tcp = 1;
        int reason = dns_tcp(&w, seq, tcp_flags);
        if (reason < 0 || !w.p)
            return 0;
        w.tcp = 0;   /* no next message: the flow is forgotten */
        dns_finish(&w, w.p, reason);
        dns_tcp_flows.delete(&w.flow);
        return 0;
    }

    u32 zero = 0;
    struct dns_parse *p = dns_udp_parse.lookup(&zero);
    if (!p)
        return 0;
    u32 ulen = dns_load(skb, 2, l4 + 4);
    p->len = ulen >= 8 ? ulen - 8 : 0;
    p->pos = p->caplen = 0;
    p->qtype = QTYPE_NONE;
    p->questions = 0;
    p->records = 0;
    dns_value(p, P_ID, 2);
    w.p = p;
    w.at = l4 + 8;
    w.end = l4 + 8 + p->len < ip_end ? l4 + 8 + p->len : ip_end;
    dns_gather(&w, p);
    dns_walk(&w);
    if (!w.done)   /* the datagram ends before its message does, or the steps ran out */
        dns_finish(&w, p, w.out ? R_TRUNCATED : R_UNPARSED);
    return 0;
}
