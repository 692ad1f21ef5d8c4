"""One copy of the socket filter per network namespace, each stamping its events with its slot.

A socket filter cannot tell which socket runs it (bpf_get_socket_cookie gives the packet's own
socket, not ours), so each namespace's socket gets the same compiled program with one immediate
value, IG_NETNS_SLOT, replaced by that namespace's slot number. The copies share every map.

The program reads messages with bpf_loop, whose callback bcc compiles as a function of its own and
does not link: it is appended here after the program's instructions, each load of its address (a
64-bit immediate bcc leaves 0) made to point at it, and the program loaded through libbpf with the
BTF function records the kernel asks of a program with a callback (as libbpf's linker would do).
The build without bpf_loop (older kernels) has no callback: its copies are loaded as they are.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct

MAGIC = 0x1EC0FFEE
_INSN = 8
_LD_IMM64 = 0x18
_PSEUDO_FUNC = 4          # src_reg of a 64-bit immediate that is a subprogram's address
_CALL, _BPF_LOOP = 0x85, 181
_SOCKET_FILTER = 1
_BTF_INT_SIGNED, _BTF_FUNC_STATIC = 1, 0
_LOG_SIZE = 1 << 20


class _LoadOpts(ctypes.Structure):
    """libbpf's struct bpf_prog_load_opts, as far as the fields used here."""
    _fields_ = [("sz", ctypes.c_size_t), ("attempts", ctypes.c_int), ("expected_attach_type", ctypes.c_uint),
                ("prog_btf_fd", ctypes.c_uint), ("prog_flags", ctypes.c_uint), ("prog_ifindex", ctypes.c_uint),
                ("kern_version", ctypes.c_uint), ("attach_btf_id", ctypes.c_uint), ("attach_prog_fd", ctypes.c_uint),
                ("attach_btf_obj_fd", ctypes.c_uint), ("fd_array", ctypes.c_void_p), ("func_info", ctypes.c_void_p),
                ("func_info_cnt", ctypes.c_uint), ("func_info_rec_size", ctypes.c_uint),
                ("line_info", ctypes.c_void_p), ("line_info_cnt", ctypes.c_uint),
                ("line_info_rec_size", ctypes.c_uint), ("log_level", ctypes.c_uint), ("log_size", ctypes.c_uint),
                ("log_buf", ctypes.c_char_p)]


@functools.cache
def _libbpf():
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    lib.btf__new_empty.restype = ctypes.c_void_p
    for name in ("btf__add_int", "btf__add_func_proto", "btf__add_func", "btf__load_into_kernel", "btf__fd"):
        getattr(lib, name).restype = ctypes.c_int
    lib.btf__add_int.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    lib.btf__add_func_proto.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.btf__add_func.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    lib.btf__load_into_kernel.argtypes = [ctypes.c_void_p]
    lib.btf__fd.argtypes = [ctypes.c_void_p]
    lib.bpf_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
                                  ctypes.POINTER(_LoadOpts)]
    return lib


def _instructions(bpf, func_name: bytes) -> bytearray:
    from bcc import lib

    start = lib.bpf_function_start(bpf.module, func_name)
    if not start:
        raise RuntimeError(f"no BPF function {func_name!r}")
    return bytearray(ctypes.string_at(start, lib.bpf_function_size(bpf.module, func_name)))


def _link_callback(insns: bytearray, callback: bytes) -> bytearray:
    """`insns` with `callback` after them, and each bpf_loop's callback argument pointing at it."""
    count = len(insns) // _INSN
    linked = 0
    for index in range(count - 1):
        at = index * _INSN
        if insns[at] != _LD_IMM64 or insns[at + 1] != 2 or insns[at + 4:at + 8] != bytes(4):
            continue   # not `r2 = 0 ll` (bpf_loop's second argument)
        follows = range(index + 2, min(count, index + 8))
        if not any(insns[i * _INSN] == _CALL and struct.unpack_from("<i", insns, i * _INSN + 4)[0] == _BPF_LOOP
                   for i in follows):
            continue
        insns[at + 1] = (_PSEUDO_FUNC << 4) | 2
        struct.pack_into("<i", insns, at + 4, count - (index + 1))
        linked += 1
    if not linked:
        raise RuntimeError("no bpf_loop callback to link in the compiled program")
    return insns + callback


