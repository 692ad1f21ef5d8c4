/* Reports every cgroup as it is created and removed, with its id and path, so that a container's
 * cgroup id is known even when the container lives a fraction of a second (its directory may be
 * gone before userspace could stat it). Tracepoint arguments only. */
#include "ig_emit.h"

struct cgroup_event {
    u64 id;
    s32 root;
    s32 level;
    u32 removed;
    char path[256];
};

#define REPORT_CGROUP(is_removed)                                   \
    do {                                                            \
        struct cgroup_event ev = {};                                \
        ev.id = args->id;                                           \
        ev.root = args->root;                                       \
        ev.level = args->level;                                     \
        ev.removed = (is_removed);                                  \
        TP_DATA_LOC_READ_STR(ev.path, path, sizeof(ev.path));       \
        IG_EMIT(args, &ev);                                         \
    } while (0)

TRACEPOINT_PROBE(cgroup, cgroup_mkdir)
{
    REPORT_CGROUP(0);
    return 0;
}

TRACEPOINT_PROBE(cgroup, cgroup_rmdir)
{
    REPORT_CGROUP(1);
    return 0;
}
