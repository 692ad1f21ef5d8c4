"""Gadgets `trace synth` and `snapshot synth`, registered only when IG_TEST_GADGETS=1.

trace synth: tails the JSON-lines file named by IG_SYNTHETIC_FEED; each line is a row (missing
columns take their defaults). snapshot synth: returns the JSON list in IG_SYNTHETIC_SNAPSHOT,
after sleeping IG_SYNTHETIC_SNAPSHOT_DELAY seconds (to make concurrent scrapes overlap).
"""

from __future__ import annotations

import json
import os
import threading
import time

from igcore.api import Column, GadgetContext, Kind, Schema, SnapshotGadget, TraceGadget, hookimpl

TRACE_SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id"),
    Column("uid", Kind.UINT, "user id"),
    Column("comm", Kind.STR, "command", aliases=("command",)),
    Column("latency", Kind.INT, "latency in ns"),
    Column("ratio", Kind.FLOAT, "a float"),
    Column("ok", Kind.BOOL, "a boolean"),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id", hidden=True),
])
SNAPSHOT_SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id"),
    Column("comm", Kind.STR, "command"),
    Column("size", Kind.INT, "a size"),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id", hidden=True),
])


class SynthTrace(TraceGadget):
    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self.path = os.environ.get("IG_SYNTHETIC_FEED", "")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink) -> None:
        self._thread = self.ctx.spawn(self._tail, name="synth-reader", args=(sink,))

    def _tail(self, sink) -> None:
        defaults = TRACE_SCHEMA.defaults()
        offset = 0
        while not self._stop.wait(0.02):
            try:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            end = data.rfind(b"\n") + 1  # only whole lines
            if end:
                offset += end
                rows = [{**defaults, **json.loads(line)} for line in data[:end].splitlines() if line.strip()]
                self.stats.events_received += len(rows)
                sink(rows)
            # as the ring-buffer transport does: a cycle is counted once its rows reached the sink
            self.stats.extra["reader_cycles"] = self.stats.extra.get("reader_cycles", 0) + 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


class SynthSnapshot(SnapshotGadget):
    def snapshot(self) -> list[dict]:
        time.sleep(float(os.environ.get("IG_SYNTHETIC_SNAPSHOT_DELAY", "0")))
        with open(os.environ["IG_SYNTHETIC_SNAPSHOT"]) as f:
            rows = json.load(f)
        defaults = SNAPSHOT_SCHEMA.defaults()
        return [{**defaults, **row} for row in rows]


@hookimpl
def ig_register_gadgets(register) -> None:
    if os.environ.get("IG_TEST_GADGETS") != "1":
        return
    register(category="trace", name="synth", description="rows from a test's JSON-lines file",
             columns=TRACE_SCHEMA, factory=SynthTrace)
    register(category="snapshot", name="synth", description="rows from a test's JSON file",
             columns=SNAPSHOT_SCHEMA, factory=SynthSnapshot)
