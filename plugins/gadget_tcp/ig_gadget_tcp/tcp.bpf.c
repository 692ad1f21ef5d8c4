/* trace tcp: TCP connect, accept and close, each emitted in the context of the process that owns
 * the socket (so its pid, comm and cgroup are the right ones).
 *
 * Only stable tracepoints and BPF helpers; no kernel struct is dereferenced. sock:inet_sock_set_state
 * carries the addresses and ports of a state change; its `skaddr` is never followed.
 *
 *   connect  sys_enter_connect, then the SYN_SENT state change that the kernel makes inside that
 *            very syscall (addresses; the socket's address as an opaque key), the change out of
 *            SYN_SENT (source port, chosen after SYN_SENT), then sys_exit_connect (result): one
 *            event, at syscall exit in the connecting process. A connect that fails before the SYN is sent (no
 *            route, a UDP socket) has no SYN_SENT change and is not a TCP connect here.
 *   accept   the SYN_RECV state change of each new child socket (in softirq: any process's context)
 *            remembers peer -> local address; sys_exit_accept(4) with a new fd reads the peer the
 *            kernel wrote to the caller's buffer and finds the local side: one event, at syscall
 *            exit in the acceptor's context.
 *   close    the state changes only tcp_close()/tcp_shutdown() make, in the closing process:
 *            ESTABLISHED -> FIN_WAIT1 (this side closes first) and CLOSE_WAIT -> LAST_ACK (the peer
 *            closed first). Resets and timeouts happen in softirq and are not attributed.
 *
 * Parameters (cflags): MAX_INFLIGHT, MAX_HANDSHAKES.
 */
#include "ig_emit.h"

#ifndef MAX_INFLIGHT
#define MAX_INFLIGHT 1024
#endif
#ifndef MAX_HANDSHAKES
#define MAX_HANDSHAKES 16384
#endif

#define OP_CONNECT 1
#define OP_ACCEPT 2
#define OP_CLOSE 3
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define EAGAIN 11

/* Keep in step with EVENT in plugin.py. Addresses are 16 bytes; IPv4 ones as ::ffff:a.b.c.d. */
struct tcp_event {
    u64 timestamp; /* boot-time ns */
    u64 cgroup_id;
    u32 pid;
    u32 tid;
    u32 uid;
    u32 gid;
    s32 retval;
    u16 op;
    u16 family;    /* of the socket: AF_INET or AF_INET6 */
    u16 sport;     /* this process's end, host byte order */
    u16 dport;     /* the other end */
    u8 saddr[16];
    u8 daddr[16];
    char comm[16];
};

struct peer_key {
    u8 addr[16];
    u16 port;
    u16 pad[3];
};

struct local_end {
    u8 addr[16];
    u16 port;
    u16 family;
};

/* The in-flight connect of a thread; `skaddr` is the socket's kernel address, used only as a key. */
struct connect_call {
    struct tcp_event ev;
    u64 skaddr;
};

/* The source end of a socket, from its change out of SYN_SENT: connect() chooses the source port
 * only after the SYN_SENT change, so the next change (ESTABLISHED, or CLOSE when refused) carries it. */
struct source_end {
    u8 addr[16];
    u16 port;
    u16 pad[3];
};

BPF_HASH(tcp_connects, u32, struct connect_call, MAX_INFLIGHT);
BPF_TABLE("lru_hash", u64, struct source_end, tcp_sources, MAX_INFLIGHT);
BPF_HASH(tcp_accepts, u32, u64, MAX_INFLIGHT);   /* tid -> the caller's sockaddr pointer */
BPF_TABLE("lru_hash", struct peer_key, struct local_end, tcp_handshakes, MAX_HANDSHAKES);
BPF_PERCPU_ARRAY(tcp_scratch, struct tcp_event, 1);

static __always_inline void map_v4(u8 *dst, const u8 *v4)
{
    __builtin_memset(dst, 0, 10);
    dst[10] = 0xff;
    dst[11] = 0xff;
    __builtin_memcpy(dst + 12, v4, 4);
}

/* The 16-byte form of a state change's source and destination addresses. */
#define STATE_ADDRS(args, src, dst)                                   \
    do {                                                              \
        if ((args)->family == 2) {                                    \
            map_v4(src, (args)->saddr);                               \
            map_v4(dst, (args)->daddr);                               \
        } else {                                                      \
            __builtin_memcpy(src, (args)->saddr_v6, 16);              \
            __builtin_memcpy(dst, (args)->daddr_v6, 16);              \
        }                                                             \
    } while (0)

static __always_inline void fill_task(struct tcp_event *ev)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    ev->timestamp = bpf_ktime_get_boot_ns();
    ev->cgroup_id = bpf_get_current_cgroup_id();
    ev->pid = pid_tgid >> 32;
    ev->tid = (u32)pid_tgid;
    u64 uid_gid = bpf_get_current_uid_gid();
    ev->uid = (u32)uid_gid;
    ev->gid = uid_gid >> 32;
    bpf_get_current_comm(ev->comm, sizeof(ev->comm));
}

