"""One snapshot shared by every gauge of a gadget and by concurrent scrapes (single flight), within
a time limit.

A snapshot gadget walks kernel state (every process, every socket) when asked, which costs far more
than building the gauges from its rows. So at most one snapshot runs at a time per gadget, every
scrape that arrives while it runs waits for it and gets the same rows (or the same error), and a
snapshot younger than `min_interval` is reused instead of taking another.

With a `timeout`, the snapshot runs in a thread of its own and callers wait for it until `timeout`
seconds after it began: past that they get `SnapshotTimeout` (the scrape answers without this
gadget's gauges), and later callers fail at once while it still runs, so a hung gadget costs one
time limit, not one per scrape, and is never asked for a second snapshot before the first returns.
A snapshot that returns after its limit is thrown away (its rows are late).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Callable

__all__ = ["SnapshotCache", "SnapshotTimeout"]

log = logging.getLogger("igcore.snapshots")


class SnapshotTimeout(Exception):
    """The snapshot did not finish within its time limit."""


class _Flight:
    """One running `take()`: its waiters block on `done` (until `deadline`), then read `rows` or `error`."""

    __slots__ = ("done", "rows", "error", "deadline", "timed_out")

    def __init__(self, deadline: float | None) -> None:
        self.done = threading.Event()
        self.rows: list[dict] | None = None
        self.error: BaseException | None = None
        self.deadline = deadline  # on time.monotonic; None: no limit
        self.timed_out = False

    def result(self) -> list[dict]:
        if self.deadline is None:
            self.done.wait()
        elif not self.done.wait(max(0.0, self.deadline - time.monotonic())):
            raise SnapshotTimeout()
        if self.error is not None:
            raise self.error
        return self.rows  # type: ignore[return-value]


class SnapshotCache:
    """`rows()` returns the latest snapshot, taking a new one only when the last one is older than
    `min_interval` seconds (measured on `clock` from the end of that snapshot).

    Counters for self metrics: `snapshots_taken` (successful), `last_duration_seconds` (of the latest
    successful one, on `clock`), `errors` (failed snapshots; each failure counts once however many
    callers shared it) and `errors_by_reason` ("exception" or "timeout"). A failure is not cached:
    the next call tries again (once a timed-out snapshot has returned).
    """

    def __init__(self, take: Callable[[], list[dict]], min_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, timeout: float | None = None,
                 name: str = "snapshot") -> None:
        self._take = take
        self.min_interval = min_interval
        self.timeout = timeout or None
        self.name = name  # names the gadget in the time-limit warning
        self._clock = clock
        self._lock = threading.Lock()  # guards every field below; never held while take() runs
        self._rows: list[dict] | None = None
        self._taken_at = 0.0
        self._flight: _Flight | None = None
        self.snapshots_taken = 0
        self.last_duration_seconds = 0.0
        self.errors_by_reason: Counter[str] = Counter()

    @property
    def errors(self) -> int:
        return sum(self.errors_by_reason.values())

    def prefetch(self) -> None:
        """With a time limit: begin a snapshot in its thread if one is due, and return at once (a
        scrape begins every gadget's snapshot before waiting for any, so their limits overlap)."""
        if self.timeout is not None:
            self._join()

    def rows(self) -> list[dict]:
        got, leader = self._join()
        if not isinstance(got, _Flight):
            return got
        if leader and self.timeout is None:
            self._run(got)  # no limit: the caller's thread takes it
        try:
            return got.result()
        except SnapshotTimeout:
            self._timed_out(got)
            raise

    def _join(self) -> tuple[list[dict] | _Flight, bool]:
        """The fresh rows, or the flight to wait for (and whether this caller began it)."""
        with self._lock:
            if self._rows is not None and self._clock() - self._taken_at < self.min_interval:
                return self._rows, False
            flight = self._flight
            if flight is not None:
                return flight, False
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            flight = self._flight = _Flight(deadline)
        if self.timeout is not None:
            threading.Thread(target=self._run, args=(flight,), name=f"ig-snapshot {self.name}", daemon=True).start()
        return flight, True

    def _run(self, flight: _Flight) -> None:
        start = self._clock()
        try:
            rows = self._take()
        except BaseException as exc:  # BaseException too: waiters must never be left blocked
            with self._lock:
                if not flight.timed_out:
                    self.errors_by_reason["exception"] += 1
                self._flight = None
            flight.error = exc
            flight.done.set()
            return
        end = self._clock()
        with self._lock:
            if not flight.timed_out:  # a late snapshot is not kept
                self._rows, self._taken_at = rows, end
                self.snapshots_taken += 1
                self.last_duration_seconds = end - start
            self._flight = None
        flight.rows = rows
        flight.done.set()

    def _timed_out(self, flight: _Flight) -> None:
        """Count and log a snapshot past its limit once, however many scrapes waited for it."""
        with self._lock:
            first, flight.timed_out = not flight.timed_out, True
            if first:
                self.errors_by_reason["timeout"] += 1
        if first:
            log.warning("snapshot of gadget %s did not finish within --snapshot-timeout %gs: scrapes answer "
                        "without its gauges until it returns (counted in ig_snapshot_errors_total"
                        "{reason=\"timeout\"})", self.name, self.timeout,
                        extra={"gadget": self.name, "reason": "timeout"})
