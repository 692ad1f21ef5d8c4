"""What keeps one gadget's faults inside that gadget: the sink the core hands a trace gadget, and the
watch over the threads a gadget starts.

`GadgetSink` is what a trace gadget's `start(sink)` receives. It checks each batch against the
gadget's schema (igcore.rowcheck), delivers the rows that fit, and never raises back into the
gadget's thread: an exception from anything downstream is counted in `ig_loop_errors_total
{component="sink"}` and the gadget keeps delivering.

`GadgetThreads` starts the threads a gadget runs beside its work (`GadgetContext.spawn`, the
ring-buffer reader among them), so the core knows them without patching `threading`. If one of
them raises or ends while the gadget should be running, the gadget counts as failed (`thread_died`):
one log line names it, instead of Python's traceback, and `ig_gadget_running` shows 0 for it
(docs/plugins.md, Your threads). Threads a gadget starts otherwise are not watched.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, TypeVar

from .health import loop_errors
from .rowcheck import RowChecker

__all__ = ["GadgetSink", "GadgetThreads"]

log = logging.getLogger("igcore.gadgets")

T = TypeVar("T")


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


class GadgetThreads:
    """The threads of one gadget, started through `spawn` (its own, or the core's transport for it)."""

    def __init__(self, gadget: str, report: bool = True) -> None:
        self.gadget = gadget
        self.threads: list[threading.Thread] = []
        self.stopping = False
        self.death = ""  # how a thread of the gadget died: the log's words, /readyz's reason
        self.report = report  # False: the caller reports the death itself (ig trace ends with it)
        self._reported = False
        self._lock = threading.Lock()

    def spawn(self, target: Callable[..., Any], *, name: str, args: tuple = ()) -> threading.Thread:
        """Start `target(*args)` on a daemon thread of the gadget, watched until the gadget stops."""
        thread = threading.Thread(target=self._run, args=(target, args), name=name, daemon=True)
        with self._lock:
            self.threads.append(thread)
        thread.start()
        return thread

    def _run(self, target: Callable[..., Any], args: tuple) -> None:
        try:
            target(*args)
        except BaseException as exc:  # SystemExit too: Python's own hook would drop it silently
            self.died(threading.current_thread(), exc)

    @staticmethod
    def run_in_thread(call: Callable[[], T], *, name: str) -> T:
        """`call()` on a short thread of its own, waited for: its result, or its exception raised
        here. For work that changes what only its thread sees (entering a network namespace)."""
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["value"] = call()
            except BaseException as exc:  # handed to the caller
                outcome["error"] = exc

        thread = threading.Thread(target=work, name=name, daemon=True)
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def died(self, thread: threading.Thread, exc: BaseException) -> None:
        """A thread of the gadget raised: one line naming the gadget instead of a traceback."""
        if self.stopping:
            return
        with self._lock:
            first, self._reported = not self._reported, True
            if first:
                self.death = f"its thread {thread.name!r} died: {type(exc).__name__}: {exc}"
        if first and self.report:
            log.error("gadget %s: %s; the gadget is not running any more (ig_gadget_running 0), the other "
                      "gadgets keep running", self.gadget, self.death,
                      exc_info=(type(exc), exc, exc.__traceback__) if log.isEnabledFor(logging.DEBUG) else None,
                      extra={"gadget": self.gadget, "reason": "thread_died"})

    def dead(self) -> bool:
        """True when a thread of the gadget ended while it should be running (reported once)."""
        with self._lock:
            ended = any(not t.is_alive() for t in self.threads)
        if self.stopping or not ended:
            return False
        with self._lock:
            first, self._reported = not self._reported, True
        if first and self.report:  # ended without an exception: `died` said nothing
            log.error("gadget %s: its thread ended while the gadget runs; the gadget is not running "
                      "any more (ig_gadget_running 0), the other gadgets keep running", self.gadget,
                      extra={"gadget": self.gadget, "reason": "thread_died"})
        return True
