/* Read helpers under names of the core's own, inlined before ig_emit.h (igcore.bpf.transport).
 *
 * bcc checks every call it sees named bpf_probe_read_user or bpf_probe_read_user_str against the
 * kernel's symbols (all of /proc/kallsyms, for kernels older than 5.5 that lack the helper): a
 * quarter to a third of trace exec's compile time (perf, bench/startup). ig needs 5.8 for its ring
 * buffer, so the helper is always there: calling it through another name is the same BPF call,
 * without the check. */
#ifndef IG_HELPERS_H
#define IG_HELPERS_H

static long (*ig_probe_read_user)(void *dst, u32 size, const void *unsafe_ptr) =
    (void *)BPF_FUNC_probe_read_user;
static long (*ig_probe_read_user_str)(void *dst, u32 size, const void *unsafe_ptr) =
    (void *)BPF_FUNC_probe_read_user_str;
#define bpf_probe_read_user ig_probe_read_user
#define bpf_probe_read_user_str ig_probe_read_user_str

#endif
