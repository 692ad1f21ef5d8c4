"""Stop and reload signals, received by the main thread only.

A signal sent to the process may be delivered to any thread that does not block it; Python then
only sets a flag, and a main thread blocked in a wait would not notice. So the CLI blocks these
signals before starting any thread (threads inherit the mask) and waits for them with sigwait,
also while the start-up and reloads run on a thread of their own (igcore.supervisor).
"""

from __future__ import annotations

import signal

STOP = (signal.SIGINT, signal.SIGTERM)
RELOAD = signal.SIGHUP
HANDLED = {*STOP, RELOAD}


def block() -> None:
    """Block them in the calling thread and the threads it starts from now on: igcore.main calls
    it before any thread starts (and ig's compiler thread for itself, igcore.bpf.compiler)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)


def wait(timeout: float | None = None) -> int | None:
    """The next signal received, or None once `timeout` seconds passed."""
    if timeout is None:
        return signal.sigwait(HANDLED)
    info = signal.sigtimedwait(HANDLED, timeout)
    return info.si_signo if info else None
