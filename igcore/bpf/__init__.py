"""The core's BPF transport: compiles a gadget's program with ig_emit.h and streams its events."""

from .gadget import RingBufferGadget, c_string
from .transport import BpfUnavailable, RingBufferTransport, compile_program, include_dir

__all__ = ["BpfUnavailable", "RingBufferGadget", "RingBufferTransport", "c_string", "compile_program", "include_dir"]
