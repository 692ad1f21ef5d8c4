"""A reload's hand-over from gadget runs to the ones recompiled for the new config, so that a metric
kept by the reload counts every event once (docs/config.md, "Reloads").

Old and new program run side by side; each has a counting window in the kernel (ig_emit.h) that
covers its kernel metrics and its ring buffer alike. One instant, a little ahead, is written into
both: the old program counts the events before it, the new one those from it on. Nothing in user
space has to happen at that instant: the new run is bound to the metrics before it (its program
sends nothing earlier), the old run stays bound until its stop has drained what its program sent,
and the kernel metrics read the old maps one last time once the instant has passed (counts still
waiting for their container then count as unclaimed, as the old run's held rows do when it stops).
"""

from __future__ import annotations

import logging
import time

from .metrics.kernel import KernelAggregator

log = logging.getLogger("igcore.engine")

# How far ahead the instant is set: both programs must know it before it comes.
LEAD_NS = 50_000_000
# How long past the instant the old maps are read: a program that passed its window's test
# before the instant is done with the event a few microseconds later.
SETTLE_S = 0.01


def hand_over(pairs: list) -> None:
    """`pairs`: (old run, new run, the new run's metrics) of each gadget recompiled by a reload.

    Runs whose programs have no window (a gadget that does not compile through ig's transport,
    or one that failed to start) hand over as they can: the old run is unbound now, the new one
    is bound by the caller, and events in between are not counted."""
    if not pairs:
        return
    windowed = [old.program.is_loaded and new.program.is_loaded for old, new, _ in pairs]
    for (_, new, metrics), exact in zip(pairs, windowed):
        if exact:
            new.bind(metrics)   # its program sends nothing before the instant
    instant = time.monotonic_ns() + LEAD_NS
    for (old, new, _), exact in zip(pairs, windowed):
        if exact:
            old.program.count_until(instant)
            new.program.count_from(instant)
    late_ms = (time.monotonic_ns() - instant) / 1e6
    if any(windowed) and late_ms >= 0:
        log.warning("reload: the hand-over between programs was set %.1f ms late; events in between may "
                    "not be counted", late_ms)
    time.sleep(max(0.0, (instant - time.monotonic_ns()) / 1e9 + SETTLE_S))
    for (old, new, metrics), exact in zip(pairs, windowed):
        if not exact:
            old.bind({})
        for aggregator in metrics.values():
            if isinstance(aggregator, KernelAggregator) and aggregator.attached:
                aggregator.pull(final=True)   # the old program's last counts
        new.attach_kernel_metrics()
