/* trace bind: one event per bind() of an AF_INET/AF_INET6 socket, emitted when the syscall returns.
 *
 * Only stable tracepoints and BPF helpers; no kernel struct is dereferenced. The address is the
 * sockaddr the process passed (user memory, bpf_probe_read_user). What bind() alone does not say,
 * the socket's protocol and the device it is bound to, comes from the socket() and
 * setsockopt(SO_BINDTODEVICE) calls seen on the same fd of the same process:
 *
 *   sys_enter/exit_socket      remember (pid, fd) -> protocol of new AF_INET/AF_INET6 sockets
 *   sys_enter_setsockopt       SO_BINDTODEVICE on a remembered socket: keep the device name
 *   sys_enter_close            forget the fd
 *   sys_enter_bind             read the sockaddr into an in-flight record keyed by thread id
 *   sys_exit_bind              complete it (pid, uid, gid, comm, cgroup, result) and emit
 *
 * Parameters (cflags): MAX_INFLIGHT, MAX_SOCKETS.
 */
#include "ig_emit.h"

#ifndef MAX_INFLIGHT
#define MAX_INFLIGHT 1024
#endif
#ifndef MAX_SOCKETS
#define MAX_SOCKETS 16384
#endif
#define IFNAMSIZ 16
#define SOL_SOCKET 1
#define SO_BINDTODEVICE 25

/* Keep in step with EVENT in plugin.py. */
struct bind_event {
    u64 timestamp; /* boot-time ns when bind() returned */
    u64 cgroup_id;
    u32 pid;
    u32 tid;
    u32 uid;
    u32 gid;
    s32 retval;
    u32 fd;
    u16 family;
    u16 port;      /* host byte order */
    u16 protocol;  /* IPPROTO_*, 0 when the socket's creation was not seen */
    u16 pad;
    u8 addr[16];   /* 4 bytes for AF_INET */
    char comm[16];
    char ifname[IFNAMSIZ];
};

struct sock_info {
    u16 protocol;
    char ifname[IFNAMSIZ];
};

struct socket_call {
    u32 type;
    u32 protocol;
};

BPF_HASH(bind_inflight, u32, struct bind_event, MAX_INFLIGHT);
BPF_HASH(bind_socket_calls, u32, struct socket_call, MAX_INFLIGHT);
BPF_TABLE("lru_hash", u64, struct sock_info, bind_sockets, MAX_SOCKETS);
BPF_PERCPU_ARRAY(bind_scratch, struct bind_event, 1);

static __always_inline u64 fd_key(u32 fd)
{
    return (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | fd;
}

TRACEPOINT_PROBE(syscalls, sys_enter_socket)
{
    if (args->family != 2 && args->family != 10)
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct socket_call call = {.type = args->type & 0xf, .protocol = args->protocol};
    bind_socket_calls.update(&tid, &call);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_socket)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct socket_call *call = bind_socket_calls.lookup(&tid);
    if (!call)
        return 0;
    struct sock_info info = {};
    info.protocol = call->protocol;
    if (!info.protocol)  /* the family's default: TCP for streams, UDP for datagrams */
        info.protocol = call->type == 1 ? 6 : call->type == 2 ? 17 : 0;
    bind_socket_calls.delete(&tid);
    if (args->ret < 0)
        return 0;
    u64 key = fd_key(args->ret);
    bind_sockets.update(&key, &info);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_setsockopt)
{
    if (args->level != SOL_SOCKET || args->optname != SO_BINDTODEVICE)
        return 0;
    u64 key = fd_key(args->fd);
    struct sock_info *info = bind_sockets.lookup(&key);
    if (!info)
        return 0;
    __builtin_memset(info->ifname, 0, IFNAMSIZ);
    if (args->optlen > 0)  /* optlen 0 unbinds */
        bpf_probe_read_user_str(info->ifname, IFNAMSIZ, args->optval);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_close)
{
    u64 key = fd_key(args->fd);
    bind_sockets.delete(&key);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_bind)
{
    u16 family = 0;
    if (bpf_probe_read_user(&family, sizeof(family), args->umyaddr) || (family != 2 && family != 10))
        return 0;
    u32 zero = 0;
    struct bind_event *ev = bind_scratch.lookup(&zero);
    if (!ev)
        return 0;
    __builtin_memset(ev, 0, sizeof(*ev));
    ev->family = family;
    ev->fd = args->fd;
    u16 port = 0;
    const u8 *sa = (const u8 *)args->umyaddr;
    bpf_probe_read_user(&port, sizeof(port), sa + 2);
    ev->port = bpf_ntohs(port);
    if (family == 2)
        bpf_probe_read_user(ev->addr, 4, sa + 4);       /* sockaddr_in.sin_addr */
    else
        bpf_probe_read_user(ev->addr, 16, sa + 8);      /* sockaddr_in6.sin6_addr */
    u32 tid = (u32)bpf_get_current_pid_tgid();
    bind_inflight.update(&tid, ev);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_bind)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    struct bind_event *ev = bind_inflight.lookup(&tid);
    if (!ev)
        return 0;
    ev->timestamp = bpf_ktime_get_boot_ns();
    ev->cgroup_id = bpf_get_current_cgroup_id();
    ev->pid = pid_tgid >> 32;
    ev->tid = tid;
    u64 uid_gid = bpf_get_current_uid_gid();
    ev->uid = (u32)uid_gid;
    ev->gid = uid_gid >> 32;
    ev->retval = args->ret;
    bpf_get_current_comm(ev->comm, sizeof(ev->comm));
    u64 key = fd_key(ev->fd);
    struct sock_info *info = bind_sockets.lookup(&key);
    if (info) {
        ev->protocol = info->protocol;
        __builtin_memcpy(ev->ifname, info->ifname, IFNAMSIZ);
    }
    IG_EMIT(args, ev);
    bind_inflight.delete(&tid);
    return 0;
}
