"""The trace gadget that most plugins are: one BPF program, shipped as package data, emitting
through IG_EMIT. The core compiles it, streams its events through the plugin's `decode`, and
detaches it on stop; the plugin writes the program, the schema and `decode`."""

from __future__ import annotations

from abc import abstractmethod
from importlib import resources

from ..gadgets import GadgetContext, Row, Sink, TraceGadget
from .transport import RingBufferTransport, compile_program


class RingBufferGadget(TraceGadget):
    program: str = ""   # the BPF C file, in the plugin's own package (e.g. "exec.bpf.c")

    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self.bpf = None
        self.transport: RingBufferTransport | None = None

    def cflags(self) -> list[str]:
        """Compiler flags for the program (sizes, feature switches)."""
        return []

    @abstractmethod
    def decode(self, data, size: int) -> Row | None:
        """One raw event as a row of the gadget's columns, or None to skip it."""

    def start(self, sink: Sink) -> None:
        name = self.program.split(".", 1)[0]
        package = type(self).__module__.rpartition(".")[0]
        text = resources.files(package).joinpath(self.program).read_text()
        self.bpf = compile_program(text, self.cflags(), name=name)
        self.transport = RingBufferTransport(self.bpf, self.decode, self.stats)
        self.transport.start(sink, name=f"ig-gadget-{name}")

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.stop()   # drains what the kernel already wrote
            self.transport = None
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
