"""Ring-buffer transport for IG_EMIT: compile, poll in a thread, batch rows, count losses.

bcc is imported lazily so that config checks and unit tests run where bcc is not installed.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from ..errors import RuntimeFailure
from ..gadgets import GadgetStats, Row, Sink
from ..health import loop_errors
from .compiler import on_compiler_thread

include_dir = str(Path(__file__).resolve().parent)

# A decoder turns the raw bytes of one event into a row, or None to skip it.
Decoder = Callable[[ctypes.c_void_p, int], Row | None]
# GadgetContext.spawn: starts a thread the gadget owns.
Spawn = Callable[..., threading.Thread]


class BpfUnavailable(RuntimeFailure):
    """bcc cannot be imported or the kernel refused the program."""


def _import_bcc():
    try:
        import bcc  # Debian's python3-bpfcc
    except ImportError as exc:
        raise BpfUnavailable(
            "bcc's Python module is not importable: install Debian's python3-bpfcc "
            "(run `make run` once to set everything up)"
        ) from exc
    return bcc


_EMIT_INCLUDE = '#include "ig_emit.h"'

# bcc 0.26 cannot compile two programs at once in one process: its front end shares a kernel-symbol
# cache between compilations (a static in b_frontend_action.cc), and two concurrent BPF() calls
# crashed (SIGSEGV/SIGABRT) 20 runs out of 20. Gadgets start in parallel threads; their compiles
# take turns on the compiler thread (igcore.bpf.compiler), and the lock keeps memory release out.
_compile_lock = threading.Lock()
# Programs compile_early began, by (text, cflags): the next compile_program of the same takes it.
_early: dict[tuple[str, tuple[str, ...]], Future] = {}


def compile_early(text: str, cflags: list[str] | None = None, name: str = "gadget") -> None:
    """Begin compiling (and attaching) `text` now, while ig still loads in Python (bcc compiles on
    its own thread, without the GIL); the next `compile_program(text, cflags)` takes this one
    instead of compiling again, and raises what it raised."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(_compile(text, cflags, name, None))
        except BaseException as exc:  # handed to compile_program's caller
            future.set_exception(exc)

    _early[(text, tuple(cflags or ()))] = future
    threading.Thread(target=run, name=f"ig-compile-early {name}", daemon=True).start()


def with_transport(text: str, generated: str = "") -> str:
    """Inline ig_emit.h where the program includes it (or at the top), after `generated` (the C of
    the metrics aggregated in the kernel, which defines IG_KERNEL_METRICS_UPDATE and its maps).

    bcc rewrites map calls such as `ig_events.ringbuf_output(...)` only in the main source file, so
    the header must be part of the program text, not an #include that clang resolves.
    """
    header = generated + "".join((Path(include_dir) / name).read_text() for name in ("ig_helpers.h", "ig_emit.h"))
    if _EMIT_INCLUDE in text:
        return text.replace(_EMIT_INCLUDE, header, 1)
    return header + text


def compile_program(text: str, cflags: list[str] | None = None, name: str = "gadget", kernel=None):
    """Compile and load `text` (which includes "ig_emit.h"); tracepoints attach automatically.

    `kernel`: the gadget context's `kernel` (metrics aggregated in the program and its counting
    window), or None.
    """
    early = _early.pop((text, tuple(cflags or ())), None) if kernel is None else None
    if early is not None:
        return early.result()
    return _compile(text, cflags, name, kernel)


def _compile(text: str, cflags: list[str] | None, name: str, kernel):
    if os.geteuid() != 0:
        raise BpfUnavailable(f"loading the {name} gadget's eBPF program needs root (run ig as root)")
    bcc = _import_bcc()
    flags = [f"-I{include_dir}", *(cflags or [])]
    generated = ""
    if kernel is not None:
        generated = kernel.c_code()
        flags.extend(kernel.cflags())
    source = with_transport(text, generated).encode()

    def compile_it():
        with _compile_lock:
            return bcc.BPF(text=source, cflags=flags)

    try:
        bpf = on_compiler_thread(compile_it)
    except Exception as exc:
        raise BpfUnavailable(f"the kernel or bcc refused the {name} gadget's eBPF program: {exc}") from exc
    if kernel is not None:
        kernel.loaded(bpf)   # the core reads its maps from here on
    return bpf


class RingBufferTransport:
    """Reads `ig_events` of a loaded program in a thread and hands rows to a sink in batches.

    Batching keeps the per-event Python work to the decoder; the sink is called once per poll.
    After each poll the reader rests `batch_ms` (or until stop): the kernel wakes the reader on
    every record, and a busy gadget would otherwise pay one wakeup and one sink call per event
    (measured by bench/exec_storm: 25 us of reader CPU per event without the rest, 5 us with 10 ms).
    """

    def __init__(self, bpf, decode: Decoder, stats: GadgetStats, poll_ms: int = 100, batch_ms: int = 10):
        self.bpf, self.decode, self.stats = bpf, decode, stats
        self.poll_ms = poll_ms
        self.batch_ms = batch_ms
        self._batch: list[Row] = []
        self._sink: Sink | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gadget = ""

    def _on_event(self, _ctx, data, size) -> int:
        try:
            row = self.decode(data, size)
        except Exception:
            self.stats.decode_errors += 1
            return 0
        if row is not None:
            self._batch.append(row)
        return 0

    def start(self, sink: Sink, name: str = "ig-transport", spawn: Spawn | None = None) -> None:
        """`spawn`: the gadget context's, so that the reader is one of the gadget's watched threads
        (docs/plugins.md, Your threads); without it (the core's own cgroup watch) nothing watches it."""
        self._sink = sink
        # The core's sink carries the gadget's name; a plain callable (a test's) is named by the thread.
        self._gadget = getattr(sink, "gadget", name)
        self.bpf[b"ig_events"].open_ring_buffer(self._on_event)
        if spawn is None:
            self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
            self._thread.start()
        else:
            self._thread = spawn(self._loop, name=name)

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self.stats.events_received += len(batch)
            if self._sink is not None:   # set by start(), before the reader runs
                self._sink(batch)
        self.stats.events_lost = self.lost()
        # Read cycles completed, exposed as ig_gadget_reader_cycles_total: a reader that stalls shows
        # as a flat line, and two more polls prove that every event emitted before was delivered.
        self.stats.extra["reader_cycles"] = self.stats.extra.get("reader_cycles", 0) + 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.bpf.ring_buffer_poll(self.poll_ms)
                self._flush()
            except Exception as exc:  # a sink or decode failure: count it and keep reading
                loop_errors.record("transport", exc, gadget=self._gadget)
            if self.batch_ms:
                self._stop.wait(self.batch_ms / 1000)
        # Drain what the kernel wrote before detach, so nothing seen is lost on stop.
        try:
            self.bpf.ring_buffer_consume()
            self._flush()
        except Exception as exc:
            loop_errors.record("transport", exc, gadget=self._gadget)

    def lost(self) -> int:
        table = self.bpf[b"ig_lost"]
        return int(sum(table[ctypes.c_int(0)]))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
