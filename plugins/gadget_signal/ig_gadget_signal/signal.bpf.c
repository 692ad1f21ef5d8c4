/* trace signal: one event per signal generated, in the context of the task that generated it, plus
 * one per kill-family syscall that failed before generating anything (no such process, no permission).
 *
 * Only stable tracepoints and BPF helpers; no kernel struct is dereferenced.
 *
 *   signal:signal_generate        every signal the kernel generates (kill, tkill, tgkill, sigqueue,
 *                                 pidfd_send_signal, and the kernel's own: SIGSEGV, SIGCHLD, SIGPIPE,
 *                                 the OOM killer's SIGKILL, ...): emitted at once with retval 0
 *   sys_enter_kill/tkill/tgkill,  remember target and signal by thread id
 *   rt_sigqueueinfo/rt_tgsigqueueinfo
 *   sys_exit_<same>               a failed call that generated no signal is emitted with retval -errno
 *
 * Parameters (cflags): MAX_INFLIGHT.
 */
/* signal_generate fires with interrupts off (under the target's sighand lock): there the kernel
 * cannot refill the per-CPU cache a map without preallocation takes its new entries from, so one
 * event that starts more series than the cache holds would lose counts. Preallocated maps. */
#define IG_KERNEL_MAP_FLAGS 0
#include "ig_emit.h"

#ifndef MAX_INFLIGHT
#define MAX_INFLIGHT 4096
#endif

/* bcc declares the sigqueue tracepoints' `siginfo_t *uinfo` argument, never read here: name the
 * type (incomplete) so that the declaration compiles without the kernel's signal headers. */
struct siginfo;
typedef struct siginfo siginfo_t;

#define KIND_GENERATED 0   /* from signal_generate */
#define KIND_FAILED_CALL 1 /* a kill-family syscall that failed */

/* Keep in step with HEADER in plugin.py. */
struct signal_event {
    u64 timestamp; /* boot-time ns */
    u64 cgroup_id; /* of the sender */
    u32 pid;       /* sender */
    u32 tid;
    u32 uid;
    u32 gid;
    s32 tpid;      /* target: the task's id (generated), the syscall's pid argument (failed call) */
    s32 sig;
    s32 retval;    /* 0, or -errno of a failed call */
    s32 result;    /* signal_generate's result: 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 info lost */
    u32 kind;
    char comm[16];  /* sender */
    char tcomm[16]; /* target (generated only) */
};

struct signal_call {
    s32 tpid;
    s32 sig;
    u32 generated; /* signals generated during the call */
};

BPF_TABLE("lru_hash", u32, struct signal_call, signal_inflight, MAX_INFLIGHT);

TRACEPOINT_PROBE(signal, signal_generate)
{
    struct signal_event ev = {};
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    struct signal_call *call = signal_inflight.lookup(&tid);
    if (call)
        call->generated++;
    ev.timestamp = bpf_ktime_get_boot_ns();
    ev.cgroup_id = bpf_get_current_cgroup_id();
    ev.pid = pid_tgid >> 32;
    ev.tid = tid;
    u64 uid_gid = bpf_get_current_uid_gid();
    ev.uid = (u32)uid_gid;
    ev.gid = uid_gid >> 32;
    ev.tpid = args->pid;
    ev.sig = args->sig;
    ev.result = args->result;
    ev.kind = KIND_GENERATED;
    bpf_get_current_comm(ev.comm, sizeof(ev.comm));
    bpf_probe_read_kernel(ev.tcomm, sizeof(ev.tcomm), args->comm);
    IG_EMIT(args, &ev);
    return 0;
}

static __always_inline int on_enter(s32 tpid, s32 sig)
{
    if (sig == 0)  /* an existence check sends nothing */
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct signal_call call = {.tpid = tpid, .sig = sig, .generated = 0};
    signal_inflight.update(&tid, &call);
    return 0;
}

static __always_inline int on_exit(void *ctx, long ret)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    struct signal_call *call = signal_inflight.lookup(&tid);
    if (!call)
        return 0;
    if (ret < 0 && call->generated == 0) {
        struct signal_event ev = {};
        ev.timestamp = bpf_ktime_get_boot_ns();
        ev.cgroup_id = bpf_get_current_cgroup_id();
        ev.pid = pid_tgid >> 32;
        ev.tid = tid;
        u64 uid_gid = bpf_get_current_uid_gid();
        ev.uid = (u32)uid_gid;
        ev.gid = uid_gid >> 32;
        ev.tpid = call->tpid;
        ev.sig = call->sig;
        ev.retval = ret;
        ev.result = -1;
        ev.kind = KIND_FAILED_CALL;
        bpf_get_current_comm(ev.comm, sizeof(ev.comm));
        IG_EMIT(ctx, &ev);
    }
    signal_inflight.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_kill) { return on_enter(args->pid, args->sig); }
TRACEPOINT_PROBE(syscalls, sys_exit_kill) { return on_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_tkill) { return on_enter(args->pid, args->sig); }
TRACEPOINT_PROBE(syscalls, sys_exit_tkill) { return on_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_tgkill) { return on_enter(args->pid, args->sig); }
TRACEPOINT_PROBE(syscalls, sys_exit_tgkill) { return on_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_rt_sigqueueinfo) { return on_enter(args->pid, args->sig); }
TRACEPOINT_PROBE(syscalls, sys_exit_rt_sigqueueinfo) { return on_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_rt_tgsigqueueinfo) { return on_enter(args->pid, args->sig); }
TRACEPOINT_PROBE(syscalls, sys_exit_rt_tgsigqueueinfo) { return on_exit(args, args->ret); }
