"""The ring-buffer transport's reader survives a failing sink: counted, and the next events still arrive."""

from __future__ import annotations

import ctypes
import subprocess
import threading

from igcore.bpf import Compiler, RingBufferTransport
from igcore.gadgets import GadgetStats
from igcore.health import loop_errors

PROGRAM = """
#include "ig_emit.h"
struct event { u32 pid; char comm[16]; };
TRACEPOINT_PROBE(sched, sched_process_exit) {
    struct event ev = {};
    ev.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(ev.comm, sizeof(ev.comm));
    IG_EMIT(args, &ev);
    return 0;
}
"""


class Event(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("comm", ctypes.c_char * 16)]


def decode(data, size):
    ev = ctypes.cast(data, ctypes.POINTER(Event)).contents
    return {"pid": ev.pid, "comm": ev.comm.decode(errors="replace")}


class FailingOnceSink:
    """Raises on its first batch, then collects; named like the core's sink so the error names it."""

    gadget = "trace transport-test"

    def __init__(self) -> None:
        self.calls, self.rows, self.got = 0, [], threading.Event()

    def __call__(self, rows) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("sink failure on purpose")
        self.rows.extend(rows)
        if any(r["comm"] == "ig-after-fail" for r in self.rows):
            self.got.set()


def test_reader_keeps_reading_after_the_sink_raises(require_bpf, tmp_path):
    before = loop_errors.counts().get(("transport", FailingOnceSink.gadget), 0)
    bpf = Compiler().compile(PROGRAM, name="transport-test")
    sink = FailingOnceSink()
    transport = RingBufferTransport(bpf, decode, GadgetStats(), batch_ms=0)
    transport.start(sink)
    try:
        first = tmp_path / "ig-before-fail"
        first.symlink_to("/bin/true")
        # exits keep coming (this machine is busy) until the first batch has failed
        while sink.calls == 0:
            subprocess.run([str(first)], check=True)
        probe = tmp_path / "ig-after-fail"
        probe.symlink_to("/bin/true")
        subprocess.run([str(probe)], check=True)
        assert sink.got.wait(10), "no event reached the sink after its failure: the reader died"
    finally:
        transport.stop()
        bpf.cleanup()
    assert loop_errors.counts()[("transport", FailingOnceSink.gadget)] == before + 1