class CallbackBtf:
    """The BTF of two functions (the program and its callback), loaded once, shared by every copy."""

    def __init__(self) -> None:
        self._lib = _libbpf()
        btf = self._lib.btf__new_empty()
        long_id = self._lib.btf__add_int(btf, b"long", 8, _BTF_INT_SIGNED)
        proto = self._lib.btf__add_func_proto(btf, long_id)
        self.program_id = self._lib.btf__add_func(btf, b"program", _BTF_FUNC_STATIC, proto)
        self.callback_id = self._lib.btf__add_func(btf, b"callback", _BTF_FUNC_STATIC, proto)
        if min(long_id, proto, self.program_id, self.callback_id) < 0 or self._lib.btf__load_into_kernel(btf):
            raise OSError(ctypes.get_errno(), "loading the DNS socket filter's BTF")
        self.fd = self._lib.btf__fd(btf)
        self._btf = btf   # owns fd: kept as long as programs may be loaded

    def load(self, name: bytes, insns: bytes | bytearray, callback_at: int) -> int:
        records = struct.pack("<IIII", 0, self.program_id, callback_at, self.callback_id)
        return load_socket_filter(self._lib, name, insns, prog_btf_fd=self.fd, func_info=ctypes.cast(
            ctypes.c_char_p(records), ctypes.c_void_p), func_info_cnt=2, func_info_rec_size=8)


def load_socket_filter(lib, name: bytes, insns: bytes | bytearray, **opts_fields) -> int:
    """The fd of the socket filter `insns`; the verifier's last lines in the error if it refuses."""
    buffer = ctypes.create_string_buffer(bytes(insns), len(insns))
    for log_level in (0, 1):   # the verifier's log only to explain a refusal
        log = ctypes.create_string_buffer(_LOG_SIZE) if log_level else None
        opts = _LoadOpts(sz=ctypes.sizeof(_LoadOpts), log_level=log_level, log_size=_LOG_SIZE if log else 0,
                         log_buf=ctypes.cast(log, ctypes.c_char_p) if log else None, **opts_fields)
        fd = lib.bpf_prog_load(_SOCKET_FILTER, name[:15], b"GPL", buffer, len(insns) // _INSN, ctypes.byref(opts))
        if fd >= 0:
            return fd
    err = -fd if fd < 0 else ctypes.get_errno()
    tail = log.value.decode(errors="replace").strip().splitlines()[-3:] if log else []
    raise OSError(err, f"loading the DNS socket filter: {os.strerror(err)} ({' / '.join(tail)})")


def load_with_slot(bpf, func_name: bytes, slot: int, callback_name: bytes | None, btf: CallbackBtf | None) -> int:
    """The fd of a socket-filter program: `func_name` of `bpf` with IG_NETNS_SLOT set to `slot` and
    `callback_name`, its bpf_loop callback, linked after it (None for the build without bpf_loop,
    which has no callback and needs no BTF)."""
    insns = _instructions(bpf, func_name)
    magic, patched = struct.pack("<I", MAGIC), 0
    for offset in range(0, len(insns), _INSN):
        if insns[offset + 4:offset + 8] == magic:   # the 32-bit immediate of an instruction
            insns[offset + 4:offset + 8] = struct.pack("<I", slot)
            patched += 1
    if not patched:
        raise RuntimeError("IG_NETNS_SLOT not found in the compiled program")
    if callback_name is None or btf is None:
        return load_socket_filter(_libbpf(), func_name, insns)
    callback_at = len(insns) // _INSN
    linked = _link_callback(insns, bytes(_instructions(bpf, callback_name)))
    return btf.load(func_name, linked, callback_at)
