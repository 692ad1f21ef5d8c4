"""Which build of the kernel reader trace dns takes (docs/config.md, Using trace dns): the kernel's
BTF names BPF_FUNC_loop from 5.17 on; IG_DNS_NO_BPF_LOOP=1 forces the bounded build."""

from __future__ import annotations

import os
import struct

import pytest
from ig_gadget_dns.bpf_loop import FORCE_ENV, VMLINUX_BTF, btf_has_bpf_loop, use_bpf_loop


def btf(strings: bytes) -> bytes:
    """A BTF blob with no types and `strings` as its string table."""
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, len(strings)) + strings


@pytest.mark.skipif(not os.path.exists(VMLINUX_BTF), reason="no kernel BTF")
def test_this_kernel_has_bpf_loop():
    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    assert btf_has_bpf_loop() == (release >= (5, 17))


def test_the_name_must_be_a_whole_string_of_the_string_table(tmp_path):
    cases = {b"\x00BPF_FUNC_loop\x00": True, b"\x00BPF_FUNC_loops\x00": False, b"\x00BPF_FUNC_map\x00": False}
    for strings, expected in cases.items():
        (tmp_path / "btf").write_bytes(btf(strings))
        assert btf_has_bpf_loop(str(tmp_path / "btf")) is expected
    (tmp_path / "btf").write_bytes(b"\x00BPF_FUNC_loop\x00" * 4)   # not BTF
    assert not btf_has_bpf_loop(str(tmp_path / "btf"))
    assert not btf_has_bpf_loop(str(tmp_path / "missing"))


def test_the_environment_forces_the_bounded_build(monkeypatch):
    monkeypatch.setenv(FORCE_ENV, "1")
    assert not use_bpf_loop()
    monkeypatch.setenv(FORCE_ENV, "0")
    assert use_bpf_loop() == btf_has_bpf_loop()
