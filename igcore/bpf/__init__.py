"""The core's BPF side: the compiler of gadgets' programs (with ig_emit.h) and the ring-buffer transport."""

from .compiler import BpfUnavailable, Compiler, compile_program
from .gadget import RingBufferGadget, c_string
from .source import include_dir
from .transport import RingBufferTransport

__all__ = ["BpfUnavailable", "Compiler", "RingBufferGadget", "RingBufferTransport", "c_string", "compile_program",
           "include_dir"]
