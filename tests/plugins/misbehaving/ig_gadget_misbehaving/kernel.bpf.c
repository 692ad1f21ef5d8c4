/* trace misbehaving_kernel: one event per exec, with comm and cgroup id (the test's workload). */
#include "ig_emit.h"

struct event {
    u64 cgroup_id;
    char comm[16];
};

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    struct event ev = {};
    ev.cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(ev.comm, sizeof(ev.comm));
    struct event *e = &ev;
    IG_EMIT(args, e);
    return 0;
}
