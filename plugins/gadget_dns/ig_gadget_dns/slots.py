"""One copy of the socket filter per network namespace, each stamping its events with its slot.

A socket filter cannot tell which socket runs it (bpf_get_socket_cookie gives the packet's own
socket, not ours), so each namespace's socket gets the same compiled program with one immediate
value, IG_NETNS_SLOT, replaced by that namespace's slot number. The copies share every map.
"""

from __future__ import annotations

import ctypes
import os
import struct

MAGIC = 0x1EC0FFEE
_INSN = 8


def load_with_slot(bpf, func_name: bytes, slot: int) -> int:
    """The fd of a socket-filter program: `func_name` of `bpf` with IG_NETNS_SLOT set to `slot`."""
    from bcc import BPF, lib

    start = lib.bpf_function_start(bpf.module, func_name)
    size = lib.bpf_function_size(bpf.module, func_name)
    if not start:
        raise RuntimeError(f"no BPF function {func_name!r}")
    insns = bytearray(ctypes.string_at(start, size))
    magic, patched = struct.pack("<I", MAGIC), 0
    for offset in range(0, size, _INSN):
        if insns[offset + 4:offset + 8] == magic:   # the 32-bit immediate of an instruction
            insns[offset + 4:offset + 8] = struct.pack("<I", slot)
            patched += 1
    if not patched:
        raise RuntimeError("IG_NETNS_SLOT not found in the compiled program")
    buffer = (ctypes.c_ubyte * size).from_buffer(insns)
    fd = lib.bcc_func_load(bpf.module, BPF.SOCKET_FILTER, func_name, ctypes.addressof(buffer), size,
                           lib.bpf_module_license(bpf.module), lib.bpf_module_kern_version(bpf.module),
                           0, None, 0, None, 0xFFFFFFFF)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"loading the DNS socket filter: {os.strerror(err)}")
    return fd
