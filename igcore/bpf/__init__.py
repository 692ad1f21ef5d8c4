"""The core's BPF transport: compiles a gadget's program with ig_emit.h and streams its events."""

from .gadget import RingBufferGadget
from .transport import BpfUnavailable, RingBufferTransport, compile_program, include_dir

__all__ = ["BpfUnavailable", "RingBufferGadget", "RingBufferTransport", "compile_program", "include_dir"]
