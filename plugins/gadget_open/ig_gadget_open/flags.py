"""open(2) flags and modes as readable text, with this architecture's values (Python's os.O_*)."""

from __future__ import annotations

import os
import stat
from functools import lru_cache

ACCESS = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}

# Multi-bit flags first: O_SYNC includes O_DSYNC and O_TMPFILE includes O_DIRECTORY, so the wider
# name takes its bits before the narrower one is checked.
_NAMES = ("O_TMPFILE", "O_SYNC", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK",
          "O_DSYNC", "O_ASYNC", "O_DIRECT", "O_LARGEFILE", "O_DIRECTORY", "O_NOFOLLOW", "O_NOATIME",
          "O_CLOEXEC", "O_PATH")
FLAGS = tuple((name, getattr(os, name)) for name in _NAMES if getattr(os, name, 0))


@lru_cache(maxsize=1024)
def flag_names(flags: int) -> str:
    """`O_WRONLY|O_CREAT|O_TRUNC`; bits without a name end it as one hexadecimal number."""
    names = [ACCESS.get(flags & os.O_ACCMODE, f"O_ACCMODE={flags & os.O_ACCMODE}")]
    rest = flags & ~os.O_ACCMODE
    for name, bits in FLAGS:
        if rest & bits == bits:
            names.append(name)
            rest &= ~bits
    if rest:
        names.append(hex(rest))
    return "|".join(names)


@lru_cache(maxsize=256)
def mode_text(mode: int) -> str:
    """Permission bits as `ls -l` shows them (`-rw-r--r--`), as Inspektor Gadget prints a mode."""
    return "-" + stat.filemode(mode & 0o7777)[1:]
