"""What keeps one gadget's faults inside that gadget: the sink the core hands a trace gadget, and the
watch over the threads a gadget starts.

`GadgetSink` is what a trace gadget's `start(sink)` receives. It checks each batch against the
gadget's schema (igcore.rowcheck), delivers the rows that fit, and never raises back into the
gadget's thread: an exception from anything downstream is counted in `ig_loop_errors_total
{component="sink"}` and the gadget keeps delivering.

`GadgetThreads` records the threads a gadget started in `start()`. If one of them ends while the
gadget should be running, the gadget counts as failed (`thread_died`): one log line names it (the
excepthook installed here replaces Python's traceback for those threads) and `ig_gadget_running`
shows 0 for it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Callable

from .health import loop_errors
from .rowcheck import RowChecker

__all__ = ["GadgetSink", "GadgetThreads"]

log = logging.getLogger("igcore.gadgets")

# Threads started by the core on a gadget's behalf (its ring-buffer reader): they belong to the
# gadget that started them. The BPF compiler's thread, started by whichever compile comes first, does not.
_CORE_THREAD_MODULES = ("igcore.bpf.transport.",)


class GadgetSink:
    """The sink of one trace gadget. Safe to call from several threads at once (the enricher and
    the aggregators take their own locks); rows of one call are delivered in their order."""

    def __init__(self, gadget: str, check: RowChecker, deliver: Callable[[list[dict]], None]) -> None:
        self.gadget = gadget  # "trace exec": names the gadget in self metrics and logs
        self._check = check
        self._deliver = deliver

    def __call__(self, rows) -> None:
        try:
            good = self._check(rows if type(rows) is list else list(rows))
            if good:
                self._deliver(good)
        except Exception as exc:  # nothing downstream may fail the gadget's thread
            loop_errors.record("sink", exc, gadget=self.gadget)


def _owner_module(thread: threading.Thread) -> str:
    """The module of the code a thread runs (its target, or its class when `run` is overridden).
    `_target` is private to threading but stable since Python 2; it is read while the thread runs."""
    target = getattr(thread, "_target", None)
    if target is not None:
        return getattr(target, "__module__", "") or ""
    return type(thread).__module__


# thread -> the GadgetThreads watching it, for the excepthook
_watched: "weakref.WeakKeyDictionary[threading.Thread, GadgetThreads]" = weakref.WeakKeyDictionary()
_watched_lock = threading.Lock()
_previous_hook = threading.excepthook


def _excepthook(args) -> None:
    with _watched_lock:
        owner = _watched.get(args.thread) if args.thread is not None else None
    if owner is None:
        _previous_hook(args)
        return
    owner.died(args.thread, args.exc_value)


threading.excepthook = _excepthook

# Gadgets start in parallel threads (igcore.startup), so "the threads that appeared during start()"
# would mix theirs. Each thread notes who started it instead: a thread running a gadget's start()
# collects the threads it starts, and those it starts meanwhile collect into the same list.
_collecting: "dict[threading.Thread, list[threading.Thread]]" = {}
_collecting_lock = threading.Lock()
_thread_start = threading.Thread.start


def _start_and_note(self: threading.Thread) -> None:
    with _collecting_lock:
        started = _collecting.get(threading.current_thread())
        if started is not None:
            started.append(self)
            _collecting[self] = started
    _thread_start(self)


threading.Thread.start = _start_and_note  # type: ignore[method-assign]


class GadgetThreads:
    """The threads one gadget started in `start()` (its own, or the core's transport for it)."""

    def __init__(self, gadget: str) -> None:
        self.gadget = gadget
        self.threads: list[threading.Thread] = []
        self.stopping = False
        self.death = ""  # how a thread of the gadget died (from the excepthook): the log's words, /readyz's reason
        self._reported = False
        self._lock = threading.Lock()

    def watch(self, start: Callable[[], None], package: str) -> None:
        """Run `start()` and remember the threads it started (itself, or through threads it
        started meanwhile) whose code is `package`'s or the core's transport. Threads that other
        threads start meanwhile (scrapes, another gadget's start) are not the gadget's."""
        me = threading.current_thread()
        started: list[threading.Thread] = []
        with _collecting_lock:
            _collecting[me] = started
        try:
            start()
        finally:
            with _collecting_lock:
                for thread in (me, *started):
                    _collecting.pop(thread, None)
            prefixes = (package + ".", *_CORE_THREAD_MODULES)
            mine = [t for t in started if t.is_alive() and (_owner_module(t) + ".").startswith(prefixes)]
            self.threads = mine
            with _watched_lock:
                for thread in mine:
                    _watched[thread] = self

    def died(self, thread: threading.Thread, exc: BaseException | None) -> None:
        """From the excepthook: one line naming the gadget instead of a traceback."""
        if self.stopping:
            return
        with self._lock:
            first, self._reported = not self._reported, True
            if first:
                self.death = f"its thread {thread.name!r} died: {type(exc).__name__}: {exc}"
        if first:
            log.error("gadget %s: %s; the gadget is not running any more (ig_gadget_running 0), the other "
                      "gadgets keep running", self.gadget, self.death,
                      exc_info=(type(exc), exc, exc.__traceback__) if log.isEnabledFor(logging.DEBUG) and exc else None,
                      extra={"gadget": self.gadget, "reason": "thread_died"})

    def dead(self) -> bool:
        """True when a thread of the gadget ended while it should be running (reported once)."""
        if self.stopping or not any(not t.is_alive() for t in self.threads):
            return False
        with self._lock:
            first, self._reported = not self._reported, True
        if first:  # ended without an exception: the excepthook said nothing
            log.error("gadget %s: its thread ended while the gadget runs; the gadget is not running "
                      "any more (ig_gadget_running 0), the other gadgets keep running", self.gadget,
                      extra={"gadget": self.gadget, "reason": "thread_died"})
        return True
