"""Where the members of kernel structs lie in the running kernel, read from its BTF.

The task iterator (task_iter.py) reads task_struct and what hangs off it. bcc would take the
layout from the kernel headers it compiles against, and those need not be the running kernel's
(on this machine they are not: the verifier refused task->pid at the headers' offset). The
kernel's own type information, /sys/kernel/btf/vmlinux, is always its layout: the program gets
each offset from here as a number (a -D flag), never a name or a type.
"""

from __future__ import annotations

import struct
from array import array

VMLINUX = "/sys/kernel/btf/vmlinux"
BTF_MAGIC = 0xEB9F
KIND_STRUCT, KIND_UNION = 4, 5
# Words (4 bytes) of each type record, by kind (the kernel's include/uapi/linux/btf.h): the 12-byte
# header, what follows it whatever the kind (int, array, var, decl_tag), and what follows per member
# (struct, union, enum, func_proto, datasec, enum64). Every record is a whole number of words.
_WORDS = [3] * 32
_PER_MEMBER = [0] * 32
for _kind, _bytes in {1: 4, 3: 12, 14: 4, 17: 4}.items():
    _WORDS[_kind] += _bytes // 4
for _kind, _bytes in {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}.items():
    _PER_MEMBER[_kind] = _bytes // 4


class LayoutUnknown(Exception):
    """The kernel has no BTF, or it lacks a struct or member the iterator reads."""


class KernelLayout:
    """Byte offsets of struct members: `offset("task_struct", "pid")`."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise LayoutUnknown(f"{VMLINUX} is too short to be BTF")
        magic, _, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
        if magic != BTF_MAGIC:
            raise LayoutUnknown(f"{VMLINUX} is not BTF (magic {magic:#x})")
        if type_off % 4 or type_len % 4 or hdr_len % 4:
            raise LayoutUnknown(f"{VMLINUX}'s type records are not word-aligned")
        self._data = data
        self._strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        # One pass over the 100,000-odd records, as words (a struct per record took 0.13 s here, this
        # takes a fifth of it): where each type's record starts, by type id (0 is void), and the
        # first struct of each name, by the name's offset among the strings.
        start = hdr_len + type_off
        words = memoryview(data)[start:start + type_len].cast("I")
        records = array("Q", [0])
        structs: dict[int, int] = {}
        append, words_of, per_member = records.append, _WORDS, _PER_MEMBER
        at, end = 0, len(words)
        while at < end:
            info = words[at + 1]
            kind = (info >> 24) & 0x1F
            if kind == KIND_STRUCT and words[at] and words[at] not in structs:
                structs[words[at]] = len(records)
            append(start + 4 * at)
            at += words_of[kind] + per_member[kind] * (info & 0xFFFF)
        self._records = records
        self._structs = structs

    def _struct_id(self, name: bytes) -> int | None:
        at = self._strings.find(b"\0" + name + b"\0")   # BTF keeps each string once
        return None if at < 0 else self._structs.get(at + 1)

    def _info(self, type_id: int) -> int:
        return struct.unpack_from("<I", self._data, self._records[type_id] + 4)[0]

    def _name(self, off: int) -> bytes:
        return self._strings[off:self._strings.index(b"\0", off)]

    def offset(self, struct_name: str, member: str) -> int:
        type_id = self._struct_id(struct_name.encode())
        if type_id is None:
            raise LayoutUnknown(f"the kernel's BTF has no struct {struct_name}")
        found = self._find(type_id, member.encode(), 0)
        if found is None:
            raise LayoutUnknown(f"the kernel's struct {struct_name} has no member {member}")
        return found // 8

    def _find(self, type_id: int, member: bytes, base_bits: int) -> int | None:
        """Bit offset of `member`, looking into anonymous structs and unions (task_struct has them)."""
        info = self._info(type_id)
        first = self._records[type_id] + 12
        bitfield_offsets = info >> 31   # kflag: the low 24 bits are the offset
        for i in range(info & 0xFFFF):
            name_off, member_type, offset = struct.unpack_from("<III", self._data, first + 12 * i)
            bits = base_bits + (offset & 0xFFFFFF if bitfield_offsets else offset)
            if name_off == 0:
                kind = (self._info(member_type) >> 24) & 0x1F
                if kind in (KIND_STRUCT, KIND_UNION):
                    found = self._find(member_type, member, bits)
                    if found is not None:
                        return found
            elif self._name(name_off) == member:
                return bits
        return None


def running_kernel() -> KernelLayout:
    """The running kernel's layout (a few MB while it lives: keep what it answers, not it)."""
    try:
        with open(VMLINUX, "rb") as f:
            return KernelLayout(f.read())
    except OSError as exc:
        raise LayoutUnknown(f"cannot read {VMLINUX}: {exc.strerror}") from exc
