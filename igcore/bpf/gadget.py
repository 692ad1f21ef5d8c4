"""The trace gadget that most plugins are: one BPF program, shipped as package data, emitting
through IG_EMIT. The core compiles it, streams its events through the plugin's `decode`, and
detaches it on stop; the plugin writes the program, the schema and `decode`."""

from __future__ import annotations

import time
from abc import abstractmethod
from importlib import resources

from ..errors import ConfigError
from ..gadgets import GadgetContext, Row, Sink, TraceGadget
from .compiler import compile_program
from .transport import RingBufferTransport


def c_string(raw: bytes) -> str:
    """A fixed-size C char array of an event (comm, a path, a device name) as text."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class RingBufferGadget(TraceGadget):
    """Options (GadgetContext.options): `ringbuf_pages`, a power of two (default: the class's)."""

    program: str = ""          # the BPF C file, in the plugin's own package (e.g. "exec.bpf.c")
    ringbuf_pages: int = 256   # the ring buffer's size in pages: size it for a burst while the reader rests

    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self.bpf = None
        self.transport: RingBufferTransport | None = None
        pages = ctx.options.get("ringbuf_pages", self.ringbuf_pages)
        if not isinstance(pages, int) or pages <= 0 or pages & (pages - 1):
            raise ConfigError(f"trace {self.program.split('.', 1)[0]}: ringbuf_pages must be a power of two, not "
                              f"{pages!r}")
        self.ringbuf_pages = pages
        # Kernel timestamps are boot-time ns (bpf_ktime_get_boot_ns); rows carry wall-clock ns: add this.
        self.boot_to_wall = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def cflags(self) -> list[str]:
        """Compiler flags for the program (sizes, feature switches); extend with super().cflags()."""
        return [f"-DIG_RINGBUF_PAGES={self.ringbuf_pages}"]

    @abstractmethod
    def decode(self, data, size: int) -> Row | None:
        """One raw event as a row of the gadget's columns, or None to skip it."""

    def start(self, sink: Sink) -> None:
        name = self.program.split(".", 1)[0]
        package = type(self).__module__.rpartition(".")[0]
        text = resources.files(package).joinpath(self.program).read_text()
        self.bpf = compile_program(text, self.cflags(), name=name, ctx=self.ctx)
        self.transport = RingBufferTransport(self.bpf, self.decode, self.stats)
        self.transport.start(sink, name=f"ig-gadget-{name}", spawn=self.ctx.spawn)

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.stop()   # drains what the kernel already wrote
            self.transport = None
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
