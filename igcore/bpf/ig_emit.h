/* ig's event transport, owned by the core. A gadget's BPF program includes this file and
 * sends each event with IG_EMIT(ctx, &event), or IG_EMIT_SIZED(ctx, &event, size) for a prefix. Today the transport is a ring buffer read by
 * igcore.bpf.RingBufferTransport; events that do not fit are counted in ig_lost, never dropped
 * silently. Keeping the macro in the core lets the transport change (in-kernel filtering or
 * aggregation into maps) without touching the gadgets.
 *
 * Metrics aggregated in the kernel (igcore.kernel): the core generates IG_KERNEL_METRICS_UPDATE(),
 * which IG_EMIT runs first: it evaluates each such metric's selectors on the columns the gadget
 * declared (KernelField expressions, valid at every IG_EMIT) and updates the metric's map.
 *
 * The program's window (`ig_window`, CLOCK_MONOTONIC ns: [0] counts from, [1] counts until, 0
 * for none; [0] IG_FROM_NOW with no end: an idle start opened for good, read without a clock) decides whether an event is counted and sent at all: a reload that compiles a new
 * program hands over at one instant set in both programs before it comes, so each event is
 * counted by exactly one of them, in the kernel and in user space alike (igcore.kernel.program).
 *
 * Parameters (bcc cflags set by the core): IG_RINGBUF_PAGES, a power of two; IG_RING, 0 when no
 * consumer in user space needs the events (every metric is in the kernel and no `ig trace` runs):
 * the event is then not sent, and a gadget may test IG_RING to skip work only the row needs;
 * IG_START_IDLE 1 for a program that counts nothing until its window is given a start.
 */
#ifndef IG_EMIT_H
#define IG_EMIT_H

#ifndef IG_RINGBUF_PAGES
#define IG_RINGBUF_PAGES 256
#endif
#ifndef IG_RING
#define IG_RING 1
#endif
#ifndef IG_START_IDLE
#define IG_START_IDLE 0
#endif
#define IG_FROM_NOW 1   /* a start of 1 ns: every event from when it is set */
#ifndef IG_KERNEL_METRICS_UPDATE
#define IG_KERNEL_METRICS_UPDATE() do { } while (0)
#endif

BPF_RINGBUF_OUTPUT(ig_events, IG_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(ig_lost, u64, 1);
BPF_ARRAY(ig_window, u64, 2);

static __always_inline int ig_in_window(void)
{
    u32 first = 0, last = 1;
    u64 *from = ig_window.lookup(&first);
    u64 *until = ig_window.lookup(&last);
    if (!from || !until)
        return 0;
    if (*from == 0 && *until == 0)
        return !IG_START_IDLE;   /* no hand-over under way: read no clock */
    if (*from == IG_FROM_NOW && *until == 0)
        return 1;   /* opened once user space was ready (igcore.kernel.program): read no clock either */
    if (IG_START_IDLE && *from == 0)
        return 0;
    u64 now = bpf_ktime_get_ns();
    return now >= *from && (*until == 0 || now < *until);
}

static __always_inline int ig_emit(void *ctx, void *data, u32 size)
{
    int ret = ig_events.ringbuf_output(data, size, 0);
    if (ret) {
        u32 zero = 0;
        u64 *lost = ig_lost.lookup(&zero);
        if (lost)
            __sync_fetch_and_add(lost, 1);
    }
    return ret;
}

#define IG_EMIT(ctx, event_ptr) IG_EMIT_SIZED(ctx, event_ptr, sizeof(*(event_ptr)))

/* For events whose tail is used only in part (captured bytes, strings): send the first `size`
 * bytes. The caller bounds `size` by sizeof(*event_ptr), which the verifier needs to see. */
#define IG_EMIT_SIZED(ctx, event_ptr, size) \
    ({ int ig_sent__ = 0; \
       if (ig_in_window()) { IG_KERNEL_METRICS_UPDATE(); ig_sent__ = IG_RING ? ig_emit((ctx), (event_ptr), (size)) : 0; } \
       ig_sent__; })

#endif
