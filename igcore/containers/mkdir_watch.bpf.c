/* Reports every new cgroup with its id and path as it is created, so that a container's cgroup id
 * is known even when the container lives a fraction of a second (its directory may be gone before
 * userspace could stat it). Tracepoint arguments only. */
#include "ig_emit.h"

struct cgroup_event {
    u64 id;
    s32 root;
    s32 level;
    char path[256];
};

TRACEPOINT_PROBE(cgroup, cgroup_mkdir)
{
    struct cgroup_event ev = {};
    ev.id = args->id;
    ev.root = args->root;
    ev.level = args->level;
    TP_DATA_LOC_READ_STR(ev.path, path, sizeof(ev.path));
    IG_EMIT(args, &ev);
    return 0;
}
