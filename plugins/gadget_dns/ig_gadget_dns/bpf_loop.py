"""Which build of the DNS reader this kernel takes: with bpf_loop (Linux 5.17 and later), or the
bounded loops of DNS_NO_BPF_LOOP (docs/config.md, Using trace dns: "Bounded work per packet").

The kernel's own BTF says whether it has the helper: its string table holds the name of every
enumerator of `enum bpf_func_id`, `BPF_FUNC_loop` among them from 5.17 on. This reads the kernel's
description instead of loading a program and interpreting the verifier's refusal. A kernel without
BTF gets the bounded build, which loads everywhere from 5.8 on.
"""

from __future__ import annotations

import os
import struct

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
FORCE_ENV = "IG_DNS_NO_BPF_LOOP"   # "1": the bounded build even where bpf_loop exists (tests, benches)
_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")   # struct btf_header: magic, version, flags, hdr_len, type_off/len, str_off/len
_NAME = b"\x00BPF_FUNC_loop\x00"


def btf_has_bpf_loop(path: str = VMLINUX_BTF) -> bool:
    """Whether the BTF at `path` names BPF_FUNC_loop; False when it cannot be read."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return False
    if len(raw) < _HEADER.size:
        return False
    magic, _version, _flags, hdr_len, _type_off, _type_len, str_off, str_len = _HEADER.unpack_from(raw)
    if magic != _MAGIC:
        return False
    strings = raw[hdr_len + str_off:hdr_len + str_off + str_len]
    return _NAME in strings


def use_bpf_loop() -> bool:
    """Read once when the gadget starts: the bpf_loop build unless the kernel lacks it or
    IG_DNS_NO_BPF_LOOP=1 asks for the bounded one."""
    if os.environ.get(FORCE_ENV, "") == "1":
        return False
    return btf_has_bpf_loop()
