/* trace exec: one event per execve/execveat, successful or failed, emitted when the syscall returns.
 *
 * Only stable tracepoints and BPF helpers; no kernel struct is dereferenced (the syscall's argv
 * pointers are user memory, read with bpf_probe_read_user*).
 *
 *   sys_enter_execve(at)   read argv into an in-flight record keyed by thread id
 *   sched_process_exec     a non-leader thread that execs takes the leader's id: move its record
 *   sys_exit_execve(at)    complete the record (pid, ppid, uid, gid, comm, retval, cgroup) and emit
 *   sched_process_fork     remember child -> parent tgid, so ppid needs no task_struct
 *   sched_process_exit     drop what the thread left behind; mark the process gone (children of a
 *                          gone process have been reparented: user space reads their ppid in /proc)
 *
 * Parameters (cflags): MAXARGS, ARGSIZE (per argument, with its NUL), MAX_INFLIGHT, MAX_PIDS.
 * With IG_RING 0 (every metric in the kernel, see ig_emit.h) only the exit handlers do work: the
 * arguments and the parents are for rows.
 */
#include "ig_emit.h"

#ifndef MAXARGS
#define MAXARGS 20
#endif
#ifndef ARGSIZE
#define ARGSIZE 128
#endif
#ifndef MAX_INFLIGHT
#define MAX_INFLIGHT 1024
#endif
#ifndef MAX_PIDS
#define MAX_PIDS 32768
#endif
#define ARGS_BUF (MAXARGS * ARGSIZE)

#define FLAG_MORE_ARGS 1 /* argv had more than MAXARGS entries */
#define FLAG_NO_ARGS 2   /* the syscall's entry was not seen (attached mid-exec, or in-flight map full) */
#define FLAG_ARGS_CUT 4  /* an argument reached ARGSIZE and may be cut */

/* Keep in step with HEADER in plugin.py. */
struct exec_event {
    u64 timestamp; /* boot-time ns when the syscall returned */
    u64 cgroup_id;
    u32 pid;
    u32 tid;
    u32 ppid;      /* 0: not known here, user space reads /proc/<pid>/status */
    u32 uid;
    u32 gid;
    s32 retval;
    u32 args_size; /* bytes used in args: NUL-terminated arguments back to back */
    u32 flags;
    char comm[16];
    char args[ARGS_BUF];
};

BPF_PERCPU_ARRAY(exec_scratch, struct exec_event, 1);
BPF_HASH(exec_inflight, u32, struct exec_event, MAX_INFLIGHT);
BPF_TABLE("lru_hash", u32, u32, exec_parents, MAX_PIDS);
BPF_TABLE("lru_hash", u32, u8, exec_gone, MAX_PIDS);

static __always_inline int on_enter(const char *const *argv)
{
    if (!IG_RING)
        return 0; /* arguments are for rows only: metrics in the kernel never read them */
    u32 zero = 0;
    struct exec_event *ev = exec_scratch.lookup(&zero);
    if (!ev)
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 off = 0;
    ev->flags = 0;

#pragma unroll
    for (int i = 0; i < MAXARGS; i++) {
        const char *arg = NULL;
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
            goto done;
        /* Hide what the compiler knows of off, so that it keeps this check for the verifier. */
        asm volatile("" : "+r"(off));
        if (off > ARGS_BUF - ARGSIZE)
            goto done;
        long n = bpf_probe_read_user_str(&ev->args[off], ARGSIZE, arg);
        if (n <= 0)
            goto done;
        if (n >= ARGSIZE) {
            n = ARGSIZE;
            ev->flags |= FLAG_ARGS_CUT;
        }
        off += n;
    }
    {
        const char *more = NULL;
        if (bpf_probe_read_user(&more, sizeof(more), &argv[MAXARGS]) == 0 && more)
            ev->flags |= FLAG_MORE_ARGS;
    }
done:
    ev->args_size = off;
    exec_inflight.update(&tid, ev);
    return 0;
}

static __always_inline int on_exit(void *ctx, long ret)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid, pid = pid_tgid >> 32;
    struct exec_event *ev = exec_inflight.lookup(&tid);
    int stored = ev != NULL;
    if (!ev) {
        u32 zero = 0;
        ev = exec_scratch.lookup(&zero);
        if (!ev)
            return 0;
        ev->args_size = 0;
        ev->flags = FLAG_NO_ARGS;
    }
    ev->timestamp = bpf_ktime_get_boot_ns();
    ev->cgroup_id = bpf_get_current_cgroup_id();
    ev->pid = pid;
    ev->tid = tid;
    u64 uid_gid = bpf_get_current_uid_gid();
    ev->uid = (u32)uid_gid;
    ev->gid = uid_gid >> 32;
    ev->retval = ret;
    /* After a successful exec, current's comm is already the new program's. */
    bpf_get_current_comm(ev->comm, sizeof(ev->comm));
    ev->ppid = 0;
    u32 *parent = exec_parents.lookup(&pid);
    if (parent) {
        u32 ppid = *parent;
        if (!exec_gone.lookup(&ppid))
            ev->ppid = ppid;
    }
    u32 size = ev->args_size;
    if (size > ARGS_BUF)
        size = ARGS_BUF;
    IG_EMIT_SIZED(ctx, ev, offsetof(struct exec_event, args) + size);
    if (stored)
        exec_inflight.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    return on_enter(args->argv);
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    return on_enter(args->argv);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return on_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return on_exit(args, args->ret);
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 pid = args->pid, old = args->old_pid;
    if (pid != old) {
        /* A non-leader thread exec'd: it now runs under the leader's id, and the leader's exit
         * during the exec did not end the process. */
        struct exec_event *ev = exec_inflight.lookup(&old);
        if (ev) {
            exec_inflight.update(&pid, ev);
            exec_inflight.delete(&old);
        }
        exec_gone.delete(&pid);
    }
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    if (!IG_RING)
        return 0; /* ppid is for rows only */
    /* The current task is the parent. A new thread gets an entry too; it is never read (a thread
     * that execs becomes the leader) and is dropped when the thread exits. */
    u32 child = args->child_pid;
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    exec_parents.update(&child, &parent);
    exec_gone.delete(&child);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    if (!IG_RING)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid, pid = pid_tgid >> 32;
    exec_inflight.delete(&tid);
    exec_parents.delete(&tid);
    if (tid == pid) {
        u8 one = 1;
        exec_gone.update(&tid, &one);
    }
    return 0;
}
