/* trace oomkill: one event per victim of the OOM killer, emitted in the victim's own context.
 *
 * Only stable tracepoints and BPF helpers; no kernel struct is dereferenced.
 *
 *   oom:mark_victim     fires in the context of the task whose allocation ran the OOM killer (the
 *                       trigger, possibly in another container than the victim); it names the
 *                       victim thread and its memory. Keep that by victim thread id.
 *   sched_process_exit  the victim thread exits (it was sent SIGKILL): now `current` is the victim,
 *                       so pid, comm and cgroup id come from helpers, and the event is emitted.
 *
 * Parameters (cflags): MAX_VICTIMS.
 */
#include "ig_emit.h"

#ifndef MAX_VICTIMS
#define MAX_VICTIMS 1024
#endif

/* Keep in step with EVENT in plugin.py. */
struct oomkill_event {
    u64 timestamp;   /* boot-time ns of mark_victim */
    u64 cgroup_id;   /* the victim's */
    u64 rss_kb;      /* the victim's anon + file + shmem resident memory when it was chosen */
    u32 kpid;        /* victim process (tgid) */
    u32 ktid;        /* victim thread, as mark_victim names it */
    u32 kuid;
    u32 tpid;        /* process whose allocation triggered the kill */
    char kcomm[16];
    char tcomm[16];
};

BPF_TABLE("lru_hash", u32, struct oomkill_event, oom_victims, MAX_VICTIMS);

TRACEPOINT_PROBE(oom, mark_victim)
{
    struct oomkill_event ev = {};
    ev.timestamp = bpf_ktime_get_boot_ns();
    ev.ktid = args->pid;
    ev.kuid = args->uid;
    ev.rss_kb = args->anon_rss + args->file_rss + args->shmem_rss;
    ev.tpid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(ev.tcomm, sizeof(ev.tcomm));
    u32 victim = args->pid;
    oom_victims.update(&victim, &ev);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    struct oomkill_event *ev = oom_victims.lookup(&tid);
    if (!ev)
        return 0;
    ev->kpid = pid_tgid >> 32;
    ev->cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(ev->kcomm, sizeof(ev->kcomm));
    IG_EMIT(args, ev);
    oom_victims.delete(&tid);
    return 0;
}
