"""One snapshot shared by every gauge of a gadget and by concurrent scrapes (single flight).

A snapshot gadget walks kernel state (every process, every socket) when asked, which costs far more
than building the gauges from its rows. So at most one snapshot runs at a time per gadget, every
scrape that arrives while it runs waits for it and gets the same rows (or the same error), and a
snapshot younger than `min_interval` is reused instead of taking another.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

__all__ = ["SnapshotCache"]


class _Flight:
    """One running `take()`: its waiters block on `done`, then read `rows` or `error`."""

    __slots__ = ("done", "rows", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.rows: list[dict] | None = None
        self.error: BaseException | None = None

    def result(self) -> list[dict]:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.rows  # type: ignore[return-value]


class SnapshotCache:
    """`rows()` returns the latest snapshot, taking a new one only when the last one is older than
    `min_interval` seconds (measured on `clock` from the end of that snapshot).

    Counters for self metrics: `snapshots_taken` (successful), `last_duration_seconds` (of the latest
    successful one, on `clock`), `errors` (failed `take()` calls; each failure counts once however
    many callers shared it). A failure is not cached: the next call tries again.
    """

    def __init__(self, take: Callable[[], list[dict]], min_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._take = take
        self.min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()  # guards every field below; never held while take() runs
        self._rows: list[dict] | None = None
        self._taken_at = 0.0
        self._flight: _Flight | None = None
        self.snapshots_taken = 0
        self.last_duration_seconds = 0.0
        self.errors = 0

    def rows(self) -> list[dict]:
        with self._lock:
            if self._rows is not None and self._clock() - self._taken_at < self.min_interval:
                return self._rows
            flight = self._flight
            if flight is None:  # nobody is taking one: this caller does, the others wait for it
                flight = self._flight = _Flight()
                leader = True
            else:
                leader = False
        if not leader:
            return flight.result()
        return self._run(flight)

    def _run(self, flight: _Flight) -> list[dict]:
        start = self._clock()
        try:
            rows = self._take()
        except BaseException as exc:  # BaseException too: waiters must never be left blocked
            with self._lock:
                self.errors += 1
                self._flight = None
            flight.error = exc
            flight.done.set()
            raise
        end = self._clock()
        with self._lock:
            self._rows, self._taken_at = rows, end
            self.snapshots_taken += 1
            self.last_duration_seconds = end - start
            self._flight = None
        flight.rows = rows
        flight.done.set()
        return rows
