/* trace open: one event per open/openat/openat2, successful or failed, emitted when the syscall returns.
 *
 * Only stable tracepoints and BPF helpers; no kernel struct is dereferenced (the path and openat2's
 * struct open_how are user memory, read with bpf_probe_read_user*).
 *
 *   sys_enter_open(at|at2)   remember the path pointer, flags and mode by thread id
 *   sys_exit_open(at|at2)    read the path (still the caller's memory), complete the record (pid, uid,
 *                            gid, comm, cgroup, fd or -errno) and emit
 *
 * Parameters (cflags): PATHSIZE (bytes kept of the path, with its NUL), MAX_INFLIGHT, HAVE_SYS_OPEN
 * (the architecture has open(2): x86_64 does, arm64 does not).
 */
#include "ig_emit.h"

/* IG_OPEN_ENTRY: the generated metric code defines it when a metric in the kernel reads a column
 * only the entry knows (plugin.py, ENTRY); with no ring buffer either, the entry does nothing. */
#ifndef IG_OPEN_ENTRY
#define IG_OPEN_ENTRY 0
#endif
#define OPEN_ENTRY_NEEDED (IG_RING || IG_OPEN_ENTRY)

#ifndef PATHSIZE
#define PATHSIZE 256
#endif
#ifndef MAX_INFLIGHT
#define MAX_INFLIGHT 8192
#endif

#define FLAG_NO_ENTRY 1  /* the syscall's entry was not seen (attached mid-call, or in-flight map full) */
#define FLAG_PATH_CUT 2  /* the path filled PATHSIZE and may be cut */

#define SYS_OPEN 0
#define SYS_OPENAT 1
#define SYS_OPENAT2 2

/* Keep in step with HEADER in plugin.py. */
struct open_event {
    u64 timestamp; /* boot-time ns when the syscall returned */
    u64 cgroup_id;
    u64 flags;     /* open flags as passed (openat2: open_how.flags) */
    u64 mode;      /* mode as passed (openat2: open_how.mode) */
    u32 pid;
    u32 tid;
    u32 uid;
    u32 gid;
    s32 ret;       /* fd, or -errno */
    s32 dfd;       /* directory fd a relative path is resolved against (AT_FDCWD: -100) */
    u16 path_size; /* bytes used in path, with its NUL */
    u8 syscall;
    u8 event_flags;
    char comm[16];
    char path[PATHSIZE]; /* NUL-terminated, also when empty: the kernel columns read it up to its NUL */
};

/* open_how of openat2 (include/uapi/linux/openat2.h): a user-space ABI, stable. */
struct ig_open_how {
    u64 flags;
    u64 mode;
    u64 resolve;
};

/* What the entry leaves for the exit: small, so that the map update stays cheap on the busiest syscall. */
struct open_call {
    const char *filename; /* user memory, read when the call returns (as bcc's opensnoop does) */
    u64 flags;
    u64 mode;
    s32 dfd;
    u8 syscall;
};

BPF_PERCPU_ARRAY(open_scratch, struct open_event, 1);
/* LRU: a thread that never returns (killed in a blocking open) cannot fill the map. */
BPF_TABLE("lru_hash", u32, struct open_call, open_inflight, MAX_INFLIGHT);

static __always_inline int on_enter(u8 syscall, int dfd, const char *filename, u64 flags, u64 mode)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct open_call call = {.filename = filename, .flags = flags, .mode = mode, .dfd = dfd, .syscall = syscall};
    open_inflight.update(&tid, &call);
    return 0;
}

static __always_inline int on_exit(void *ctx, long ret)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    u32 zero = 0;
    struct open_event *ev = open_scratch.lookup(&zero);
    if (!ev)
        return 0;
    struct open_call *call = OPEN_ENTRY_NEEDED ? open_inflight.lookup(&tid) : NULL;
    if (call) {
        long n = bpf_probe_read_user_str(ev->path, PATHSIZE, call->filename);
        if (n < 0) {
            n = 0;
            ev->path[0] = 0;
        }
        ev->path_size = n;
        ev->event_flags = n >= PATHSIZE ? FLAG_PATH_CUT : 0;
        ev->syscall = call->syscall;
        ev->dfd = call->dfd;
        ev->flags = call->flags;
        ev->mode = call->mode;
        open_inflight.delete(&tid);
    } else {
        ev->path_size = 0;
        ev->path[0] = 0;
        ev->event_flags = FLAG_NO_ENTRY;
        ev->flags = ev->mode = 0;
        ev->dfd = 0;
        ev->syscall = 0xff;
    }
    ev->timestamp = bpf_ktime_get_boot_ns();
    ev->cgroup_id = bpf_get_current_cgroup_id();
    ev->pid = pid_tgid >> 32;
    ev->tid = tid;
    u64 uid_gid = bpf_get_current_uid_gid();
    ev->uid = (u32)uid_gid;
    ev->gid = uid_gid >> 32;
    ev->ret = ret;
    bpf_get_current_comm(ev->comm, sizeof(ev->comm));
    u32 size = ev->path_size;
    if (size > PATHSIZE)
        size = PATHSIZE;
    IG_EMIT_SIZED(ctx, ev, offsetof(struct open_event, path) + size);
    return 0;
}

#if OPEN_ENTRY_NEEDED   /* not attached at all otherwise: no run on the busiest syscall */
TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    return on_enter(SYS_OPENAT, args->dfd, args->filename, (u32)args->flags, args->mode);
}
#endif

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
    return on_exit(args, args->ret);
}

#if OPEN_ENTRY_NEEDED   /* not attached at all otherwise: no run on the busiest syscall */
TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
    struct ig_open_how how = {};
    bpf_probe_read_user(&how, sizeof(how), args->how);
    return on_enter(SYS_OPENAT2, args->dfd, args->filename, how.flags, how.mode);
}
#endif

TRACEPOINT_PROBE(syscalls, sys_exit_openat2)
{
    return on_exit(args, args->ret);
}

#ifdef HAVE_SYS_OPEN
#if OPEN_ENTRY_NEEDED   /* not attached at all otherwise: no run on the busiest syscall */
TRACEPOINT_PROBE(syscalls, sys_enter_open)
{
    return on_enter(SYS_OPEN, -100, args->filename, (u32)args->flags, args->mode);
}
#endif

TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
    return on_exit(args, args->ret);
}
#endif
