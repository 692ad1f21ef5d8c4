"""Gadgets `trace misbehaving` and `snapshot misbehaving`, registered only when IG_TEST_GADGETS=1.

They hand the core exactly what the test asks for, with no defaults filled in, to show what the
core does with a gadget that breaks its contract. Behaviour, by environment variable:

trace misbehaving
- IG_MISBEHAVING_BATCHES: a directory; each `*.json` file written there (atomically, by rename) is
  one batch, handed to the sink in name order as is: a JSON list of rows (Python's json reads `NaN`
  and `Infinity`). A file holding `{"__die__": "why"}` makes the reader thread raise
  RuntimeError(why), so the thread dies.
- IG_MISBEHAVING_START=raise: `start()` starts its reader thread, then raises.
- IG_MISBEHAVING_START=exit: likewise, raising SystemExit(3).
- IG_MISBEHAVING_START=hang: `start()` never returns.
- IG_MISBEHAVING_START_MARK: a file `start()` appends "starting" to first (shows it was called).
- IG_MISBEHAVING_START_GATE: a path; `start()` waits until it exists (a start that lasts until the
  test lets it finish).
- IG_MISBEHAVING_STOP_MARK: a file `stop()` appends "stopped" to (shows stop() was called).
- IG_MISBEHAVING_STOP_SLEEP: seconds `stop()` sleeps before it returns.
- IG_MISBEHAVING_START_BARRIER=N: `start()` waits until N gadgets of this plugin are starting at
  once (a threading.Barrier shared by both gadgets, IG_MISBEHAVING_BARRIER_TIMEOUT seconds, default
  20); if they never are, it raises and the gadget fails to start.

trace misbehaving_kernel
- a real eBPF program (kernel.bpf.c, one event per exec) whose schema declares a kernel column with
  a C expression that does not compile: a metric reading it cannot be computed in the kernel.

snapshot misbehaving
- IG_MISBEHAVING_START_BARRIER: as above, in its constructor (a snapshot gadget's start).
- IG_MISBEHAVING_SNAPSHOT_START_ERROR: its constructor raises RuntimeError with this text.
- IG_MISBEHAVING_SNAPSHOT: a JSON file with the list of rows `snapshot()` returns, as is.
- IG_MISBEHAVING_SNAPSHOT_SLEEP: seconds `snapshot()` sleeps first (a hanging gadget).
- IG_MISBEHAVING_SNAPSHOT_RAISE=1: `snapshot()` raises.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import ctypes

from igcore.api import (Column, GadgetContext, KernelField, Kind, RingBufferGadget, Schema, SnapshotGadget, TraceGadget,
                        c_string, hookimpl)

# Each kind once, so every way a value can break its column's kind has a column to do it in.
TRACE_SCHEMA = Schema.with_container_columns([
    Column("comm", Kind.STR, "a str column"),
    Column("pid", Kind.INT, "an int column"),
    Column("uid", Kind.UINT, "a uint column (a label in the tests)"),
    Column("ratio", Kind.FLOAT, "a float column (a counter's field in the tests)"),
    Column("cgroup_id", Kind.UINT, "the container key", hidden=True),
])
SNAPSHOT_SCHEMA = Schema.with_container_columns([
    Column("comm", Kind.STR, "a str column"),
    Column("size", Kind.INT, "an int column (a gauge's field and a selector's in the tests)"),
    Column("cgroup_id", Kind.UINT, "the container key", hidden=True),
])


def _seconds(name: str) -> float:
    return float(os.environ.get(name, "0") or 0)


_barrier: threading.Barrier | None = None
_barrier_lock = threading.Lock()


def _meet_at_start_barrier() -> None:
    """Block until IG_MISBEHAVING_START_BARRIER gadgets of this plugin are starting at once."""
    global _barrier
    parties = int(os.environ.get("IG_MISBEHAVING_START_BARRIER", "0") or 0)
    if parties <= 1:
        return
    with _barrier_lock:
        if _barrier is None:
            _barrier = threading.Barrier(parties, timeout=float(os.environ.get("IG_MISBEHAVING_BARRIER_TIMEOUT", "20")))
    try:
        _barrier.wait()
    except threading.BrokenBarrierError:
        raise RuntimeError(f"start barrier: {parties} gadgets were never starting at the same time") from None


class MisbehavingTrace(TraceGadget):
    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self.batches = os.environ.get("IG_MISBEHAVING_BATCHES", "")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink) -> None:
        mark = os.environ.get("IG_MISBEHAVING_START_MARK")
        if mark:
            with open(mark, "a") as f:
                f.write("starting\n")
        _meet_at_start_barrier()
        if os.environ.get("IG_MISBEHAVING_START") == "hang":
            threading.Event().wait()
        gate = os.environ.get("IG_MISBEHAVING_START_GATE")
        while gate and not os.path.exists(gate):
            time.sleep(0.02)
        self._thread = self.ctx.spawn(self._tail, name="misbehaving-reader", args=(sink,))
        if os.environ.get("IG_MISBEHAVING_START") == "raise":
            raise RuntimeError("start failure requested by IG_MISBEHAVING_START=raise")
        if os.environ.get("IG_MISBEHAVING_START") == "exit":
            raise SystemExit(3)

    def _tail(self, sink) -> None:
        """Each file of the batch directory, in name order, is one batch: a JSON list of rows."""
        done: set[str] = set()
        while not self._stop.wait(0.02):
            try:
                names = sorted(n for n in os.listdir(self.batches) if n.endswith(".json") and n not in done)
            except FileNotFoundError:
                continue
            for name in names:
                done.add(name)
                rows = json.loads((Path(self.batches) / name).read_text())
                if isinstance(rows, dict) and "__die__" in rows:
                    raise RuntimeError(rows["__die__"])
                self.stats.events_received += len(rows)
                sink(rows)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        mark = os.environ.get("IG_MISBEHAVING_STOP_MARK")
        if mark:
            with open(mark, "a") as f:
                f.write("stopped\n")
        time.sleep(_seconds("IG_MISBEHAVING_STOP_SLEEP"))


class MisbehavingSnapshot(SnapshotGadget):
    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        _meet_at_start_barrier()
        error = os.environ.get("IG_MISBEHAVING_SNAPSHOT_START_ERROR")
        if error:
            raise RuntimeError(error)

    def snapshot(self) -> list:
        time.sleep(_seconds("IG_MISBEHAVING_SNAPSHOT_SLEEP"))
        if os.environ.get("IG_MISBEHAVING_SNAPSHOT_RAISE") == "1":
            raise RuntimeError("snapshot failure requested by IG_MISBEHAVING_SNAPSHOT_RAISE=1")
        with open(os.environ["IG_MISBEHAVING_SNAPSHOT"]) as f:
            return json.load(f)

    def close(self) -> None:
        time.sleep(_seconds("IG_MISBEHAVING_STOP_SLEEP"))


KERNEL_SCHEMA = Schema.with_container_columns([
    Column("comm", Kind.STR, "the new program's name", kernel=KernelField("e->comm", "char[16]")),
    Column("cgroup_id", Kind.UINT, "the container key", kernel=KernelField("e->cgroup_id", "u64"), hidden=True),
    Column("broken", Kind.INT, "declared in the kernel with an expression that does not compile",
           kernel=KernelField("e->no_such_field", "u32")),
])


class MisbehavingKernel(RingBufferGadget):
    program = "kernel.bpf.c"

    def decode(self, data, size: int) -> dict:
        raw = ctypes.string_at(data, size)
        return {"cgroup_id": int.from_bytes(raw[:8], "little"), "comm": c_string(raw[8:24]), "broken": 0}


@hookimpl
def ig_register_gadgets(register) -> None:
    if os.environ.get("IG_TEST_GADGETS") != "1":
        return
    register(category="trace", name="misbehaving", description="batches of rows exactly as a test's JSON files have them",
             columns=TRACE_SCHEMA, factory=MisbehavingTrace)
    register(category="trace", name="misbehaving_kernel", description="execs, with a kernel column that does not compile",
             columns=KERNEL_SCHEMA, factory=MisbehavingKernel)
    register(category="snapshot", name="misbehaving", description="rows exactly as a test's JSON file has them",
             columns=SNAPSHOT_SCHEMA, factory=MisbehavingSnapshot)
