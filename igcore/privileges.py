"""What ig checks before anything else when it is to load eBPF programs: that it runs as root.

Checked first, so a user without root gets one line saying so, instead of a warning per container
runtime it cannot reach and an error per gadget whose program the kernel refused (docs/config.md,
Errors). igcore.bpf.compiler refuses to compile for the same reason, for callers that skip this.
"""

from __future__ import annotations

import os

from .errors import RuntimeFailure

NEEDS_ROOT = "ig needs root to load eBPF programs (run it as root)"


def require_root() -> None:
    if os.geteuid() != 0:
        raise RuntimeFailure(NEEDS_ROOT).naming(reason="not_root")
