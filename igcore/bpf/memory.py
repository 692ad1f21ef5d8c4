"""Give back the memory the compiler leaves behind once the gadgets' programs are loaded.

Measured with bench/startup and /proc/<pid>/smaps after the four gadgets of
tools/monitoring/ig-config.yaml started (bcc 0.26, LLVM 14):
- glibc's heap kept 42 of its 53 MB after clang and LLVM freed their ASTs and modules: free chunks
  that glibc does not return by itself. `malloc_trim(0)` returns them.
- libLLVM and libclang-cpp had 72 MB of their code and read-only data mapped, used only while a
  program compiles. Those pages are clean copies of the library files: dropping them from ig's
  mappings (MADV_DONTNEED) costs nothing, and the next compile (a reload) maps them back from the
  page cache. Pages a mapping wrote (relocations) are anonymous and stay.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re

log = logging.getLogger("igcore.bpf")

MADV_DONTNEED = 4
COMPILER_LIBRARIES = ("libLLVM", "libclang-cpp", "libclang.so")
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


def _libc():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def clean_compiler_mappings(smaps: str) -> list[tuple[int, int]]:
    """(start, end) of each mapping of a compiler library that is read-only and holds no anonymous
    (written) page, from the text of /proc/self/smaps: dropping those loses nothing."""
    found, current = [], None
    for line in smaps.splitlines():
        mapping = _MAPPING.match(line)
        if mapping:
            start, end, perms, path = mapping.groups()
            current = None
            if "w" not in perms and any(name in path for name in COMPILER_LIBRARIES):
                current = (int(start, 16), int(end, 16))
        elif current is not None and line.startswith("Anonymous:"):
            if int(line.split()[1]) == 0:
                found.append(current)
            current = None
    return found


def release_compiler_memory() -> None:
    """Return glibc's free heap to the kernel and unmap the compiler's clean pages; never raises
    (it only gives memory back, and ig runs the same without it). Called by Compiler.release_memory,
    which keeps compiles out meanwhile."""
    try:
        libc = _libc()
        libc.malloc_trim(0)
        with open("/proc/self/smaps") as f:
            mappings = clean_compiler_mappings(f.read())
        for start, end in mappings:
            libc.madvise(start, end - start, MADV_DONTNEED)
    except (OSError, AttributeError) as exc:  # not glibc, no /proc: nothing given back
        log.debug("could not give back the compiler's memory: %s", exc)
