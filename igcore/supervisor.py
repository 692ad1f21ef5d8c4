"""The main thread of `ig prometheus` keeps taking signals while start-up and reloads run.

ig's stop and reload signals stay blocked in every thread (igcore.signals): a signal pending for a
thread that loads an eBPF program makes the verifier refuse it (EAGAIN). So the long steps (loading
plugins and the config, compiling, a gadget's `start()`) run on a thread of their own while the
main thread waits in sigtimedwait, and a signal is taken at once, never lost, whatever that step
does. A stop signal gives the step STOP_GRACE seconds to finish (a compile usually does) so that
ig stops in order; a step still running then is abandoned: ig exits, and the kernel releases the
eBPF programs and maps ig loaded as it closes ig's descriptors (docs/config.md, Stopping).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, TypeVar

from . import signals

T = TypeVar("T")

# Seconds a step may still take once a stop signal came: one about to end ends in order. Exiting
# without it is no faster for the kernel (docs/config.md, Stopping), and ig must be gone in 2 s.
STOP_GRACE = 0.25
# How often the main thread looks whether the step finished, between two waits for a signal.
POLL_SECONDS = 0.02


class Abandoned(Exception):
    """A stop signal came and the step did not finish within STOP_GRACE."""

    def __init__(self, step: str) -> None:
        super().__init__(f"stopped without waiting for {step} to finish")
        self.step = step


class Supervisor:
    """Runs one step at a time on a worker thread; `stop_signal` and `reload_asked` record what
    the main thread received meanwhile (SIGHUPs during a step ask for one reload after it)."""

    def __init__(self) -> None:
        self.stop_signal: int | None = None
        self.reload_asked = False

    def run(self, step: Callable[[], T], name: str) -> T:
        """What `step()` returns or raises, from the worker thread. After a stop signal, returns
        (or raises) only if the step finished within STOP_GRACE; raises Abandoned otherwise."""
        outcome: Future = Future()

        def work() -> None:
            try:
                outcome.set_result(step())
            except BaseException as exc:  # handed to the main thread
                outcome.set_exception(exc)

        threading.Thread(target=work, name=f"ig-step {name}", daemon=True).start()
        while not outcome.done() and self.stop_signal is None:
            self.take(signals.wait(POLL_SECONDS))
        try:
            return outcome.result(timeout=STOP_GRACE if self.stop_signal is not None else None)
        except FutureTimeout:
            raise Abandoned(name) from None

    def take(self, received: int | None) -> None:
        """Note a signal the main thread received."""
        if received in signals.STOP:
            self.stop_signal = received
        elif received == signals.RELOAD:
            self.reload_asked = True
