"""One snapshot shared by every gauge of a gadget and by concurrent scrapes (single flight)."""

from __future__ import annotations

import threading
import time
from typing import Callable


class SnapshotCache:
    """`rows()` returns a snapshot no older than `min_interval`; callers arriving while one is being
    taken wait for it instead of starting their own, so ten concurrent scrapes cost one snapshot."""

    def __init__(self, take: Callable[[], list[dict]], min_interval: float = 1.0, clock=time.monotonic) -> None:
        self._take, self.min_interval, self._clock = take, min_interval, clock
        self._lock = threading.Lock()          # guards the fields below
        self._flight = threading.Lock()        # held by the one caller taking a snapshot
        self._rows: list[dict] | None = None
        self._taken_at = 0.0
        self._generation = 0
        self.snapshots_taken = 0
        self.last_duration_seconds = 0.0
        self.errors = 0

    def _fresh(self) -> list[dict] | None:
        if self._rows is not None and self._clock() - self._taken_at < self.min_interval:
            return self._rows
        return None

    def rows(self) -> list[dict]:
        with self._lock:
            rows, generation = self._fresh(), self._generation
        if rows is not None:
            return rows
        with self._flight:
            with self._lock:
                if self._generation != generation:  # someone took one while we waited: share it
                    if self._rows is not None:
                        return self._rows
            start = self._clock()
            try:
                rows = self._take()
            except Exception:
                with self._lock:
                    self.errors += 1
                raise
            duration = self._clock() - start
            with self._lock:
                self._rows, self._taken_at = rows, self._clock()
                self._generation += 1
                self.snapshots_taken += 1
                self.last_duration_seconds = duration
            return rows
