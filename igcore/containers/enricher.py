"""Adds the container columns to rows, drops host rows unless --host, and holds rows whose container
is being created until its metadata arrives (bounded in time and number), so none is lost or mislabelled."""

from __future__ import annotations

import threading
import time
from typing import Callable

from .model import HOST_COLUMNS, Container
from .registry import PENDING, ContainerRegistry

MAX_HELD = 100_000


class Enricher:
    def __init__(self, registry: ContainerRegistry, key: str, host: bool, sink: Callable[[list[dict]], None],
                 hold_seconds: float = 2.0) -> None:
        self.registry, self.key, self.host, self.sink = registry, key, host, sink
        self.hold_seconds = hold_seconds
        self.dropped_host = 0
        self.held = 0       # rows ever held
        self.expired = 0    # held rows whose container never showed up (then treated as host rows)
        self._held: list[tuple[float, dict]] = []
        self._lock = threading.Lock()   # one delivery at a time keeps rows in order
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def _label(self, row: dict, found, out: list[dict]) -> None:
        """Add the container columns to `row` and keep it, or drop it as a host row without --host."""
        if isinstance(found, Container):
            row.update(found.columns())
        elif self.host:
            row.update(HOST_COLUMNS)
        else:
            self.dropped_host += 1
            return
        out.append(row)

    def _enrich(self, rows: list[dict], hold: bool) -> tuple[list[dict], list[dict]]:
        """(rows to deliver, rows to hold); a cache per batch keeps lookups to one per key value."""
        out, pending, cache = [], [], {}
        key, resolve = self.key, self.registry.resolve
        for row in rows:
            value = row.get(key, 0)
            found = cache.get(value, cache)
            if found is cache:
                found = cache[value] = resolve(key, value)
            if found is PENDING and hold:
                pending.append(row)
                continue
            self._label(row, None if found is PENDING else found, out)
        return out, pending

    def __call__(self, rows: list[dict]) -> None:
        now = time.monotonic()
        with self._lock:
            out, pending = self._enrich(rows, hold=len(self._held) < MAX_HELD)
            if pending:
                self.held += len(pending)
                self._held.extend((now + self.hold_seconds, r) for r in pending)
                self._ensure_timer()
            if out:
                self.sink(out)

    def enrich_now(self, rows: list[dict]) -> list[dict]:
        out, _ = self._enrich(rows, hold=False)
        return out

    def _ensure_timer(self) -> None:
        if self._timer is None:
            self._timer = threading.Thread(target=self._retry_loop, name="ig-enrich-hold", daemon=True)
            self._timer.start()

    def _retry(self, final: bool = False) -> None:
        with self._lock:
            if not self._held:
                return
            now = time.monotonic()
            held, self._held = self._held, []
            ready, still = [], []
            for deadline, row in held:
                found = self.registry.resolve(self.key, row.get(self.key, 0))
                if found is PENDING and not final and now < deadline:
                    still.append((deadline, row))
                    continue
                if found is PENDING:
                    self.expired += 1
                    found = None
                self._label(row, found, ready)
            self._held = still
            if ready:
                self.sink(ready)

    def _retry_loop(self) -> None:
        while not self._stop.wait(0.02):
            self._retry()

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=5)
        self._retry(final=True)