static __always_inline struct tcp_event *scratch(void)
{
    u32 zero = 0;
    struct tcp_event *ev = tcp_scratch.lookup(&zero);
    if (ev)
        __builtin_memset(ev, 0, sizeof(*ev));
    return ev;
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
    u16 family = 0;
    if (bpf_probe_read_user(&family, sizeof(family), args->uservaddr) || (family != 2 && family != 10))
        return 0;
    struct connect_call call = {};
    call.ev.op = OP_CONNECT;  /* family stays 0 until the SYN_SENT change proves a TCP connect */
    u32 tid = (u32)bpf_get_current_pid_tgid();
    tcp_connects.update(&tid, &call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct connect_call *call = tcp_connects.lookup(&tid);
    if (!call)
        return 0;
    struct tcp_event *ev = &call->ev;
    if (ev->family) {
        /* A blocking connect has its handshake behind it; a non-blocking one (-EINPROGRESS) usually
         * not, and keeps sport 0. */
        struct source_end *src = tcp_sources.lookup(&call->skaddr);
        if (src) {
            ev->sport = src->port;
            __builtin_memcpy(ev->saddr, src->addr, 16);
            tcp_sources.delete(&call->skaddr);
        }
        fill_task(ev);
        ev->retval = args->ret;
        IG_EMIT(args, ev);
    }
    tcp_connects.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept4)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 addr = (u64)args->upeer_sockaddr;
    tcp_accepts.update(&tid, &addr);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 addr = (u64)args->upeer_sockaddr;
    tcp_accepts.update(&tid, &addr);
    return 0;
}

static __always_inline int on_accept_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 *addr = tcp_accepts.lookup(&tid);
    if (!addr)
        return 0;
    const u8 *sa = (const u8 *)*addr;
    tcp_accepts.delete(&tid);
    if (ret < 0 || !sa)
        return 0;
    u16 family = 0;
    if (bpf_probe_read_user(&family, sizeof(family), sa) || (family != 2 && family != 10))
        return 0;
    struct tcp_event *ev = scratch();
    if (!ev)
        return 0;
    u16 port = 0;
    bpf_probe_read_user(&port, sizeof(port), sa + 2);
    struct peer_key key = {};
    key.port = bpf_ntohs(port);
    if (family == 2) {
        u8 v4[4] = {};
        bpf_probe_read_user(v4, 4, sa + 4);
        map_v4(key.addr, v4);
    } else {
        bpf_probe_read_user(key.addr, 16, sa + 8);
    }
    ev->op = OP_ACCEPT;
    ev->family = family;
    ev->dport = key.port;
    __builtin_memcpy(ev->daddr, key.addr, 16);
    struct local_end *local = tcp_handshakes.lookup(&key);
    if (local) {
        ev->family = local->family;
        ev->sport = local->port;
        __builtin_memcpy(ev->saddr, local->addr, 16);
        tcp_handshakes.delete(&key);
    }
    fill_task(ev);
    ev->retval = ret;
    IG_EMIT(ctx, ev);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept4)
{
    return on_accept_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept)
{
    return on_accept_exit(args, args->ret);
}

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != 6)
        return 0;
    int old = args->oldstate, new = args->newstate;
    if (new == TCP_SYN_SENT) {
        /* Inside connect(): the source end is chosen now. */
        u32 tid = (u32)bpf_get_current_pid_tgid();
        struct connect_call *call = tcp_connects.lookup(&tid);
        u64 skaddr = (u64)args->skaddr;
        tcp_sources.delete(&skaddr);  /* a socket once at this address may have left one */
        if (call) {
            call->skaddr = skaddr;
            call->ev.family = args->family;
            call->ev.dport = args->dport;
            STATE_ADDRS(args, call->ev.saddr, call->ev.daddr);
        }
        return 0;
    }
    if (old == TCP_SYN_SENT) {
        struct source_end src = {};
        u8 peer[16];
        STATE_ADDRS(args, src.addr, peer);
        src.port = args->sport;
        u64 skaddr = (u64)args->skaddr;
        tcp_sources.update(&skaddr, &src);
        return 0;
    }
    if (new == TCP_SYN_RECV) {
        /* A child socket of a listener: keyed by its peer until accept() returns it. */
        struct peer_key key = {};
        struct local_end local = {};
        STATE_ADDRS(args, local.addr, key.addr);
        key.port = args->dport;
        local.port = args->sport;
        local.family = args->family;
        tcp_handshakes.update(&key, &local);
        return 0;
    }
    if ((old == TCP_ESTABLISHED && new == TCP_FIN_WAIT1) || (old == TCP_CLOSE_WAIT && new == TCP_LAST_ACK)) {
        struct tcp_event *ev = scratch();
        if (!ev)
            return 0;
        ev->op = OP_CLOSE;
        ev->family = args->family;
        ev->sport = args->sport;
        ev->dport = args->dport;
        STATE_ADDRS(args, ev->saddr, ev->daddr);
        fill_task(ev);
        IG_EMIT(args, ev);
    }
    return 0;
}
