"""Start the gadgets of a config side by side, and give back what their compilation left behind.

Each gadget's start runs in a thread of its own, so one that waits (a device, a socket, a slow
start()) does not hold up the others, and `start_all` returns once every one has returned. The
BPF compilations inside them take turns (bcc cannot compile two programs at once in one process:
igcore.bpf.transport), but everything around them overlaps. `GadgetRun.start()` never raises: a
failure stays recorded on its run.
"""

from __future__ import annotations

import threading
from typing import Protocol, Sequence

from .bpf.memory import release_compiler_memory


class Startable(Protocol):
    label: str

    def start(self) -> None: ...


def start_all(runs: Sequence[Startable]) -> None:
    """Run every `run.start()` at once, each in its own thread; return when all have returned."""
    if len(runs) == 1:
        runs[0].start()
    else:
        threads = [threading.Thread(target=run.start, name=f"ig-start {run.label}", daemon=True) for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if runs:
        release_compiler_memory()
