/* DNS over UDP and TCP port 53, IPv4 and IPv6, from packet sockets (one per network namespace).
 * A socket filter: only the packet's own bytes, the __sk_buff context and helpers are read. The
 * filter returns 0 so nothing is queued on the socket: events travel through the ring buffer. */
#include "ig_emit.h"

#define DNS_CAPTURE 512
#define ETH_HLEN_ 14
#define PACKET_OUTGOING_ 4
#define LOOPBACK_IFINDEX 1
/* Replaced in the loaded instructions by the namespace's slot: one program per watched network
 * namespace, all sharing the maps (a socket filter cannot otherwise tell which socket runs it). */
#define IG_NETNS_SLOT 0x1EC0FFEE

struct dns_event {
    u64 timestamp;
    u32 slot;
    u32 _pad;
    u32 len;
    u32 caplen;
    u32 pkt_type;
    u32 ifindex;
    u8 data[DNS_CAPTURE];
};

BPF_PERCPU_ARRAY(dns_scratch, struct dns_event, 1);

int ig_dns_filter(struct __sk_buff *skb)
{
    u32 l4;
    u8 proto;
    u16 eth_proto = load_half(skb, 12);
    if (eth_proto == 0x0800) {
        u8 ihl = load_byte(skb, ETH_HLEN_) & 0x0f;
        proto = load_byte(skb, ETH_HLEN_ + 9);
        l4 = ETH_HLEN_ + ihl * 4;
    } else if (eth_proto == 0x86DD) {
        proto = load_byte(skb, ETH_HLEN_ + 6);
        l4 = ETH_HLEN_ + 40;
    } else {
        return 0;
    }
    if (proto != 17 && proto != 6)
        return 0;
    u16 sport = load_half(skb, l4);
    u16 dport = load_half(skb, l4 + 2);
    if (sport != 53 && dport != 53)
        return 0;
    /* On loopback the kernel shows each packet twice (outgoing, then incoming): keep one. */
    if (skb->ifindex == LOOPBACK_IFINDEX && skb->pkt_type == PACKET_OUTGOING_)
        return 0;

    u32 zero = 0;
    struct dns_event *ev = dns_scratch.lookup(&zero);
    if (!ev)
        return 0;
    ev->timestamp = bpf_ktime_get_ns();
    ev->slot = IG_NETNS_SLOT;
    ev->len = skb->len;
    ev->pkt_type = skb->pkt_type;
    ev->ifindex = skb->ifindex;
    u32 caplen = skb->len;
    if (caplen > DNS_CAPTURE)
        caplen = DNS_CAPTURE;
    ev->caplen = caplen;
    if (caplen == DNS_CAPTURE) {
        if (bpf_skb_load_bytes(skb, 0, ev->data, DNS_CAPTURE) < 0)
            return 0;
    } else {
        /* a bounded variable length the verifier accepts */
        caplen &= (DNS_CAPTURE - 1);
        if (caplen < 1 || bpf_skb_load_bytes(skb, 0, ev->data, caplen) < 0)
            return 0;
    }
    /* only the captured bytes travel: a typical query is ~80 bytes, not the 512 of the buffer */
    u32 size = sizeof(*ev) - DNS_CAPTURE + caplen;
    if (size > sizeof(*ev))
        return 0;
    IG_EMIT_SIZED(skb, ev, size);
    return 0;
}
