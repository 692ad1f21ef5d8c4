/* snapshot process: one row per thread group, written by a BPF task iterator (iter/task) into the
 * file user space reads (task_iter.py). Every offset is a number user space read from the running
 * kernel's BTF (btf.py), passed as IG_OFF_<STRUCT>_<MEMBER>: the kernel headers bcc compiles
 * against need not describe the running kernel, so no struct is dereferenced by its C type. */

/* The iterator's context, fixed by the kernel's ABI for iter/task programs. */
struct bpf_iter_meta { struct seq_file *seq; __u64 session_id; __u64 seq_num; };
struct bpf_iter__task { struct bpf_iter_meta *meta; struct task_struct *task; };

struct process_row {
    u32 pid, ppid, uid, gid, threads, flags;
    u64 cgroup_id;
    u32 mntns, pad;
    char comm[16];
};

#define IG_READ(dst, base, offset) bpf_probe_read_kernel(&(dst), sizeof(dst), (const void *)((u64)(base) + (offset)))

BPF_ITER(task) {
    u64 task = (u64)ctx->task;
    if (task == 0)
        return 0;   /* the call that ends the iteration */
    struct process_row row = {};
    u32 tid = 0;
    IG_READ(tid, task, IG_OFF_TASK_STRUCT_PID);
    IG_READ(row.pid, task, IG_OFF_TASK_STRUCT_TGID);
    if (tid != row.pid)
        return 0;   /* a thread other than the leader: /proc lists thread groups */
    u64 p = 0;
    IG_READ(p, task, IG_OFF_TASK_STRUCT_REAL_PARENT);
    IG_READ(row.ppid, p, IG_OFF_TASK_STRUCT_TGID);
    p = 0;
    IG_READ(p, task, IG_OFF_TASK_STRUCT_REAL_CRED);   /* the objective ids, as /proc/<pid>/status shows them */
    IG_READ(row.uid, p, IG_OFF_CRED_UID);
    IG_READ(row.gid, p, IG_OFF_CRED_GID);
    p = 0;
    IG_READ(p, task, IG_OFF_TASK_STRUCT_SIGNAL);
    IG_READ(row.threads, p, IG_OFF_SIGNAL_STRUCT_NR_THREADS);
    IG_READ(row.flags, task, IG_OFF_TASK_STRUCT_FLAGS);
    p = 0;
    IG_READ(p, task, IG_OFF_TASK_STRUCT_CGROUPS);       /* css_set -> default hierarchy's cgroup -> kernfs id */
    IG_READ(p, p, IG_OFF_CSS_SET_DFL_CGRP);
    IG_READ(p, p, IG_OFF_CGROUP_KN);
    IG_READ(row.cgroup_id, p, IG_OFF_KERNFS_NODE_ID);
    p = 0;
    IG_READ(p, task, IG_OFF_TASK_STRUCT_NSPROXY);       /* NULL once the task exited (a zombie) */
    if (p) {
        IG_READ(p, p, IG_OFF_NSPROXY_MNT_NS);
        IG_READ(row.mntns, p, IG_OFF_MNT_NAMESPACE_NS + IG_OFF_NS_COMMON_INUM);
    }
    IG_READ(row.comm, task, IG_OFF_TASK_STRUCT_COMM);
    bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
    return 0;
}
