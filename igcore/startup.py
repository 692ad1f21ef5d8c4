"""Start (and stop) the gadgets of a config side by side, and give back what their compilation left behind.

Each gadget's start runs in a thread of its own, so one that waits (a device, a socket, a slow
start()) does not hold up the others, and `start_all` returns once every one has returned. The
BPF compilations inside them take turns (bcc cannot compile two programs at once in one process:
igcore.bpf.compiler), but everything around them overlaps. `GadgetRun.start()` never raises: a
failure stays recorded on its run.

Stops run side by side too (`stop_all`): the kernel detaches a tracepoint only after waiting for
its readers to finish, tens of milliseconds each, and one gadget may have a dozen.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol, Sequence

from .bpf.compiler import Compiler


class Startable(Protocol):
    label: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def start_all(runs: Sequence[Startable], compiler: Compiler) -> None:
    """Run every `run.start()` at once, each in its own thread; return when all have returned and
    `compiler` gave back what their compiles left behind."""
    _side_by_side([(f"ig-start {run.label}", run.start) for run in runs])
    if runs:
        compiler.release_memory()


def stop_all(runs: Sequence[Startable]) -> None:
    """Run every `run.stop()` (which never raises) at once; return when all have returned."""
    _side_by_side([(f"ig-stop {run.label}", run.stop) for run in runs])


def _side_by_side(calls: Sequence[tuple[str, Callable[[], None]]]) -> None:
    if len(calls) == 1:
        calls[0][1]()
        return
    threads = [threading.Thread(target=call, name=name, daemon=True) for name, call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
